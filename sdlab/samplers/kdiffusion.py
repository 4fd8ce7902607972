"""The 13 k-diffusion samplers that A1111 and ComfyUI run (k-diffusion 0.1.1.post1), one plain function each.

Each has sdlab's signature ``fn(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None,
**knobs) -> x`` (see :mod:`sdlab.samplers.base`), k-diffusion's knobs and defaults, and k-diffusion's
numbers: on the same denoiser, sigmas and noise they match ``k_diffusion.sampling.sample_<name>`` bit for
bit in float64 (``scripts/check_kdiffusion.py``), following its order of operations. Where k-diffusion
draws from the global RNG (the churn noise of Euler/Heun/DPM2, drawn every step; the Brownian-tree seed of
the SDE samplers) these draw the same numbers in the same order, so a seed reproduces k-diffusion's result.

>>> sigmas = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.3, 0.0])
>>> x = torch.randn(1, 4, 8, 8) * sigmas[0]
>>> x0 = SAMPLERS["dpmpp_2m"](lambda x, sigma: x * 0, x, sigmas)  # a denoiser that always says 0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.samplers.base import (
    Callback,
    Denoiser,
    NoiseSampler,
    default_noise_sampler,
    get_ancestral_step,
    to_d,
)
from sdlab.samplers.brownian import BrownianTreeNoiseSampler

__all__ = [
    "SAMPLERS",
    "euler",
    "euler_ancestral",
    "heun",
    "dpm_2",
    "dpm_2_ancestral",
    "lms",
    "dpm_fast",
    "dpm_adaptive",
    "dpmpp_2s_ancestral",
    "dpmpp_sde",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "dpmpp_3m_sde",
    "lms_coefficients",
]


# --- shared pieces -----------------------------------------------------------------------------------


def _check(name: str, x: Tensor, sigmas: Tensor) -> None:
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise SdlabError(
            "sigmas must be a 1-D tensor with at least 2 entries (one step)",
            hint="build it with a schedule function, e.g. [sigma_max, ..., 0]",
            sampler=name,
            shape=tuple(sigmas.shape),
        )
    if x.ndim < 1:
        raise SdlabError("x needs a batch dimension", sampler=name, shape=tuple(x.shape))


def _tell(callback: Callback | None, x: Tensor, i: int, sigma: Any, sigma_hat: Any, denoised: Tensor) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def _churn(
    x: Tensor, sigma: Tensor, n_steps: int, noise: Tensor, s_churn: float, s_tmin: float, s_tmax: float, s_noise: float
) -> tuple[Tensor, Tensor]:
    """Karras et al. 2022 Alg. 2, lines 4-7: add noise to raise sigma to sigma_hat = (1 + gamma) sigma."""
    gamma = min(s_churn / n_steps, 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
    eps = noise * s_noise
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigma**2) ** 0.5
    return x, sigma_hat


def _t(sigma: Tensor) -> Tensor:
    """Log-SNR time of DPM-Solver: t = lambda = -log sigma."""
    return sigma.log().neg()


def _sigma(t: Tensor) -> Tensor:
    """Inverse of :func:`_t`: sigma = exp(-t)."""
    return t.neg().exp()


def _like(sigma: float | Tensor, sigmas: Tensor) -> Tensor:
    """A sigma (float or tensor, as get_ancestral_step returns it) as a 0-d tensor like ``sigmas``."""
    return torch.as_tensor(sigma, dtype=sigmas.dtype, device=sigmas.device)


def _brownian(x: Tensor, sigmas: Tensor) -> NoiseSampler:
    """k-diffusion's default for the SDE samplers: a Brownian tree over the schedule, seeded from the global RNG."""
    return BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), cpu=False)


# --- Karras et al. 2022 --------------------------------------------------------------------------------


