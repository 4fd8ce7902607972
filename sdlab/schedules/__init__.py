"""Noise schedules: every A1111 and ComfyUI sigma schedule, by its own name, with its source's exact numbers.

Floor 1: imports only floor 0 (:mod:`sdlab.errors`, :mod:`sdlab.options`); samplers live a floor above.

A schedule is data: a 1-D decreasing tensor of noise levels, normally ending in 0, that any sampler walks.

>>> get_sigmas("Karras", 4)  # A1111 label; SD 1.x training range 14.6146 -> 0.0292, then 0
tensor([14.6146,  3.1686,  0.4469,  0.0292,  0.0000])
>>> [s.name for s in list_schedules()][:3]
['automatic', 'uniform', 'karras']

Names resolve exactly first (A1111 labels are capitalised, ComfyUI names lowercase, so ``"Beta"`` is A1111's
and ``"beta"`` ComfyUI's), then case- and separator-insensitively when that is unambiguous (``"KARRAS"``,
``"sgm-uniform"``). A1111's internal names ``beta`` and ``kl_optimal`` collide with ComfyUI's; they mean
ComfyUI's here, so use the labels ``"Beta"`` / ``"KL Optimal"`` (or ``beta_a1111`` / ``kl_optimal_a1111``).

Where the two front ends differ under one name, both exist under distinct canonical names:

* ``beta_a1111`` vs ``beta_comfy``: A1111 lerps sigma_min -> sigma_max by the beta ppf; ComfyUI rounds the
  ppf to a training timestep, looks its sigma up and drops repeated timesteps.
* ``kl_optimal_a1111`` vs ``kl_optimal_comfy``: A1111 returns steps+1 sigmas ending at sigma_min (no 0);
  ComfyUI returns steps sigmas from sigma_max to sigma_min, then 0.
* ``align_your_steps_a1111`` vs ``align_your_steps_comfy``: A1111 uses NVIDIA's 3-decimal tables and
  interpolates the 11 published sigmas to ``steps`` points before appending 0, so at steps=10 it does *not*
  give the published 10-step schedule (it does at steps=11, plus a last step 0.029 -> 0); ComfyUI's node uses
  the training sigmas at NVIDIA's timesteps, interpolates to steps+1 points and sets the last to 0.

Checked and found equal for every table whose smallest sigma is above 1e-5, so kept as one schedule each:
Normal / normal, SGM Uniform / sgm_uniform, Simple / simple, DDIM / ddim_uniform, Karras, Exponential.
A1111 maps sigma to t continuously (k-diffusion ``sigma_to_t``) while ComfyUI snaps to the nearest index;
with the model's own endpoints both give t = 999 and 0. sdlab follows A1111 for ``sigma_min`` /
``sigma_max`` overrides (ComfyUI has none) and ComfyUI for tables whose smallest sigma is ~0
(``normal`` then takes steps+1 points and appends no 0; ``ddim_uniform`` starts one index earlier).

Numbers: everything is computed in float64 from the model's float32 training table, then cast to ``dtype``;
the sources compute partly in float32, so values agree to float32 rounding (~1e-6 relative).

The package, one home each: :mod:`~sdlab.schedules.table` (THE training sigma table and THE t <-> sigma mapping),
:mod:`~sdlab.schedules.formulas` (the schedule functions), :mod:`~sdlab.schedules.registry` (names, labels,
:func:`resolve_schedule`), :mod:`~sdlab.schedules.options` (option domains and limits),
:mod:`~sdlab.schedules.timesteps` (A1111's DDIM / PLMS / UniPC timesteps) and :mod:`~sdlab.schedules.compute`
(:func:`get_sigmas`). ``get_sigmas`` here resolves no sampler: ``sampler=`` raises :class:`~sdlab.errors.SdlabError`
pointing at :func:`sdlab.get_sigmas` (:func:`sdlab.samplers.sigmas.get_sigmas`), which takes the same arguments
plus ``sampler`` ("Automatic" -> the sampler's schedule or A1111's own timesteps, its discard flag).
"""

from sdlab.schedules import formulas
from sdlab.schedules.compute import check_schedule_options, get_sigmas
from sdlab.schedules.formulas import *  # noqa: F403  (the schedule functions and AYS tables: formulas.__all__)
from sdlab.schedules.options import RHO_MAX, RHO_MIN, SCHEDULE_OPTION_DOMAINS
from sdlab.schedules.registry import MAX_STEPS, ScheduleInfo, list_schedules, resolve_schedule
from sdlab.schedules.table import sd_training_sigmas, sigma_to_t, t_to_sigma

__all__ = [
    "ScheduleInfo",
    "RHO_MIN",
    "RHO_MAX",
    "get_sigmas",
    "check_schedule_options",
    "resolve_schedule",
    "SCHEDULE_OPTION_DOMAINS",
    "MAX_STEPS",
    "list_schedules",
    "sd_training_sigmas",
    "sigma_to_t",
    "t_to_sigma",
    *formulas.__all__,  # AYS_A1111, AYS_COMFY and the schedule functions
]

_resolve = resolve_schedule  # the old private name, still read by sdlab.spec until it imports resolve_schedule
