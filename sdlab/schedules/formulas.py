"""The schedule formulas: small pure functions, float64 on the CPU, one per A1111 / ComfyUI / k-diffusion schedule.

Each takes the number of sigmas ``n`` and what it reads (the training table, a sigma range, its own knobs) and
returns a 1-D float64 tensor, normally ending in 0. No checking here: :func:`sdlab.schedules.get_sigmas` resolves
names, checks options and verifies the result.

>>> karras(4, 0.0292, 14.6146)[-2:]
tensor([0.0292, 0.0000], dtype=torch.float64)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from sdlab.schedules.table import sigma_to_t, t_to_sigma

__all__ = [
    "AYS_A1111",
    "AYS_COMFY",
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


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _near_zero(x: float) -> bool:
    return math.isclose(x, 0.0, abs_tol=1e-5)


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
