"""Small pieces the sampler algorithms share: argument checks, the callback dict, churn, log-SNR time, phi functions.

Each sampler module (:mod:`sdlab.samplers.kdiffusion`, :mod:`sdlab.samplers.dpm_solver`,
:mod:`sdlab.samplers.comfy` and its parts) takes these from here, so that each rule has one home.
:func:`public_in` names the module a sampler function is published from (its ``__module__``), which is what
:func:`sdlab.samplers.domains.function_key` reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.samplers.base import Callback, to_d

__all__ = [
    "public_in",
    "check_steps",
    "check_order",
    "tell",
    "report",
    "churn",
    "churned_slope",
    "log_snr_time",
    "sigma_at_time",
    "sigma_like",
    "half_log_snr",
    "phi1",
    "phi2",
    "sigma_batch",
    "combine",
]

F = TypeVar("F", bound=Callable[..., Any])


def public_in(module: str) -> Callable[[F], F]:
    """Mark a function as published from ``module`` (like numpy's ``set_module``): its ``__module__`` says so.

    Sampler functions defined in a part module keep the option-domain key of the module that re-exports them.
    """

    def mark(fn: F) -> F:
        fn.__module__ = module
        return fn

    return mark


def check_steps(name: str, x: Tensor, sigmas: Tensor) -> None:
    """Raise unless ``sigmas`` is 1-D with at least one step and ``x`` has a batch dimension."""
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise SdlabError(
            "sigmas must be a 1-D tensor with at least 2 entries (one step)",
            hint="build it with a schedule function, e.g. [sigma_max, ..., 0]",
            sampler=name,
            shape=tuple(sigmas.shape),
        )
    if x.ndim < 1:
        raise SdlabError("x needs a batch dimension", sampler=name, shape=tuple(x.shape))


def check_order(sampler: str, name: str, value: int, low: int, high: int) -> None:
    """Raise unless the integer option ``name`` lies in ``[low, high]``."""
    if not isinstance(value, int) or not low <= value <= high:
        hint = f"pass {name}={high}" if isinstance(value, int) and value > high else f"pass {name}={low}"
        raise SdlabError(f"{name} must be an integer in [{low}, {high}]", sampler=sampler, hint=hint, **{name: value})


def tell(callback: Callback | None, x: Tensor, i: int, sigma: Any, sigma_hat: Any, denoised: Tensor) -> None:
    """Call ``callback`` (if any) with k-diffusion's step dict."""
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def report(callback: Callback | None, x: Tensor, i: int, sigma: Tensor, denoised: Tensor) -> None:
    """:func:`tell` for a step without churn (``sigma_hat = sigma``)."""
    tell(callback, x, i, sigma, sigma, denoised)


def churn(
    x: Tensor, sigma: Tensor, n_steps: int, noise: Tensor, s_churn: float, s_tmin: float, s_tmax: float, s_noise: float
) -> tuple[Tensor, Tensor]:
    """Karras et al. 2022 Alg. 2, lines 4-7: add noise to raise sigma to sigma_hat = (1 + gamma) sigma."""
    gamma = min(s_churn / n_steps, 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
    eps = noise * s_noise
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigma**2) ** 0.5
    return x, sigma_hat


def churned_slope(
    model: Callable[..., Tensor],
    x: Tensor,
    sigmas: Tensor,
    i: int,
    noise_sampler: Callable[[Tensor, Tensor], Tensor],
    extra_args: dict[str, Any],
    callback: Callback | None,
    knobs: tuple[float, float, float, float],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Step ``i`` of Euler/Heun/DPM2 up to the first slope: churn, denoise at sigma_hat, report.

    The churn noise is drawn on every step, used or not, so the RNG stream matches k-diffusion's. ``knobs`` is
    ``(s_churn, s_tmin, s_tmax, s_noise)``. Returns ``(x, sigma_hat, denoised, d)``.
    """
    noise = noise_sampler(sigmas[i], sigmas[i + 1])
    x, sigma_hat = churn(x, sigmas[i], len(sigmas) - 1, noise, *knobs)
    denoised = model(x, sigma_hat * x.new_ones([x.shape[0]]), **extra_args)
    d = to_d(x, sigma_hat, denoised)
    tell(callback, x, i, sigmas[i], sigma_hat, denoised)
    return x, sigma_hat, denoised, d


def log_snr_time(sigma: Tensor) -> Tensor:
    """Log-SNR time of DPM-Solver: t = lambda = -log sigma."""
    return sigma.log().neg()


def sigma_at_time(t: Tensor) -> Tensor:
    """Inverse of :func:`log_snr_time`: sigma = exp(-t)."""
    return t.neg().exp()


def sigma_like(sigma: float | Tensor, sigmas: Tensor) -> Tensor:
    """A sigma (float or tensor, as get_ancestral_step returns it) as a 0-d tensor like ``sigmas``."""
    return torch.as_tensor(sigma, dtype=sigmas.dtype, device=sigmas.device)


def half_log_snr(sigma: float) -> float:
    """Half log-SNR ``lambda = log(alpha / sigma) = -log(sigma)`` of a variance-exploding model."""
    return -math.log(sigma)


def phi1(h: float) -> float:
    """``phi_1(h) = (e^h - 1) / h`` of exponential integrators."""
    return math.expm1(h) / h


def phi2(h: float) -> float:
    """``phi_2(h) = (phi_1(h) - 1) / h``."""
    return (phi1(h) - 1.0) / h


def sigma_batch(x: Tensor, sigma: Tensor | float) -> Tensor:
    """``sigma`` as the per-sample ``(batch,)`` tensor a denoiser takes."""
    return x.new_ones([x.shape[0]]) * sigma


def combine(weights: list[float], tensors: list[Tensor]) -> Tensor:
    """The weighted sum ``sum_j weights[j] * tensors[j]``."""
    return sum(w * t for w, t in zip(weights, tensors, strict=True))  # type: ignore[return-value]
