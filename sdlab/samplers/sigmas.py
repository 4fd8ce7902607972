"""Sampler-aware sigmas: ``sdlab.get_sigmas``, which resolves what a sampler means for its schedule.

:func:`sdlab.schedules.get_sigmas` (floor 1) knows no sampler. Here, a floor above, ``sampler=`` is resolved:
"Automatic" becomes the schedule the name carries ("DPM++ 2M Karras") or the sampler's A1111 default; A1111's
DDIM, PLMS and UniPC run on their own fixed timesteps (:mod:`sdlab.schedules.timesteps`); and the sampler's own
discard-penultimate flag is ORed in, as A1111 and ComfyUI do.

>>> get_sigmas("Automatic", 4, sampler="DPM++ 2M")  # DPM++ 2M's A1111 default is Karras
tensor([14.6146,  3.1686,  0.4469,  0.0292,  0.0000])
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from sdlab.samplers.catalogue import resolve_sampler
from sdlab.schedules.compute import SamplerSchedule, compute_sigmas, plan_sigmas

__all__ = ["get_sigmas", "check_schedule_options", "sampler_schedule"]


def sampler_schedule(sampler: Any) -> SamplerSchedule:
    """What the sampler named ``sampler`` contributes to its sigmas (see :class:`SamplerSchedule`)."""
    resolved = resolve_sampler(sampler)
    info = resolved.info
    return SamplerSchedule(
        label=resolved.label,
        key=info.key,
        schedule=resolved.schedule or info.default_schedule,
        discard=bool(resolved.discard_penultimate),
        own_timesteps=resolved.own_timesteps and not resolved.schedule,
    )


def get_sigmas(schedule: str, steps: int, model: Any = None, *, sampler: str | None = None, **options: Any) -> Tensor:
    """The sigmas of ``schedule`` for ``steps`` steps, for ``sampler`` when given: 1-D, normally ending in 0.

    Every option of :func:`sdlab.schedules.get_sigmas` (``sigma_min``, ``sigma_max``, ``rho``,
    ``discard_penultimate``, ``beta_alpha``, ``device``, ``dtype``, ...), checked and verified the same way.
    ``sampler``: resolves "Automatic" to the schedule the name carries ("DPM++ 2M Karras") or the sampler's A1111
    default; for A1111's DDIM, PLMS and UniPC that is their own fixed timesteps (on SD 1.x's training table without
    a model), as ``generate`` runs them. It also ORs in the sampler's own discard flag for any schedule.

    >>> get_sigmas("Automatic", 10, sampler="DDIM").shape  # A1111's DDIM timesteps 901, 801, ..., 1
    torch.Size([10])
    """
    return compute_sigmas(plan_sigmas(schedule, steps, model, {"sampler": sampler, **options}, sampler_schedule))


def check_schedule_options(
    schedule: str, steps: int, model: Any = None, *, sampler: str | None = None, **options: Any
) -> str:
    """Check a :func:`get_sigmas` call without computing it; return the schedule it resolves to.

    A canonical name ("karras"), or "<sampler> timesteps" for A1111's DDIM / PLMS / UniPC under "Automatic".

    >>> check_schedule_options("Automatic", 20, sampler="DPM++ 2M")
    'karras'
    """
    return plan_sigmas(schedule, steps, model, {"sampler": sampler, **options}, sampler_schedule).name
