"""A1111's DDIM, PLMS and UniPC timesteps as sigmas: schedules of the training table (``sd_samplers_timesteps``).

A1111 runs DDIM, DDIM CFG++, PLMS and UniPC on fixed timesteps of its own and ignores the schedule chosen in the
UI. :func:`ddim_sigmas`, :func:`plms_sigmas` and :func:`unipc_sigmas` give those as sigmas (:data:`TIMESTEP_SIGMAS`
maps sampler keys to them). Timestep ``t`` means the training sigma ``model.sigmas[t]``, and a fractional ``t``
(UniPC) means :func:`sdlab.schedules.table.t_to_sigma`: ``log(sigma)`` linear in ``t`` between table entries.
The samplers themselves live in :mod:`sdlab.samplers.a1111`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.schedules.table import t_to_sigma

__all__ = [
    "ddim_sigmas",
    "plms_sigmas",
    "unipc_sigmas",
    "training_table",
    "a1111_timesteps",
    "vp_log_alpha",
    "vp_lambda",
    "TIMESTEP_SIGMAS",
    "ONE_TIMESTEP",
    "UNIPC_SKIP_TYPES",
]

ONE_TIMESTEP = (
    "A1111's DDIM and PLMS at steps=1 have the single timestep t = 1; they step between timesteps, so they "
    "would make no model call (A1111 returns the noise unchanged)"
)
"""Why A1111's DDIM and PLMS cannot run 1 step (:func:`ddim_sigmas` gives one sigma for steps=1)."""

UNIPC_SKIP_TYPES = ("time_uniform", "time_quadratic", "logSNR")


def training_table(model: Any) -> Tensor:
    """The model's ascending training sigma table, checked, as float64 on the CPU (for per-step scalars)."""
    sigmas = getattr(model, "sigmas", None)
    if not isinstance(sigmas, Tensor) or sigmas.ndim != 1 or len(sigmas) < 2:
        raise SdlabError(
            "A1111's timestep samplers need the model's training sigma table",
            hint="use a discrete denoiser with an ascending 1-D `.sigmas` tensor (e.g. 1000 SD sigmas)",
            model=type(model).__name__,
        )
    return sigmas.detach().to("cpu", torch.float64)


