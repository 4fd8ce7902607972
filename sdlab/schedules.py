"""Noise schedules: every A1111 and ComfyUI sigma schedule, by its own name, with its source's exact numbers.

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
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.samplers.domains import Domain, check_option

__all__ = [
    "ScheduleInfo",
    "get_sigmas",
    "check_schedule_options",
    "SCHEDULE_OPTION_DOMAINS",
    "MAX_STEPS",
    "list_schedules",
    "sd_training_sigmas",
    "sigma_to_t",
    "t_to_sigma",
    "uniform",
    "karras",
    "exponential",
    "polyexponential",
    "sgm_uniform",
    "normal",
    "simple",
    "ddim_uniform",
    "kl_optimal_a1111",
    "kl_optimal_comfy",
    "beta_a1111",
    "beta_comfy",
    "align_your_steps_a1111",
    "align_your_steps_comfy",
    "linear_quadratic",
    "laplace",
    "vp",
]

MAX_STEPS = 10_000  # ComfyUI's widget maximum; far beyond any useful schedule

# Align Your Steps 10-step tables (11 sigmas, NVIDIA). A1111 ships the 3-decimal published values;
# ComfyUI the SD training sigmas at NVIDIA's timesteps [999, 850, 736, ...] (SD1) / [999, 845, 730, ...] (SDXL).
AYS_A1111 = {
    "sd1": (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029),
    "sdxl": (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029),
}
AYS_COMFY = {
    "sd1": (14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
            0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582),
    "sdxl": (14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141,
             0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582),
    "svd": (700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# The training table and the t <-> sigma maps (k-diffusion DiscreteSchedule)
# ---------------------------------------------------------------------------------------------------------


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
    return _training_sigmas(float(beta_start), float(beta_end), int(num_train_timesteps), beta_schedule).clone()


@functools.lru_cache(maxsize=8)
def _training_sigmas(beta_start: float, beta_end: float, n: int, beta_schedule: str) -> Tensor:
    if beta_schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2
    elif beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
    else:
        raise SdlabError(
            f"unknown beta_schedule {beta_schedule!r}",
            beta_schedule=beta_schedule,
            hint="use 'scaled_linear' (Stable Diffusion) or 'linear'",
        )
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt().float()


def t_to_sigma(table: Tensor, t: Tensor) -> Tensor:
    """sigma(t) = exp((1 - w) log table[floor t] + w log table[ceil t]), w = frac(t): log-sigma interpolation."""
    log_sigmas = table.double().log()
    t = t.double().clamp(0, len(table) - 1)
    low, high, w = t.floor().long(), t.ceil().long(), t.frac()
    return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()


def sigma_to_t(table: Tensor, sigma: float) -> float:
    """Continuous t with t_to_sigma(t) = sigma, clamped to [0, len-1] (k-diffusion ``sigma_to_t``, unquantised)."""
    log_sigmas = table.double().log()
    log_sigma = math.log(sigma)
    low = int(torch.searchsorted(log_sigmas, torch.tensor(log_sigma, dtype=torch.float64), right=True)) - 1
    low = min(max(low, 0), len(table) - 2)
    lo, hi = float(log_sigmas[low]), float(log_sigmas[low + 1])
    w = min(max((log_sigma - lo) / (hi - lo), 0.0), 1.0)
    return low + w


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _near_zero(x: float) -> bool:
    return math.isclose(x, 0.0, abs_tol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# The schedules: small pure functions, float64 on the CPU
# ---------------------------------------------------------------------------------------------------------


def uniform(n: int, table: Tensor) -> Tensor:
    """Uniform in t: sigma(t_i), t_i = linspace(T-1, 0, n), then 0 (k-diffusion DiscreteSchedule.get_sigmas)."""
    t = torch.linspace(len(table) - 1, 0, n, dtype=torch.float64)
    return _append_zero(t_to_sigma(table, t))


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho, then 0 (Karras et al. 2022, eq. 5)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    max_inv_rho, min_inv_rho = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """sigma_i = exp(linspace(log smax, log smin, n)), then 0: evenly spaced in log sigma (k-diffusion)."""
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> Tensor:
    """sigma_i = exp(log smin + r_i^rho (log smax - log smin)), r = linspace(1, 0, n), then 0 (k-diffusion)."""
    ramp = torch.linspace(1, 0, n, dtype=torch.float64) ** rho
    log_min, log_max = math.log(sigma_min), math.log(sigma_max)
    return _append_zero((log_min + ramp * (log_max - log_min)).exp())


def normal(n: int, table: Tensor, sigma_min: float, sigma_max: float) -> Tensor:
    """sigma(t_i), t_i = linspace(t(smax), t(smin), n), then 0 (A1111/ComfyUI "Normal"; no 0 if sigma(end) ~ 0)."""
    start, end = sigma_to_t(table, sigma_max), sigma_to_t(table, sigma_min)
    if _near_zero(float(t_to_sigma(table, torch.tensor(end)))):  # ComfyUI: the table itself reaches 0
        return t_to_sigma(table, torch.linspace(start, end, n + 1, dtype=torch.float64))
    return _append_zero(t_to_sigma(table, torch.linspace(start, end, n, dtype=torch.float64)))


def sgm_uniform(n: int, table: Tensor, sigma_min: float, sigma_max: float) -> Tensor:
    """sigma(t_i), t_i = linspace(t(smax), t(smin), n+1)[:-1], then 0 (SGM / SDXL-Lightning "trailing" spacing)."""
    start, end = sigma_to_t(table, sigma_max), sigma_to_t(table, sigma_min)
    return _append_zero(t_to_sigma(table, torch.linspace(start, end, n + 1, dtype=torch.float64)[:-1]))


def simple(n: int, table: Tensor) -> Tensor:
    """sigma_i = table[T-1 - floor(i T/n)], i < n, then 0: every (T/n)-th training sigma from the top."""
    stride = len(table) / n
    idx = [len(table) - 1 - int(i * stride) for i in range(n)]
    return _append_zero(table.double()[idx])


def ddim_uniform(n: int, table: Tensor) -> Tensor:
    """table[1 + k*(T//n)] for all such indices < T, descending, then 0 (DDIM "leading" spacing + offset 1).

    The count is ceil((T-1) / (T//n)), which exceeds n when n does not divide T (7 steps -> 8 sigmas).
    """
    steps = n + 1 if _near_zero(float(table[1])) else n  # ComfyUI: table[1] ~ 0 already is the final 0
    stride = max(len(table) // steps, 1)
    picked = table.double()[1::stride].flip(0)
    return picked if _near_zero(float(table[1])) else _append_zero(picked)


def kl_optimal_a1111(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """sigma_i = tan((1 - i/n) atan smax + (i/n) atan smin), i = 0..n: ends AT sigma_min, no 0 (A1111 #15608)."""
    frac = torch.arange(n + 1, dtype=torch.float64) / n
    return torch.tan((1 - frac) * math.atan(sigma_max) + frac * math.atan(sigma_min))


def kl_optimal_comfy(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """sigma_i = tan((1 - i/(n-1)) atan smax + i/(n-1) atan smin), i < n, then 0 (ComfyUI; n=1 gives smax, 0)."""
    frac = torch.linspace(0, 1, n, dtype=torch.float64)  # ComfyUI divides by n-1: NaN at n=1, here [0]
    return _append_zero(torch.tan((1 - frac) * math.atan(sigma_max) + frac * math.atan(sigma_min)))


def beta_a1111(n: int, sigma_min: float, sigma_max: float, alpha: float = 0.6, beta: float = 0.6) -> Tensor:
    """sigma_i = smin + ppf_Beta(a,b)(1 - i/(n-1)) (smax - smin), then 0 (A1111; Lee et al. 2024, 2407.12173)."""
    from scipy import stats

    ppf = stats.beta.ppf(1 - np.linspace(0, 1, n), alpha, beta)
    return _append_zero(torch.from_numpy(sigma_min + ppf * (sigma_max - sigma_min)))


def beta_comfy(n: int, table: Tensor, alpha: float = 0.6, beta: float = 0.6) -> Tensor:
    """table[rint(ppf_Beta(a,b)(1 - i/n) (T-1))], i < n, repeats dropped, then 0 (ComfyUI "beta", 2407.12173)."""
    from scipy import stats

    ts = np.rint(stats.beta.ppf(1 - np.linspace(0, 1, n, endpoint=False), alpha, beta) * (len(table) - 1))
    idx = [int(t) for k, t in enumerate(ts) if k == 0 or t != ts[k - 1]]
    return _append_zero(table.double()[idx])


def _loglinear_interp(values: Sequence[float], num: int) -> np.ndarray:
    """Resample a decreasing sequence to ``num`` points, linearly in log value over [0, 1] (NVIDIA's AYS howto)."""
    log_ascending = np.log(np.asarray(values, dtype=np.float64)[::-1])
    resampled = np.interp(np.linspace(0, 1, num), np.linspace(0, 1, len(values)), log_ascending)
    return np.exp(resampled)[::-1].copy()


def align_your_steps_a1111(n: int, model_type: str = "sd1") -> Tensor:
    """A1111: the 11 AYS sigmas if n == 11, else log-linearly resampled to n points; then 0 (Sabour et al. 2024)."""
    table = AYS_A1111[model_type]
    sigmas = np.asarray(table, dtype=np.float64) if n == len(table) else _loglinear_interp(table, n)
    return _append_zero(torch.from_numpy(sigmas))


def align_your_steps_comfy(n: int, model_type: str = "sd1") -> Tensor:
    """ComfyUI node: the 11 AYS sigmas log-linearly resampled to n+1 points (as is at n=10), last set to 0."""
    table = AYS_COMFY[model_type]
    sigmas = np.asarray(table, dtype=np.float64) if n + 1 == len(table) else _loglinear_interp(table, n + 1)
    sigmas[-1] = 0.0
    return torch.from_numpy(sigmas)


def linear_quadratic(
    n: int, sigma_max: float, threshold_noise: float = 0.025, linear_steps: int | None = None
) -> Tensor:
    """smax (1 - x_i): x linear 0 -> threshold over n//2 steps, then quadratic to 1 (ComfyUI, from Mochi)."""
    if n == 1:
        return torch.tensor([sigma_max, 0.0], dtype=torch.float64)
    m = n // 2 if linear_steps is None else linear_steps
    q = n - m
    excess = m - threshold_noise * n
    a = excess / (m * q**2)
    b = threshold_noise / m - 2 * excess / q**2
    c = a * m**2
    x = [i * threshold_noise / m for i in range(m)] + [a * i**2 + b * i + c for i in range(m, n)] + [1.0]
    return sigma_max * (1.0 - torch.tensor(x, dtype=torch.float64))


def laplace(n: int, sigma_min: float, sigma_max: float, mu: float = 0.0, beta: float = 0.5) -> Tensor:
    """sigma_i = clamp(exp(mu - beta sgn(1/2 - x) log(1 - 2|1/2 - x| + 1e-5)), smin, smax), x = linspace(0, 1, n).

    ComfyUI's LaplaceScheduler node (Tiankai et al. 2024): n sigmas, ends at sigma_min, no 0 appended.
    """
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    lam = mu - beta * torch.sign(0.5 - x) * torch.log(1 - 2 * (0.5 - x).abs() + 1e-5)
    return lam.exp().clamp(sigma_min, sigma_max)


def vp(n: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> Tensor:
    """sigma_i = sqrt(exp(beta_d t^2/2 + beta_min t) - 1), t = linspace(1, eps_s, n), then 0 (Song et al. VP SDE)."""
    t = torch.linspace(1, eps_s, n, dtype=torch.float64)
    return _append_zero(torch.expm1(beta_d * t**2 / 2 + beta_min * t).sqrt())


# ---------------------------------------------------------------------------------------------------------
# The catalogue and the dispatch table
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule: canonical name, the names it answers to, where it comes from, and its formula."""

    name: str  # canonical, lowercase snake_case
    labels: tuple[str, ...]  # A1111 labels, ComfyUI names and node names that resolve to it exactly
    source: str  # "A1111", "ComfyUI", "both" or "k-diffusion"
    ends_in_zero: bool  # False: the last sigma is sigma_min (the sampler stops there, noise left)
    description: str  # the formula, one line
    uses_sigma_range: bool = False  # honours sigma_min / sigma_max overrides (A1111's rule)
    options: tuple[str, ...] = ()  # extra keyword options of get_sigmas that it reads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Setting:
    """What a schedule function may read: resolved steps, endpoints, rho and options."""

    n: int
    table: Tensor | None
    sigma_min: float
    sigma_max: float
    rho: float | None
    beta_alpha: float
    beta_beta: float
    ays_model: str
    options: dict[str, Any]


def _info(name: str, labels: tuple[str, ...], source: str, fn: Callable, **kw: Any) -> ScheduleInfo:
    return ScheduleInfo(name, (name, *labels), source, description=(fn.__doc__ or "").split("\n")[0], **kw)


def _needs_table(s: _Setting) -> Tensor:
    if s.table is None:
        raise SdlabError(
            "this schedule needs the model's discrete training sigma table (model.sigmas)",
            hint="pass a model with .sigmas (None = SD 1.x) or a closed-form schedule such as 'karras'",
        )
    return s.table


def _unresolved_automatic() -> Tensor:
    raise AssertionError("get_sigmas resolves 'automatic' before dispatch")


_ENTRIES: list[tuple[ScheduleInfo, Callable[[_Setting], Tensor]]] = [
    (
        ScheduleInfo(
            "automatic",
            ("automatic", "Automatic"),
            "A1111",
            ends_in_zero=True,
            description="the sampler's default schedule (karras, exponential or uniform); needs sampler=",
        ),
        lambda s: _unresolved_automatic(),
    ),
    (
        _info("uniform", ("Uniform",), "A1111", uniform, ends_in_zero=True),
        lambda s: uniform(s.n, _needs_table(s)),
    ),
    (
        _info("karras", ("Karras", "KarrasScheduler"), "both", karras, ends_in_zero=True, uses_sigma_range=True),
        lambda s: karras(s.n, s.sigma_min, s.sigma_max, s.rho or 7.0),
    ),
    (
        _info(
            "exponential",
            ("Exponential", "ExponentialScheduler"),
            "both",
            exponential,
            ends_in_zero=True,
            uses_sigma_range=True,
        ),
        lambda s: exponential(s.n, s.sigma_min, s.sigma_max),
    ),
    (
        _info(
            "polyexponential",
            ("Polyexponential", "PolyexponentialScheduler"),
            "both",
            polyexponential,
            ends_in_zero=True,
            uses_sigma_range=True,
        ),
        lambda s: polyexponential(s.n, s.sigma_min, s.sigma_max, s.rho or 1.0),
    ),
    (
        _info(
            "sgm_uniform",
            ("SGM Uniform", "SGMUniform"),
            "both",
            sgm_uniform,
            ends_in_zero=True,
            uses_sigma_range=True,
        ),
        lambda s: sgm_uniform(s.n, _needs_table(s), s.sigma_min, s.sigma_max),
    ),
    (
        _info(
            "kl_optimal_a1111",
            ("KL Optimal",),
            "A1111",
            kl_optimal_a1111,
            ends_in_zero=False,
            uses_sigma_range=True,
        ),
        lambda s: kl_optimal_a1111(s.n, s.sigma_min, s.sigma_max),
    ),
    (
        _info(
            "kl_optimal_comfy",
            ("kl_optimal",),
            "ComfyUI",
            kl_optimal_comfy,
            ends_in_zero=True,
            uses_sigma_range=True,
        ),
        lambda s: kl_optimal_comfy(s.n, s.sigma_min, s.sigma_max),
    ),
    (
        _info(
            "align_your_steps_a1111",
            ("Align Your Steps", "align_your_steps"),
            "A1111",
            align_your_steps_a1111,
            ends_in_zero=True,
            options=("ays_model",),
        ),
        lambda s: align_your_steps_a1111(s.n, s.ays_model),
    ),
    (
        _info(
            "align_your_steps_comfy",
            ("AlignYourStepsScheduler",),
            "ComfyUI",
            align_your_steps_comfy,
            ends_in_zero=True,
            options=("ays_model",),
        ),
        lambda s: align_your_steps_comfy(s.n, s.ays_model),
    ),
    (
        _info("simple", ("Simple",), "both", simple, ends_in_zero=True),
        lambda s: simple(s.n, _needs_table(s)),
    ),
    (
        _info("normal", ("Normal",), "both", normal, ends_in_zero=True, uses_sigma_range=True),
        lambda s: normal(s.n, _needs_table(s), s.sigma_min, s.sigma_max),
    ),
    (
        _info("ddim_uniform", ("DDIM", "ddim"), "both", ddim_uniform, ends_in_zero=True),
        lambda s: ddim_uniform(s.n, _needs_table(s)),
    ),
    (
        _info("beta_a1111", ("Beta",), "A1111", beta_a1111, ends_in_zero=True, uses_sigma_range=True),
        lambda s: beta_a1111(s.n, s.sigma_min, s.sigma_max, s.beta_alpha, s.beta_beta),
    ),
    (
        _info("beta_comfy", ("beta", "BetaSamplingScheduler"), "ComfyUI", beta_comfy, ends_in_zero=True),
        lambda s: beta_comfy(s.n, _needs_table(s), s.beta_alpha, s.beta_beta),
    ),
    (
        _info(
            "linear_quadratic",
            (),
            "ComfyUI",
            linear_quadratic,
            ends_in_zero=True,
            uses_sigma_range=True,
            options=("threshold_noise", "linear_steps"),
        ),
        lambda s: linear_quadratic(
            s.n, s.sigma_max, s.options.get("threshold_noise", 0.025), s.options.get("linear_steps")
        ),
    ),
    (
        _info(
            "laplace",
            ("LaplaceScheduler",),
            "ComfyUI",
            laplace,
            ends_in_zero=False,
            uses_sigma_range=True,
            options=("laplace_mu", "laplace_beta"),
        ),
        lambda s: laplace(
            s.n, s.sigma_min, s.sigma_max, s.options.get("laplace_mu", 0.0), s.options.get("laplace_beta", 0.5)
        ),
    ),
    (
        _info("vp", ("VPScheduler",), "k-diffusion", vp, ends_in_zero=True, options=("beta_d", "beta_min", "eps_s")),
        lambda s: vp(s.n, s.options.get("beta_d", 19.9), s.options.get("beta_min", 0.1), s.options.get("eps_s", 1e-3)),
    ),
]

_SCHEDULES: dict[str, tuple[ScheduleInfo, Callable[[_Setting], Tensor]]] = {i.name: (i, f) for i, f in _ENTRIES}
_EXACT: dict[str, str] = {label: info.name for info, _ in _ENTRIES for label in info.labels}
_DEFAULT_RHO = {"karras": 7.0, "polyexponential": 1.0}
_GENERAL_OPTIONS = ("use_old_karras_scheduler_sigmas",)
_KNOWN_OPTIONS = {opt for info, _ in _ENTRIES for opt in info.options} | set(_GENERAL_OPTIONS)


def _loose(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " -_.")


_LOOSE: dict[str, set[str]] = {}
for _label, _name in _EXACT.items():
    _LOOSE.setdefault(_loose(_label), set()).add(_name)


def list_schedules() -> list[ScheduleInfo]:
    """Every schedule sdlab offers, A1111's twelve first (in its dropdown order), then ComfyUI's extras."""
    return [info for info, _ in _ENTRIES]


def _resolve(schedule: str, steps: Any) -> str:
    if not isinstance(schedule, str):
        raise SdlabError("schedule must be a name (str)", schedule=schedule, hint="see list_schedules()")
    if schedule in _EXACT:
        return _EXACT[schedule]
    hits = _LOOSE.get(_loose(schedule), set())
    if len(hits) == 1:
        return next(iter(hits))
    if hits:
        raise SdlabError(
            f"schedule name {schedule!r} is ambiguous",
            schedule=schedule,
            steps=steps,
            hint="did you mean " + " or ".join(repr(h) for h in sorted(hits)) + "? (A1111 labels are capitalised,"
            " ComfyUI names lowercase)",
        )
    choices = [*_EXACT, *_SCHEDULES]  # canonical names last, so they win case-insensitive ties
    raise SdlabError(f"unknown schedule {schedule!r}", schedule=schedule, steps=steps, hint=closest(schedule, choices))


# ---------------------------------------------------------------------------------------------------------
# Option domains: what every get_sigmas option accepts, checked in one place
# ---------------------------------------------------------------------------------------------------------

# rho far below 1 pushes sigma ** (1 / rho) out of float64 (Karras checks its own, range-dependent floor, 0.3 for
# SD's range); above 1e3 Karras is exponential to float32 precision and Polyexponential is all sigma_min
RHO_MIN, RHO_MAX = 1e-2, 1e3
_TABLE_ONLY = frozenset({"uniform", "sgm_uniform", "simple", "normal", "ddim_uniform", "beta_comfy"})

SCHEDULE_OPTION_DOMAINS: dict[str, Domain] = {
    "sigma_min": Domain.real(0, low_open=True, none_ok=True, note="0 or None: the model's sigma_min"),
    "sigma_max": Domain.real(0, low_open=True, none_ok=True, note="0 or None: the model's sigma_max"),
    "rho": Domain.real(RHO_MIN, RHO_MAX, none_ok=True, note="0 or None: 7 for Karras, 1 for Polyexponential"),
    "discard_penultimate": Domain.flag(),
    "beta_alpha": Domain.real(0, low_open=True, note="A1111's and ComfyUI's default 0.6"),
    "beta_beta": Domain.real(0, low_open=True, note="A1111's and ComfyUI's default 0.6"),
    "use_old_karras_scheduler_sigmas": Domain.flag(),
    "ays_model": Domain.text("'sd1', 'sdxl' or (ComfyUI) 'svd'; None: from model.is_sdxl"),
    "threshold_noise": Domain.real(0, 1, low_open=True, high_open=True, note="ComfyUI's default 0.025"),
    "linear_steps": Domain.integer(1, none_ok=True, note="below the number of sigmas; None: steps // 2"),
    "laplace_mu": Domain.real(note="log of the middle sigma; ComfyUI's default 0"),
    "laplace_beta": Domain.real(0, low_open=True, note="ComfyUI's default 0.5"),
    "beta_d": Domain.real(0, note="k-diffusion's default 19.9"),
    "beta_min": Domain.real(0, note="k-diffusion's default 0.1"),
    "eps_s": Domain.real(0, 1, low_open=True, high_open=True, note="k-diffusion's default 1e-3"),
}
"""get_sigmas option -> :class:`~sdlab.samplers.domains.Domain` (``sigma_min``, ``sigma_max``, ``rho``: 0 also
means the default, as in A1111)."""

_GET_SIGMAS_DEFAULTS: dict[str, Any] = {
    "sigma_min": None,
    "sigma_max": None,
    "rho": None,
    "discard_penultimate": False,
    "sampler": None,
    "beta_alpha": 0.6,
    "beta_beta": 0.6,
    "device": "cpu",
    "dtype": torch.float32,
}
_ZERO_MEANS_DEFAULT = ("sigma_min", "sigma_max", "rho")


@dataclass(frozen=True)
class _Plan:
    """What get_sigmas will compute: a schedule function on a setting, or an A1111 sampler's own timesteps."""

    name: str  # canonical schedule name, or "<sampler key> timesteps"
    context: dict[str, Any]  # schedule, steps and the options given, for error messages
    setting: _Setting | None
    timesteps: Callable[[], Tensor] | None
    discard: bool
    device: Any
    dtype: torch.dtype


def _is_default(key: str, value: Any) -> bool:
    """None for the options whose default is None, or 0 where A1111 reads 0 as "the default"."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    none_default = _GET_SIGMAS_DEFAULTS.get(key) is None
    return (value is None and none_default) or (key in _ZERO_MEANS_DEFAULT and real and value == 0)


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The options that differ from get_sigmas' defaults (named in error messages)."""
    out = {}
    for key, value in options.items():
        default = _GET_SIGMAS_DEFAULTS.get(key, ...)
        if key in ("device", "dtype") or (value is default or (type(value) is type(default) and value == default)):
            continue
        out[key] = value
    return out


def _plan(schedule: Any, steps: Any, model: Any, options: dict[str, Any]) -> _Plan:
    """Resolve and check everything get_sigmas is given; raise SdlabError for anything out of its domain."""
    name = _resolve(schedule, steps)
    context: dict[str, Any] = {"schedule": schedule, "steps": steps}
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool):
        raise SdlabError("steps must be an integer", **context, hint="pass e.g. steps=20")
    if not 1 <= steps <= MAX_STEPS:
        raise SdlabError(f"steps must be in [1, {MAX_STEPS}]", **context, hint="pass e.g. steps=20")
    steps = int(steps)
    unknown = sorted(set(options) - _KNOWN_OPTIONS - set(_GET_SIGMAS_DEFAULTS))
    if unknown:
        raise SdlabError(
            f"unknown schedule option(s) {', '.join(map(str, unknown))}",
            **context,
            hint=closest(str(unknown[0]), sorted(_KNOWN_OPTIONS | set(_GET_SIGMAS_DEFAULTS))),
        )
    opts = {**_GET_SIGMAS_DEFAULTS, **options}
    for key, domain in SCHEDULE_OPTION_DOMAINS.items():
        if key in opts and not _is_default(key, opts[key]):
            check_option(domain, key, opts[key], **context)
    dtype = opts["dtype"]
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise SdlabError("dtype must be a floating-point torch dtype", **context, got=dtype, hint="torch.float32")
    try:
        torch.device(opts["device"])
    except (RuntimeError, TypeError, ValueError):
        raise SdlabError("unknown device", **context, got=opts["device"], hint="e.g. 'cpu' or 'cuda:0'") from None
    discard = opts["discard_penultimate"]

    resolved = None
    if opts["sampler"] is not None:
        from sdlab.samplers.catalogue import resolve_sampler

        resolved = resolve_sampler(opts["sampler"])
        discard = discard or bool(resolved.discard_penultimate)
    if name == "automatic":
        if resolved is None:
            raise SdlabError(
                "schedule 'Automatic' means the sampler's default schedule",
                **context,
                hint="pass sampler='DPM++ 2M' (or any sampler name), or name a schedule such as 'Karras'",
            )
        if resolved.info.timesteps and resolved.flavour == "a1111" and not resolved.schedule:
            return _timestep_plan(resolved, steps, model, discard, context, opts)
        name = resolved.schedule or resolved.info.default_schedule
    context.update(_given(options))

    table, m_min, m_max = _model_range(model, schedule)
    base_min, base_max = (0.1, 10.0) if opts.get("use_old_karras_scheduler_sigmas") else (m_min, m_max)
    lo = base_min if _is_default("sigma_min", opts["sigma_min"]) or opts["sigma_min"] == m_min else opts["sigma_min"]
    hi = base_max if _is_default("sigma_max", opts["sigma_max"]) or opts["sigma_max"] == m_max else opts["sigma_max"]
    if lo >= hi:
        context = {**context, "sigma_min": lo, "sigma_max": hi}
        raise SdlabError("sigma_min must be below sigma_max", **context, hint="swap or fix them")
    rho = opts["rho"]
    use_rho = None if _is_default("rho", rho) or name not in _DEFAULT_RHO or rho == _DEFAULT_RHO[name] else rho
    setting = _Setting(
        n=steps + 1 if discard else steps,
        table=table,
        sigma_min=float(lo),
        sigma_max=float(hi),
        rho=None if use_rho is None else float(use_rho),
        beta_alpha=float(opts["beta_alpha"]),
        beta_beta=float(opts["beta_beta"]),
        ays_model=_ays_model(opts.get("ays_model"), model, name, context),
        options={k: v for k, v in options.items() if k in _KNOWN_OPTIONS},
    )
    if name in _TABLE_ONLY and table is None:
        try:
            _needs_table(setting)
        except SdlabError as err:
            raise SdlabError(err.message, hint=err.hint, **context) from None
    _check_setting(name, setting, context)
    return _Plan(name, context, setting, None, bool(discard), opts["device"], dtype)


def _timestep_plan(
    resolved: Any, steps: int, model: Any, discard: bool, context: dict[str, Any], opts: dict[str, Any]
) -> _Plan:
    """A1111's DDIM / PLMS / UniPC under "Automatic": their own fixed timesteps (SD 1.x's table without a model)."""
    from types import SimpleNamespace

    from sdlab.samplers.a1111 import ONE_TIMESTEP, TIMESTEP_SIGMAS

    _model_range(model, str(context["schedule"]))  # the same checks of model.sigmas as every schedule
    if model is not None and getattr(model, "sigmas", None) is None:
        raise SdlabError(
            f"{resolved.label} under 'Automatic' runs on A1111's fixed timesteps: the model needs its training "
            "sigma table (.sigmas)",
            sampler=resolved.label,
            **context,
            hint="pass a discrete model, or name a schedule such as 'Karras'",
        )
    if model is None:
        model = SimpleNamespace(sigmas=_training_sigmas(0.00085, 0.012, 1000, "scaled_linear").clone())
    n = steps + 1 if discard else steps  # A1111's get_timesteps: discarding asks for one more timestep
    if n == 1 and resolved.info.key != "unipc":
        raise SdlabError(ONE_TIMESTEP, sampler=resolved.label, **context, hint="use steps >= 2")
    fn = TIMESTEP_SIGMAS[resolved.info.key]
    label = f"{resolved.info.key} timesteps"
    return _Plan(label, context, None, lambda: fn(model, n), False, opts["device"], opts["dtype"])


def _check_setting(name: str, s: _Setting, context: dict[str, Any]) -> None:
    """The limits that depend on several options at once (or on steps), per schedule."""
    if name == "karras":
        rho = s.rho or 7.0
        # sigma_min^(1/rho) must survive next to sigma_max^(1/rho) in float64 (a ratio above 2^-30 keeps the last
        # sigma exact to float32), and neither may overflow or underflow
        spread = math.log(s.sigma_max / s.sigma_min) / rho
        if spread > 30 * math.log(2) or math.log(s.sigma_max) / rho > 700 or math.log(s.sigma_min) / rho < -700:
            need = max(math.log(s.sigma_max / s.sigma_min) / (30 * math.log(2)), abs(math.log(s.sigma_max)) / 700,
                       abs(math.log(s.sigma_min)) / 700)  # fmt: skip
            raise SdlabError(
                f"rho={rho:g} is too small for sigmas in [{s.sigma_min:g}, {s.sigma_max:g}]: in float64, "
                "sigma_min ** (1 / rho) vanishes next to sigma_max ** (1 / rho), so the schedule would lose sigma_min",
                **context,
                option="rho",
                hint=f"use rho >= {need:.3g} for this range (Karras et al. use 7)",
            )
    elif name == "simple" and s.table is not None and s.n > len(s.table):
        raise SdlabError(
            f"Simple takes every (T / steps)-th of the model's T = {len(s.table)} training sigmas: "
            f"{s.n} sigmas would repeat some",
            **context,
            hint=f"use at most {len(s.table)} sigmas (steps, plus 1 when discarding the penultimate)",
        )
    elif name == "laplace" and s.n < 2:
        raise SdlabError(
            "ComfyUI's Laplace schedule gives `steps` sigmas and no final 0, so steps=1 has no step",
            **context,
            hint="use steps >= 2",
        )
    elif name == "linear_quadratic" and s.n >= 2:
        threshold = float(s.options.get("threshold_noise", 0.025))
        m = s.options.get("linear_steps")
        m = s.n // 2 if m is None else int(m)
        if m >= s.n:
            raise SdlabError(
                f"linear_steps={m} leaves no quadratic part: it must be below the number of sigmas ({s.n})",
                **context,
                option="linear_steps",
                hint=f"use linear_steps in [1, {s.n - 1}], or None for {s.n // 2}",
            )
        limit = 2 * m / (s.n + m)  # the quadratic part must still rise at its end, else sigma goes below 0
        if threshold >= limit:
            raise SdlabError(
                f"threshold_noise={threshold:g} is too high for {m} linear of {s.n} steps: the quadratic part "
                "would overshoot and give negative, increasing sigmas",
                **context,
                option="threshold_noise",
                hint=f"use threshold_noise < 2 * linear_steps / (steps + linear_steps) = {limit:.4g}",
            )
    elif name in ("normal", "sgm_uniform") and s.table is not None:
        start, end = sigma_to_t(s.table, s.sigma_max), sigma_to_t(s.table, s.sigma_min)
        if not start > end:
            raise SdlabError(
                f"sigma_min and sigma_max both lie beyond the model's training range "
                f"[{float(s.table[0]):g}, {float(s.table[-1]):g}], at the same timestep {start:g}",
                **context,
                hint="keep at least one of sigma_min, sigma_max inside the model's range",
            )
    elif name == "vp":
        beta_d = float(s.options.get("beta_d", 19.9))
        beta_min = float(s.options.get("beta_min", 0.1))
        if beta_d == 0 and beta_min == 0:
            raise SdlabError(
                "beta_d and beta_min are both 0: every VP sigma would be 0", **context, hint="k-diffusion: 19.9, 0.1"
            )
        if beta_d / 2 + beta_min > 709:
            raise SdlabError(
                f"beta_d / 2 + beta_min = {beta_d / 2 + beta_min:g} overflows: sigma(1) = sqrt(exp(that) - 1)",
                **context,
                option="beta_d" if beta_d / 2 > beta_min else "beta_min",
                hint="keep beta_d / 2 + beta_min <= 709 (k-diffusion: 19.9 / 2 + 0.1)",
            )


_COLLAPSE_CAUSE = {
    "laplace": "Laplace clamps its sigmas to [sigma_min, sigma_max], and these settings clamp several onto one end",
    "polyexponential": "a large rho squeezes the last sigmas onto sigma_min",
    "karras": "rho and the sigma range leave sigmas closer than the dtype resolves",
    "beta_a1111": "extreme beta_alpha / beta_beta squeeze sigmas onto one end of the range",
    "vp": "beta_d, beta_min and eps_s leave sigmas closer than the dtype resolves",
}


def _verify(sigmas: Tensor, plan: _Plan) -> Tensor:
    """The guarantee of get_sigmas: finite, >= 0, strictly decreasing while positive, at most one final 0.

    A1111's timesteps are only non-increasing: from 501 steps on DDIM's list holds t = 999 twice, as in A1111.
    """
    strict = plan.timesteps is None
    values = sigmas.detach().double().cpu()
    positive = values[values > 0]
    problem = None
    if values.ndim != 1 or len(values) < 2:
        problem = f"{len(values)} sigma(s), not a schedule"
    elif not bool(torch.isfinite(values).all()):
        problem = "sigmas that are not finite"
    elif bool((values < 0).any()):
        problem = "negative sigmas"
    elif len(positive) < len(values) - 1 or (len(positive) == len(values) - 1 and values[-1] != 0):
        problem = "sigma 0 before the end (a positive sigma rounds to 0)"
    else:
        bad = positive[1:] >= positive[:-1] if strict else positive[1:] > positive[:-1]
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            pair = f"{float(positive[i]):g} -> {float(positive[i + 1]):g}"
            problem = f"repeated or increasing sigmas (at index {i + 1}: {pair})"
    if problem is None:
        return sigmas
    cause = _COLLAPSE_CAUSE.get(plan.name)
    raise SdlabError(
        f"schedule {plan.name!r} gives {problem} in {str(plan.dtype).removeprefix('torch.')} for these settings"
        + (f": {cause}" if cause else ""),
        **plan.context,
        hint="use less extreme options or fewer steps, or dtype=torch.float64",
    )


# ---------------------------------------------------------------------------------------------------------
# get_sigmas: names, A1111 options and validation around the pure functions
# ---------------------------------------------------------------------------------------------------------


def check_schedule_options(schedule: str, steps: int, model: Any = None, **options: Any) -> str:
    """Check a get_sigmas call without computing it; return the schedule it resolves to.

    Takes get_sigmas' arguments (``sigma_min``, ``sampler``, ``threshold_noise``, ...) and raises
    :class:`SdlabError` for an unknown schedule or option, ``steps`` that is not an int in [1, MAX_STEPS], and
    any value outside :data:`SCHEDULE_OPTION_DOMAINS` or the limits that join several options (linear_quadratic's
    threshold against its linear steps, Karras' rho against the sigma range, VP's overflow ...). The result is a
    canonical name ("karras"), or "<sampler> timesteps" for A1111's DDIM / PLMS / UniPC under "Automatic".
    :func:`get_sigmas` runs the same checks, then verifies the sigmas it computed (finite, strictly decreasing
    while positive, in the requested dtype), which only extreme values can fail.

    >>> check_schedule_options("Automatic", 20, sampler="DPM++ 2M")
    'karras'
    """
    return _plan(schedule, steps, model, options).name


def get_sigmas(
    schedule: str,
    steps: int,
    model: Any = None,
    *,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float | None = None,
    discard_penultimate: bool = False,
    sampler: str | None = None,
    beta_alpha: float = 0.6,
    beta_beta: float = 0.6,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **kwargs: Any,
) -> Tensor:
    """The sigmas of ``schedule`` for ``steps`` steps: 1-D, finite, strictly decreasing, normally ending in 0.

    ``model``: anything with ``.sigmas`` (ascending training table) and optionally ``.sigma_min`` /
    ``.sigma_max`` (a continuous model may have only those); ``None`` is SD 1.x. ``sigma_min``, ``sigma_max``,
    ``rho``: A1111's overrides (None or 0 = model default; rho 7 for karras, 1 for polyexponential); like
    A1111 only the schedules with ``uses_sigma_range`` read them. ``discard_penultimate``: compute steps+1
    sigmas and drop ``sigmas[-2]`` (A1111 PR #6044). ``sampler``: resolves "Automatic" to the schedule the
    name carries ("DPM++ 2M Karras") or the sampler's A1111 default; for A1111's DDIM, PLMS and UniPC that is
    their own fixed timesteps (on SD 1.x's training table without a model), as ``generate`` runs them. It also
    ORs in the sampler's own discard flag for any schedule, as A1111 and ComfyUI do.

    Options in ``kwargs``: ``use_old_karras_scheduler_sigmas`` (A1111: default range [0.1, 10] for every
    schedule that reads it), ``ays_model`` ("sd1", "sdxl", "svd"; default from ``model.is_sdxl``),
    ``threshold_noise`` / ``linear_steps`` (linear_quadratic), ``laplace_mu`` / ``laplace_beta``,
    ``beta_d`` / ``beta_min`` / ``eps_s`` (vp). An option another schedule reads is ignored, but its value is
    still checked. Every value is checked against :data:`SCHEDULE_OPTION_DOMAINS` first (see
    :func:`check_schedule_options`); values that pass but would still give repeated or non-finite sigmas in
    ``dtype`` raise :class:`SdlabError` too.

    >>> get_sigmas("Exponential", 3, sigma_min=0.1, sigma_max=10.0)
    tensor([10.0000,  1.0000,  0.1000,  0.0000])
    >>> get_sigmas("Karras", 10, discard_penultimate=True).shape  # 11 sigmas, the one before 0 dropped
    torch.Size([11])
    """
    options = {
        "sigma_min": sigma_min,
        "sigma_max": sigma_max,
        "rho": rho,
        "discard_penultimate": discard_penultimate,
        "sampler": sampler,
        "beta_alpha": beta_alpha,
        "beta_beta": beta_beta,
        "device": device,
        "dtype": dtype,
        **kwargs,
    }
    plan = _plan(schedule, steps, model, options)
    try:
        if plan.timesteps is not None:
            sigmas = plan.timesteps().detach()
        else:
            assert plan.setting is not None
            sigmas = _SCHEDULES[plan.name][1](plan.setting)
    except SdlabError as err:
        raise SdlabError(err.message, hint=err.hint, **{**plan.context, **err.context}) from None
    if plan.discard:
        if len(sigmas) < 3:
            raise SdlabError("too few sigmas to discard the penultimate one", **plan.context, hint="use more steps")
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    try:
        sigmas = sigmas.to(device=plan.device, dtype=plan.dtype)
    except (RuntimeError, AssertionError) as exc:  # e.g. CUDA asked for on a machine without it
        raise SdlabError(f"cannot put the sigmas on {plan.device!r}: {exc}", **plan.context, hint="use 'cpu'") from None
    return _verify(sigmas, plan)


def _model_range(model: Any, schedule: str) -> tuple[Tensor | None, float, float]:
    """(ascending table or None, sigma_min, sigma_max) of ``model``; None is SD 1.x."""
    if model is None:
        table = _training_sigmas(0.00085, 0.012, 1000, "scaled_linear")
        return table, float(table[0]), float(table[-1])
    table = getattr(model, "sigmas", None)
    if table is not None:
        table = torch.as_tensor(table).detach().cpu().float().flatten()
        if len(table) < 2 or not bool(torch.isfinite(table).all()) or not bool((table > 0).all()):
            raise SdlabError(
                "model.sigmas must hold >= 2 finite positive values", schedule=schedule, hint="check the model"
            )
        if not bool((table[1:] > table[:-1]).all()):
            raise SdlabError("model.sigmas must be ascending", schedule=schedule, hint="pass the table flipped")
    lo = getattr(model, "sigma_min", None)
    hi = getattr(model, "sigma_max", None)
    lo = float(table[0]) if lo is None and table is not None else lo
    hi = float(table[-1]) if hi is None and table is not None else hi
    if lo is None or hi is None:
        raise SdlabError(
            "model needs .sigmas or .sigma_min and .sigma_max", schedule=schedule, hint="pass model=None for SD 1.x"
        )
    return table, float(lo), float(hi)


def _ays_model(value: str | None, model: Any, name: str, context: dict) -> str:
    if value is None:
        return "sdxl" if getattr(model, "is_sdxl", False) else "sd1"
    tables = AYS_COMFY if name == "align_your_steps_comfy" else AYS_A1111
    key = str(value).lower()
    if key not in AYS_COMFY or (name == "align_your_steps_a1111" and key not in tables):
        raise SdlabError(
            f"unknown ays_model {value!r}",
            **{**context, "ays_model": value},
            hint="choose one of: " + ", ".join(tables),
        )
    return key
