"""THE training sigma table and THE t <-> sigma mapping: the one home of both, used by every module that needs them.

A discrete model (every Stable Diffusion checkpoint) was trained on ``T`` timesteps with noise levels
``sigma_t = sqrt((1 - abar_t) / abar_t)``, ``abar_t = prod_{s<=t} (1 - beta_s)``: the ascending *training
table*. A fractional timestep ``t`` means ``log(sigma)`` linear in ``t`` between table entries (k-diffusion's
``DiscreteSchedule``), and a sigma maps back to ``t`` by the inverse of that interpolation.

* :func:`training_betas`: the betas of a beta schedule (diffusers' names), float64;
* :func:`sd_training_sigmas` (schedules: float64 sigmas, stored float32, as ComfyUI) and
  :func:`training_sigmas` of a diffusers scheduler config (models: float32 ``alphas_cumprod`` first, as LDM and
  A1111): the two tables differ in the last bit, as their sources do;
* :func:`log_interp` (the one t -> sigma formula), :func:`t_to_sigma`, :func:`sigma_bracket` (the one sigma -> t
  search, k-diffusion's), :func:`sigma_to_t` and :func:`sigmas_to_t`.

>>> table = sd_training_sigmas()
>>> float(t_to_sigma(table, torch.tensor(999.0))) == float(table[-1].double().log().exp())
True
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest

__all__ = [
    "BETA_SCHEDULES",
    "training_betas",
    "training_alphas_cumprod",
    "training_sigmas",
    "sd_training_sigmas",
    "sd1_table",
    "log_interp",
    "t_to_sigma",
    "sigma_bracket",
    "sigma_to_t",
    "sigmas_to_t",
]

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")

# A1111's stand-in for alphas_cumprod[-1] = 0 under zero terminal SNR (keeps sigma_max finite).
_ZERO_SNR_ALPHA_BAR = 4.8973451890853435e-08


def training_betas(beta_start: float, beta_end: float, n: int, beta_schedule: str) -> Tensor | None:
    """The float64 betas of diffusers' ``beta_schedule``, or None for a name it does not know.

    "scaled_linear" (SD: linear in sqrt(beta); ldm/ComfyUI call it "linear"), "linear" (linear in beta),
    "squaredcos_cap_v2" (Nichol & Dhariwal's cosine schedule, betas capped at 0.999).
    """
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        alpha_bar = [math.cos((i / n + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(n + 1)]
        return torch.tensor([min(1 - alpha_bar[i + 1] / alpha_bar[i], 0.999) for i in range(n)], dtype=torch.float64)
    return None


def training_alphas_cumprod(config: Mapping[str, Any]) -> Tensor:
    """The training noise schedule's cumulative alpha products (float32) from a diffusers scheduler config.

    Computed in float64 and stored as float32, as the original LDM code (and so A1111) does. Honours
    ``trained_betas``, ``beta_schedule`` ("linear", "scaled_linear", "squaredcos_cap_v2") and
    ``rescale_betas_zero_snr`` (A1111's Zero Terminal SNR rescale).
    """
    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02))
    schedule = config.get("beta_schedule", "linear")
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float64)
    else:
        betas = training_betas(start, end, n, schedule)
    if betas is None:
        raise SdlabError(
            f"unsupported beta_schedule {schedule!r} in the scheduler config",
            beta_schedule=schedule,
            hint=closest(str(schedule), list(BETA_SCHEDULES)),
        )
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).float()
    if config.get("rescale_betas_zero_snr"):
        root = alphas_cumprod.sqrt()
        first, last = root[0].clone(), root[-1].clone()
        root = (root - last) * (first / (first - last))
        alphas_cumprod = root**2
        alphas_cumprod[-1] = _ZERO_SNR_ALPHA_BAR
    return alphas_cumprod


def training_sigmas(config: Mapping[str, Any]) -> Tensor:
    """The ascending float32 sigma table ``sqrt((1 - alpha_bar) / alpha_bar)`` of a scheduler config."""
    alphas_cumprod = training_alphas_cumprod(config)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def sd_training_sigmas(
    beta_start: float = 0.00085,
    beta_end: float = 0.012,
    num_train_timesteps: int = 1000,
    beta_schedule: str = "scaled_linear",
) -> Tensor:
    """Ascending float32 table sigma_t = sqrt((1 - abar_t) / abar_t), abar_t = prod_{s<=t} (1 - beta_s).

    ``beta_schedule`` uses diffusers' names: "scaled_linear" (SD: betas = linspace(sqrt(b0), sqrt(b1))^2,
    ldm/ComfyUI call it "linear") or "linear" (betas = linspace(b0, b1)). Computed in float64 like ComfyUI,
    stored as float32.

    >>> s = sd_training_sigmas()  # SD 1.x / 2.x / XL
    >>> s.shape, round(float(s[0]), 4), round(float(s[-1]), 4)
    (torch.Size([1000]), 0.0292, 14.6146)
    """
    if not (isinstance(num_train_timesteps, numbers.Integral) and num_train_timesteps >= 2):
        raise SdlabError(
            "num_train_timesteps must be an integer >= 2",
            num_train_timesteps=num_train_timesteps,
            hint="SD uses 1000",
        )
    if not (0.0 < beta_start < beta_end < 1.0):
        raise SdlabError(
            "need 0 < beta_start < beta_end < 1",
            beta_start=beta_start,
            beta_end=beta_end,
            hint="SD uses beta_start=0.00085, beta_end=0.012",
        )
    return _cached_sigmas(float(beta_start), float(beta_end), int(num_train_timesteps), beta_schedule).clone()


def sd1_table() -> Tensor:
    """SD 1.x's training table, shared and cached: read it, never write to it (:func:`sd_training_sigmas` copies)."""
    return _cached_sigmas(0.00085, 0.012, 1000, "scaled_linear")


@functools.lru_cache(maxsize=8)
def _cached_sigmas(beta_start: float, beta_end: float, n: int, beta_schedule: str) -> Tensor:
    betas = training_betas(beta_start, beta_end, n, beta_schedule) if beta_schedule != "squaredcos_cap_v2" else None
    if betas is None:
        raise SdlabError(
            f"unknown beta_schedule {beta_schedule!r}",
            beta_schedule=beta_schedule,
            hint="use 'scaled_linear' (Stable Diffusion) or 'linear'",
        )
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt().float()


# ---------------------------------------------------------------------------------------------------------
# t <-> sigma (k-diffusion DiscreteSchedule), in the dtype of the table handed in
# ---------------------------------------------------------------------------------------------------------


def log_interp(log_sigmas: Tensor, t: Tensor) -> Tensor:
    """sigma(t) = exp((1 - w) log_sigmas[floor t] + w log_sigmas[ceil t]), w = frac(t): THE t -> sigma formula.

    Computes in the dtype of ``log_sigmas`` and ``t``; ``t`` must lie in [0, len - 1].
    """
    low, high, w = t.floor().long(), t.ceil().long(), t.frac()
    return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()


def t_to_sigma(table: Tensor, t: Tensor, *, exact_steps: bool = False) -> Tensor:
    """sigma(t) in float64: :func:`log_interp` on ``table``, ``t`` clamped to [0, len - 1].

    ``exact_steps=True`` (A1111's UniPC grid) returns the table's own entry at an integer ``t`` (no log/exp round
    trip) and takes the logs of the two bracketing entries only, as A1111 does, so its last bits are A1111's.
    """
    table = table.double()
    t = t.double().clamp(0, len(table) - 1)
    if not exact_steps:
        return log_interp(table.log(), t)
    low, w = t.floor().long(), t - t.floor()
    high = (low + 1).clamp(max=len(table) - 1)
    sigma = ((1 - w) * table[low].log() + w * table[high].log()).exp()
    return torch.where(w == 0, table[low], sigma)


def sigma_bracket(log_sigmas: Tensor, log_sigma: Tensor) -> tuple[Tensor, Tensor]:
    """THE sigma -> t search (k-diffusion ``sigma_to_t``): ``(low, w)`` with t = low + w, w in [0, 1].

    ``low`` is the last table index whose log-sigma is <= ``log_sigma`` (at most len - 2, at least 0), so
    ``log_sigma`` lies between entries ``low`` and ``low + 1``; computes in the promoted dtype of the inputs.
    """
    dists = log_sigma - log_sigmas[:, None]
    low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=len(log_sigmas) - 2)
    w = ((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1])).clamp(0, 1)
    return low, w


def sigmas_to_t(table: Tensor, sigmas: Tensor) -> Tensor:
    """Continuous float64 t of each sigma, clamped to [0, len-1]: ``low + w`` of :func:`sigma_bracket`."""
    low, w = sigma_bracket(table.double().log(), sigmas.double().log().reshape(-1))
    return (low + w).reshape(sigmas.shape)


def sigma_to_t(table: Tensor, sigma: float) -> float:
    """Continuous t with t_to_sigma(t) = sigma, clamped to [0, len-1] (k-diffusion ``sigma_to_t``, unquantised)."""
    low, w = sigma_bracket(table.double().log(), torch.tensor([math.log(sigma)], dtype=torch.float64))
    return int(low[0]) + float(w[0])