def a1111_timesteps(n_train: int, steps: int) -> list[int]:
    """``sd_samplers_timesteps.get_timesteps``: ``range(0, 1000, 1000 // steps) + 1`` clipped to 999, ascending."""
    if not isinstance(steps, int) or not 1 <= steps <= n_train:
        raise SdlabError(
            "steps must be an integer from 1 to the number of training timesteps",
            steps=steps,
            n_train=n_train,
            hint="pass e.g. steps=20",
        )
    return [min(t + 1, n_train - 1) for t in range(0, n_train, n_train // steps)]


def ddim_sigmas(model: Any, steps: int) -> Tensor:
    """A1111's DDIM timesteps as training sigmas, descending: ``model.sigmas[t]`` for ``t = 1 + k * (1000 // steps)``.

    There are ``len(range(0, 1000, 1000 // steps))`` entries: ``steps`` when it divides 1000, otherwise more
    (30 gives 31). A1111 steps between them, so it makes one model call fewer than there are entries and
    ends at ``t = 1`` (``model.sigmas[1]``, not 0). Its "Discard penultimate sigma" option asks for
    ``steps + 1`` here.
    """
    ts = a1111_timesteps(len(training_table(model)), steps)
    return model.sigmas[torch.tensor(ts[::-1], device=model.sigmas.device)]


def plms_sigmas(model: Any, steps: int) -> Tensor:
    """A1111's PLMS timesteps as sigmas: the same as :func:`ddim_sigmas`."""
    return ddim_sigmas(model, steps)


def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear ``f(x)`` through ascending ``xp``, linear past both ends (uni_pc's ``interpolate_fn``)."""
    i = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    return fp[i - 1] + (x - xp[i - 1]) * (fp[i] - fp[i - 1]) / (xp[i] - xp[i - 1])


def vp_log_alpha(table: Tensor, t: Tensor) -> Tensor:
    """UniPC's discrete ``NoiseScheduleVP``: ``log sqrt(alphas_cumprod)`` linear in (model-input) time ``t``."""
    log_alpha = -0.5 * torch.log1p(table**2)  # alphas_cumprod = 1 / (1 + sigma^2)
    return interp(t, torch.arange(len(table), dtype=torch.float64), log_alpha)


def vp_lambda(log_alpha: Tensor) -> Tensor:
    """Half log-SNR ``lambda = log(alpha) - log(sigma_vp)`` of a VP marginal."""
    return log_alpha - 0.5 * torch.log(-torch.expm1(2 * log_alpha))


def unipc_sigmas(model: Any, steps: int, skip_type: str = "time_uniform") -> Tensor:
    """A1111's UniPC time grid as sigmas: ``N + 1`` of them from ``model.sigmas[-1]`` down to ``model.sigmas[0]``.

    A1111 runs UniPC for ``N = len(ddim_sigmas(model, steps))`` steps (20 for 20, 31 for 30) on
    continuous time ``t_c`` in ``[1/1000, 1]``, and the model sees ``t = 1000 * (t_c - 1/1000)`` in
    ``[0, 999]``. ``skip_type`` places the grid: ``"time_uniform"`` (A1111's default) is uniform in ``t``,
    ``"time_quadratic"`` is uniform in ``sqrt(t_c)``, and ``"logSNR"`` is uniform in the half log-SNR of the
    VP schedule ``log_alpha(t)`` (``0.5 * log(alphas_cumprod)``, linear between timesteps). A fractional
    ``t`` becomes a sigma by k-diffusion's ``t_to_sigma``. The grid ends at ``t = 0``, not at sigma 0, and
    UniPC does not denoise to zero.
    """
    if skip_type not in UNIPC_SKIP_TYPES:
        raise SdlabError("unknown UniPC skip type", skip_type=skip_type, hint=closest(skip_type, UNIPC_SKIP_TYPES))
    table = training_table(model)
    n_train = len(table)
    n = len(a1111_timesteps(n_train, steps))
    t_end = 1.0 / n_train  # continuous time of timestep 0; timestep 999 is at 1
    if skip_type == "time_uniform":
        t_model = torch.linspace(n_train - 1, 0, n + 1, dtype=torch.float64)
    elif skip_type == "time_quadratic":
        t_c = torch.linspace(1.0, t_end**0.5, n + 1, dtype=torch.float64) ** 2
        t_model = (t_c - t_end) * n_train
    else:  # logSNR: uniform in lambda, mapped back through the inverse of the piecewise-linear log_alpha(t)
        lam_ends = vp_lambda(vp_log_alpha(table, torch.tensor([n_train - 1.0, 0.0], dtype=torch.float64)))
        lam = torch.linspace(float(lam_ends[0]), float(lam_ends[1]), n + 1, dtype=torch.float64)
        log_alpha = -0.5 * torch.logaddexp(torch.zeros_like(lam), -2 * lam)
        timesteps = torch.arange(n_train - 1, -1, -1, dtype=torch.float64)
        t_model = interp(log_alpha, -0.5 * torch.log1p(table**2).flip(0), timesteps)
    t_model = t_model.clamp(0, n_train - 1)
    t_model[0], t_model[-1] = n_train - 1, 0  # exact ends, free of rounding
    return t_to_sigma(table, t_model, exact_steps=True).to(model.sigmas)


TIMESTEP_SIGMAS: dict[str, Callable[..., Tensor]] = {
    "ddim": ddim_sigmas,
    "ddim_cfgpp": ddim_sigmas,
    "plms": plms_sigmas,
    "unipc": unipc_sigmas,
}
"""Samplers A1111 runs on fixed timesteps of their own -> ``fn(model, steps) -> sigmas`` giving those timesteps."""