@torch.no_grad()
def euler(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Tensor:
    """Euler steps with optional churn (Karras et al. 2022, Algorithm 2)."""
    _check("euler", x, sigmas)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    n = len(sigmas) - 1
    for i in range(n):
        # The churn noise is drawn on every step, used or not, so the RNG stream matches k-diffusion's.
        noise = noise_sampler(sigmas[i], sigmas[i + 1])
        x, sigma_hat = _churn(x, sigmas[i], n, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _tell(callback, x, i, sigmas[i], sigma_hat, denoised)
        # Euler step from sigma_hat to sigma_{i+1}
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def euler_ancestral(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """Ancestral sampling with Euler steps: down to sigma_down, then fresh noise sigma_up (k-diffusion)."""
    _check("euler_ancestral", x, sigmas)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _tell(callback, x, i, sigmas[i], sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        # Euler step to sigma_down
        x = x + d * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def heun(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Tensor:
    """Heun's 2nd-order steps with optional churn (Karras et al. 2022, Algorithm 2)."""
    _check("heun", x, sigmas)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    n = len(sigmas) - 1
    for i in range(n):
        noise = noise_sampler(sigmas[i], sigmas[i + 1])  # drawn every step, as in k-diffusion
        x, sigma_hat = _churn(x, sigmas[i], n, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _tell(callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            # Euler step to sigma = 0 (Alg. 2 line 8 skips the correction there)
            x = x + d * dt
        else:
            # Heun: average the slopes at both ends of the Euler step
            x_2 = x + d * dt
            denoised_2 = model(x_2, sigmas[i + 1] * s_in, **extra_args)
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            d_prime = (d + d_2) / 2
            x = x + d_prime * dt
    return x


# --- DPM-Solver (Lu et al. 2022, arXiv:2206.00927) -----------------------------------------------------------


@torch.no_grad()
def dpm_2(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Tensor:
    """DPM-Solver-2 midpoint steps in sigma, with Karras churn (Lu et al. 2022; Karras et al. 2022, Alg. 2)."""
    _check("dpm_2", x, sigmas)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    n = len(sigmas) - 1
    for i in range(n):
        noise = noise_sampler(sigmas[i], sigmas[i + 1])  # drawn every step, as in k-diffusion
        x, sigma_hat = _churn(x, sigmas[i], n, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _tell(callback, x, i, sigmas[i], sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            # Euler step to sigma = 0
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            # DPM-Solver-2: slope at the geometric midpoint, applied over the whole step
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            denoised_2 = model(x_2, sigma_mid * s_in, **extra_args)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def dpm_2_ancestral(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """Ancestral sampling with DPM-Solver-2 steps to sigma_down (Lu et al. 2022; k-diffusion)."""
    _check("dpm_2_ancestral", x, sigmas)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _tell(callback, x, i, sigmas[i], sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            # Euler step to sigma = 0
            x = x + d * (sigma_down - sigmas[i])
        else:
            # DPM-Solver-2 to sigma_down, then fresh noise sigma_up
            sigma_mid = sigmas[i].log().lerp(_like(sigma_down, sigmas).log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = model(x_2, sigma_mid * s_in, **extra_args)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigma_down - sigmas[i])
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def lms_coefficients(t: Sequence[float], i: int, order: int) -> list[float]:
    """Adams-Bashforth weights c_j = integral over [t_i, t_{i+1}] of the Lagrange basis on t_i, ..., t_{i-order+1}.

    ``c_j`` multiplies the slope at ``t[i - j]``; the weights sum to ``t[i + 1] - t[i]``. Integrated with
    ``scipy.integrate.quad`` (``epsrel=1e-4``) as k-diffusion does.
    """
    from scipy import integrate

    if not 1 <= order <= i + 1:
        raise SdlabError("LMS order must be between 1 and the number of slopes so far", order=order, step=i)

    def basis(j: int) -> Callable[[float], float]:
        def ell(tau: float) -> float:
            prod = 1.0
            for k in range(order):
                if k != j:
                    prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
            return prod

        return ell

    return [integrate.quad(basis(j), t[i], t[i + 1], epsrel=1e-4)[0] for j in range(order)]


@torch.no_grad()
def lms(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    order: int = 4,
    denoise_to_zero: bool = False,
) -> Tensor:
    """Linear multistep (Adams-Bashforth) in sigma on the last ``order`` slopes (Karras et al. 2022; k-diffusion).

    The step to a final sigma of 0 is k-diffusion's multistep step (A1111's "LMS"), or with
    ``denoise_to_zero=True`` the denoised prediction itself (ComfyUI's ``lms`` since 2025, which sets it).
    """
    _check("lms", x, sigmas)
    if order < 1:
        raise SdlabError("LMS order must be >= 1", hint="k-diffusion's default is 4", order=order)
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    t = sigmas.detach().cpu().numpy()
    ds: list[Tensor] = []  # slopes, oldest first
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        ds = [*ds, to_d(x, sigmas[i], denoised)][-order:]
        _tell(callback, x, i, sigmas[i], sigmas[i], denoised)
        if denoise_to_zero and sigmas[i + 1] == 0:
            x = denoised  # ComfyUI's denoising step
        else:
            coeffs = lms_coefficients(t, i, min(i + 1, order))
            x = x + sum(c * d for c, d in zip(coeffs, reversed(ds), strict=True))
    return x


def _dpm_solver_1(x: Tensor, t: Tensor, t_next: Tensor, eps: Tensor) -> Tensor:
    """DPM-Solver-1 (= DDIM) in noise prediction: x_next = x - sigma_next (e^h - 1) eps."""
    h = t_next - t
    return x - _sigma(t_next) * h.expm1() * eps


def _dpm_solver_2(
    eps_at: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor, t_next: Tensor, eps: Tensor, r1: float = 1 / 2
) -> tuple[Tensor, Tensor]:
    """DPM-Solver-2 (Lu et al. 2022), one more evaluation at s1 = t + r1 h. Returns (x_next, eps at s1)."""
    h = t_next - t
    s1 = t + r1 * h
    u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
    eps_r1 = eps_at(u1, s1)
    x_2 = x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)
    return x_2, eps_r1


def _dpm_solver_3(
    eps_at: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    t: Tensor,
    t_next: Tensor,
    eps: Tensor,
    eps_r1: Tensor | None = None,
    r1: float = 1 / 3,
    r2: float = 2 / 3,
) -> Tensor:
    """DPM-Solver-3 (Lu et al. 2022): evaluations at s1 = t + r1 h (reused if given) and s2 = t + r2 h."""
    h = t_next - t
    s1, s2 = t + r1 * h, t + r2 * h
    if eps_r1 is None:
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = eps_at(u1, s1)
    phi_r2 = (r2 * h).expm1() / (r2 * h) - 1
    u2 = x - _sigma(s2) * (r2 * h).expm1() * eps - _sigma(s2) * (r2 / r1) * phi_r2 * (eps_r1 - eps)
    eps_r2 = eps_at(u2, s2)
    return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)


def _endpoint(sigma: float | Tensor) -> Tensor:
    """As k-diffusion's ``torch.tensor(sigma)``: a tensor keeps dtype and device, a number gets the default dtype."""
    if isinstance(sigma, Tensor):
        return sigma.detach().clone()
    return torch.tensor(float(sigma))


def _dpm_solver_setup(
    name: str,
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    extra_args: dict[str, Any] | None,
    sigma_min: float | Tensor | None,
    sigma_max: float | Tensor | None,
    eta: float,
) -> tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Tensor]]:
    """Endpoints t_start, t_end (log-SNR) and the noise-prediction eps(x, t) that DPM-Solver integrates.

    The times are 0-d tensors in the endpoints' dtype, as k-diffusion makes them: by default the endpoints are
    taken from ``sigmas`` (so float64 sigmas give float64 times, as ComfyUI passes them), while a number passed
    as ``sigma_min`` / ``sigma_max`` (A1111 passes the model's range as floats) gives torch's default dtype.
    """
    _check(name, x, sigmas)
    sig_max = _endpoint(sigmas[0] if sigma_max is None else sigma_max)
    sig_min = _endpoint(sigmas[sigmas > 0].min() if sigma_min is None else sigma_min)
    lo, hi = float(sig_min), float(sig_max)  # for the messages
    if not (lo > 0 and hi > 0):
        raise SdlabError("DPM-Solver needs sigma_min and sigma_max > 0", sampler=name, sigma_min=lo, sigma_max=hi)
    t_start, t_end = _t(sig_max), _t(sig_min)
    if t_end == t_start:
        raise SdlabError(
            f"{name} integrates from sigma_max to sigma_min, and both are {hi:g} here: nothing to integrate",
            sampler=name,
            sigma_min=lo,
            sigma_max=hi,
            hint="by default they are the schedule's first and smallest positive sigma, so a schedule ending in 0 "
            "needs >= 2 steps; or pass sigma_min= and sigma_max= (A1111 passes the model's own range)",
        )
    if eta and not t_end > t_start:
        raise SdlabError("eta must be 0 when sampling from low to high noise", sampler=name, eta=eta)
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])

    def eps_at(x: Tensor, t: Tensor) -> Tensor:
        return (x - model(x, _sigma(t) * s_in, **extra_args)) / _sigma(t)

    return t_start, t_end, eps_at


def _ancestral_target(t: Tensor, t_next: Tensor, t_end: Tensor, eta: float) -> tuple[Tensor, Tensor | float]:
    """Where an ancestral DPM-Solver step lands (t_down, capped at t_end) and the noise sigma_up it then adds.

    The noise's radicand is clamped at 0. It is negative only by rounding: dpm_fast's grid is float32 (torch's
    default dtype, as in k-diffusion) while float64 endpoints give a float64 t_end, so the last grid time may
    round past t_end; k-diffusion then returns NaN, where the cap at t_end means no noise is left to add.
    """
    if not eta:
        return t_next, 0.0
    # get_ancestral_step's sigma_down, kept in the times' dtype as k-diffusion computes it
    sigma, sigma_next = _sigma(t), _sigma(t_next)
    sigma_up = torch.minimum(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
    t_down = torch.minimum(t_end, _t((sigma_next**2 - sigma_up**2) ** 0.5))
    return t_down, (sigma_next**2 - _sigma(t_down) ** 2).clamp(min=0) ** 0.5


@torch.no_grad()
def dpm_fast(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 0.0,
    s_noise: float = 1.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    n: int | None = None,
) -> Tensor:
    """DPM-Solver-fast: n evaluations as uniform log-SNR steps of order 3, 3, ..., then 2/1 (Lu et al. 2022).

    Integrates from ``sigma_max`` (default ``sigmas[0]``) to ``sigma_min`` (default: the smallest positive
    sigma) with ``n`` model evaluations (default ``len(sigmas) - 1``) and returns x at ``sigma_min``: the
    other sigmas are not used.
    """
    t_start, t_end, eps_at = _dpm_solver_setup("dpm_fast", model, x, sigmas, extra_args, sigma_min, sigma_max, eta)
    n = len(sigmas) - 1 if n is None else n
    if n < 1:
        raise SdlabError("dpm_fast needs n >= 1 model evaluations", n=n)
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    m = n // 3 + 1
    ts = torch.linspace(t_start, t_end, m + 1, device=x.device)
    orders = [3] * (m - 2) + [2, 1] if n % 3 == 0 else [3] * (m - 1) + [n % 3]
    for i, order in enumerate(orders):
        t, t_next = ts[i], ts[i + 1]
        t_down, sigma_up = _ancestral_target(t, t_next, t_end, eta)
        eps = eps_at(x, t)
        denoised = x - _sigma(t) * eps
        if callback is not None:
            info = {"x": x, "i": i, "t": t, "t_up": t, "denoised": denoised}
            callback({"sigma": _sigma(t), "sigma_hat": _sigma(t), **info})
        if order == 1:
            x = _dpm_solver_1(x, t, t_down, eps)
        elif order == 2:
            x, _ = _dpm_solver_2(eps_at, x, t, t_down, eps)
        else:
            x = _dpm_solver_3(eps_at, x, t, t_down, eps)
        x = x + sigma_up * s_noise * noise_sampler(_sigma(t), _sigma(t_next))
    return x


class _PIDStepSize:
    """PID step-size controller on the inverse error (Söderlind 2003; k-diffusion's PIDStepSizeController)."""

    def __init__(
        self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float, accept_safety: float
    ) -> None:
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.inv_errors: list[float] = []  # this step's, the last accepted, the one before

    def propose(self, error: float) -> bool:
        """Scale h by the controller's factor; say whether the step that gave ``error`` is accepted."""
        inv_error = 1 / (error + 1e-8)
        if not self.inv_errors:
            self.inv_errors = [inv_error] * 3
        self.inv_errors[0] = inv_error
        e0, e1, e2 = self.inv_errors
        factor = 1 + math.atan(e0**self.b1 * e1**self.b2 * e2**self.b3 - 1)  # soft limiter
        accept = factor >= self.accept_safety
        if accept:
            self.inv_errors = [e0, e0, e1]
        self.h *= factor
        return accept


@torch.no_grad()
def dpm_adaptive(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    order: int = 3,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.05,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
    dcoeff: float = 0.0,
    accept_safety: float = 0.81,
    eta: float = 0.0,
    s_noise: float = 1.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    return_info: bool = False,
) -> Tensor | tuple[Tensor, dict[str, int]]:
    """DPM-Solver-12/23: embedded pairs with a PID-controlled adaptive step size (Lu et al. 2022).

    Integrates from ``sigma_max`` (default ``sigmas[0]``) to ``sigma_min`` (default: the smallest positive
    sigma), choosing its own steps: the number of sigmas is ignored. Each attempted step (accepted or
    not) costs ``order`` model evaluations; the callback dict and ``return_info=True``'s info carry the
    running counts ``steps``, ``nfe``, ``n_accept``, ``n_reject``. The error norm spans the whole batch, so
    all items take the same steps and an item's result depends on its batch.
    """
    t_start, t_end, eps_at = _dpm_solver_setup("dpm_adaptive", model, x, sigmas, extra_args, sigma_min, sigma_max, eta)
    if order not in (2, 3):
        raise SdlabError("dpm_adaptive order must be 2 or 3", order=order)
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    forward = bool(t_end > t_start)
    h_init = abs(h_init) * (1 if forward else -1)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    pid = _PIDStepSize(h_init, pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    info = {"steps": 0, "nfe": 0, "n_accept": 0, "n_reject": 0}
    s, x_prev = t_start, x
    while s < t_end - 1e-5 if forward else s > t_end + 1e-5:
        t = torch.minimum(t_end, s + pid.h) if forward else torch.maximum(t_end, s + pid.h)
        t_down, sigma_up = _ancestral_target(s, t, t_end, eta)
        eps = eps_at(x, s)
        denoised = x - _sigma(s) * eps
        # An embedded pair: a low-order and a high-order solution sharing model evaluations
        if order == 2:
            x_low = _dpm_solver_1(x, s, t_down, eps)
            x_high, _ = _dpm_solver_2(eps_at, x, s, t_down, eps)
        else:
            x_low, eps_r1 = _dpm_solver_2(eps_at, x, s, t_down, eps, r1=1 / 3)
            x_high = _dpm_solver_3(eps_at, x, s, t_down, eps, eps_r1=eps_r1)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if pid.propose(float(error)):
            x_prev = x_low
            x = x_high + sigma_up * s_noise * noise_sampler(_sigma(s), _sigma(t))
            s = t
            info["n_accept"] += 1
        else:
            info["n_reject"] += 1
        info["nfe"] += order
        info["steps"] += 1
        if callback is not None:
            step = {"x": x, "i": info["steps"] - 1, "t": s, "t_up": s, "denoised": denoised, "error": error}
            callback({"sigma": _sigma(s), "sigma_hat": _sigma(s), **step, "h": pid.h, **info})
    return (x, info) if return_info else x


# --- DPM-Solver++ (Lu et al. 2022b, arXiv:2211.01095) --------------------------------------------------------


@torch.no_grad()
def dpmpp_2s_ancestral(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """Ancestral sampling with DPM-Solver++(2S) steps to sigma_down (Lu et al. 2022b, Alg. 1)."""
    _check("dpmpp_2s_ancestral", x, sigmas)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _tell(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            # Euler step to sigma = 0
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigma_down - sigmas[i])
        else:
            # DPM-Solver++(2S): data prediction at the log-SNR midpoint s, then the full step
            t, t_next = _t(sigmas[i]), _t(_like(sigma_down, sigmas))
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (_sigma(s) / _sigma(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = model(x_2, _sigma(s) * s_in, **extra_args)
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def dpmpp_sde(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 1 / 2,
) -> Tensor:
    """Stochastic DPM-Solver++(2S): two ancestral sub-steps via s = t + r h (Lu et al. 2022b; k-diffusion)."""
    _check("dpmpp_sde", x, sigmas)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _brownian(x, sigmas) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _tell(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            # Euler step to sigma = 0
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        # Sub-step 1: ancestral DPM-Solver++(1) from t to s
        sd, su = get_ancestral_step(_sigma(t), _sigma(s), eta)
        s_ = _t(_like(sd, sigmas))
        x_2 = (_sigma(s_) / _sigma(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise_sampler(_sigma(t), _sigma(s)) * s_noise * su
        denoised_2 = model(x_2, _sigma(s) * s_in, **extra_args)
        # Sub-step 2: ancestral step from t to t_next with the 2nd-order combination of both denoisings
        sd, su = get_ancestral_step(_sigma(t), _sigma(t_next), eta)
        t_next_ = _t(_like(sd, sigmas))
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (_sigma(t_next_) / _sigma(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise_sampler(_sigma(t), _sigma(t_next)) * s_noise * su
    return x


@torch.no_grad()
def dpmpp_2m(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> Tensor:
    """DPM-Solver++(2M): multistep, one model evaluation per step (Lu et al. 2022b, Alg. 2)."""
    _check("dpmpp_2m", x, sigmas)
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _tell(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            # first step and last step: DPM-Solver++(1)
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - _t(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def dpmpp_2m_sde(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    solver_type: str = "midpoint",
) -> Tensor:
    """SDE-DPM-Solver++(2M) with a "midpoint" or "heun" 2nd-order correction (Lu et al. 2022b; k-diffusion)."""
    _check("dpmpp_2m_sde", x, sigmas)
    if solver_type not in ("heun", "midpoint"):
        raise SdlabError("unknown solver_type", hint="use 'midpoint' or 'heun'", solver_type=solver_type)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _brownian(x, sigmas) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    old_denoised, h_last, h = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _tell(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            # Last step: the denoised estimate
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            # 1st-order SDE step: decay x, pull toward denoised
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                # 2nd-order correction from the last two denoisings
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                noise = noise_sampler(sigmas[i], sigmas[i + 1])
                x = x + noise * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
        old_denoised, h_last = denoised, h
    return x


@torch.no_grad()
def dpmpp_3m_sde(
    model: Denoiser,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """DPM-Solver++(3M) SDE: 3rd-order multistep on the last three denoisings (after Lu et al. 2022b; k-diffusion)."""
    _check("dpmpp_3m_sde", x, sigmas)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _brownian(x, sigmas) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    denoised_1, denoised_2 = None, None
    h, h_1, h_2 = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _tell(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            # Last step: the denoised estimate
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            # 1st-order SDE step
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                # 3rd order: first and second divided differences of the last three denoisings
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                # 2nd order on the first multistep
                r = h_1 / h
                d = (denoised - denoised_1) / r
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * d
            if eta:
                noise = noise_sampler(sigmas[i], sigmas[i + 1])
                x = x + noise * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


SAMPLERS: dict[str, Callable[..., Any]] = {
    "euler": euler,
    "euler_ancestral": euler_ancestral,
    "heun": heun,
    "dpm_2": dpm_2,
    "dpm_2_ancestral": dpm_2_ancestral,
    "lms": lms,
    "dpm_fast": dpm_fast,
    "dpm_adaptive": dpm_adaptive,
    "dpmpp_2s_ancestral": dpmpp_2s_ancestral,
    "dpmpp_sde": dpmpp_sde,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "dpmpp_3m_sde": dpmpp_3m_sde,
}
"""k-diffusion's names (``sample_<name>`` without the prefix) -> sdlab sampler functions."""
