"""The 13 k-diffusion samplers that A1111 and ComfyUI run (k-diffusion 0.1.1.post1), one plain function each.

Each has sdlab's signature ``fn(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None,
**knobs) -> x`` (see :mod:`sdlab.samplers.base`; the algorithms are written as ``fn(run, x, sigmas, ...)``
under :func:`~sdlab.samplers.steps.sampler`; the three ancestral ones are one algorithm with three step rules,
published by :func:`~sdlab.samplers.steps.variant`), k-diffusion's knobs and defaults, and k-diffusion's
numbers: on the same denoiser, sigmas and noise they match ``k_diffusion.sampling.sample_<name>`` bit for
bit in float64 (``scripts/check_kdiffusion.py``), following its order of operations. Where k-diffusion
draws from the global RNG (the churn noise of Euler/Heun/DPM2, drawn every step; the Brownian-tree seed of
the SDE samplers) these draw the same numbers in the same order, so a seed reproduces k-diffusion's result.

>>> sigmas = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.3, 0.0])
>>> x = torch.randn(1, 4, 8, 8) * sigmas[0]
>>> x0 = SAMPLERS["dpmpp_2m"](lambda x, sigma: x * 0, x, sigmas)  # a denoiser that always says 0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.noise.brownian import BrownianTreeNoiseSampler
from sdlab.samplers.base import NoiseSampler, Run, get_ancestral_step, to_d
from sdlab.samplers.dpm_solver import dpm_adaptive as dpm_adaptive
from sdlab.samplers.dpm_solver import dpm_fast as dpm_fast
from sdlab.samplers.steps import (
    Churn,
    check_steps,
    churned_slope,
    log_snr_time,
    sampler,
    sigma_at_time,
    sigma_like,
    variant,
)

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


def _brownian(x: Tensor, sigmas: Tensor) -> NoiseSampler:
    """k-diffusion's default for the SDE samplers: a Brownian tree over the schedule, seeded from the global RNG."""
    return BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), cpu=False)


# --- Karras et al. 2022, Algorithm 2, and DPM-Solver-2 (Lu et al. 2022, arXiv:2206.00927) -----------------------


@sampler(checked=True, group=Churn)
def euler(run: Run, x: Tensor, sigmas: Tensor, churn: Churn) -> Tensor:
    """Euler steps with optional churn (Karras et al. 2022, Algorithm 2)."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat, denoised, d = churned_slope(run, x, sigmas, i, churn)
        # Euler step from sigma_hat to sigma_{i+1}
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


@sampler(checked=True, group=Churn)
def heun(run: Run, x: Tensor, sigmas: Tensor, churn: Churn) -> Tensor:
    """Heun's 2nd-order steps with optional churn (Karras et al. 2022, Algorithm 2)."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat, denoised, d = churned_slope(run, x, sigmas, i, churn)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            # Euler step to sigma = 0 (Alg. 2 line 8 skips the correction there)
            x = x + d * dt
        else:
            # Heun: average the slopes at both ends of the Euler step
            x_2 = x + d * dt
            denoised_2 = run.denoise(x_2, sigmas[i + 1])
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            d_prime = (d + d_2) / 2
            x = x + d_prime * dt
    return x


@sampler(checked=True, group=Churn)
def dpm_2(run: Run, x: Tensor, sigmas: Tensor, churn: Churn) -> Tensor:
    """DPM-Solver-2 midpoint steps in sigma, with Karras churn (Lu et al. 2022; Karras et al. 2022, Alg. 2)."""
    for i in range(len(sigmas) - 1):
        x, sigma_hat, denoised, d = churned_slope(run, x, sigmas, i, churn)
        if sigmas[i + 1] == 0:
            # Euler step to sigma = 0
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            # DPM-Solver-2: slope at the geometric midpoint, applied over the whole step
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            denoised_2 = run.denoise(x_2, sigma_mid)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


# --- ancestral sampling (k-diffusion): a deterministic step down to sigma_down, then fresh noise sigma_up -----


@sampler()
def _ancestral(run: Run, x: Tensor, sigmas: Tensor, *, eta: float = 1.0, s_noise: float = 1.0, method: str) -> Tensor:
    """Ancestral sampling with ``method``'s step to sigma_down: "euler", "dpm_2" or "dpmpp_2s"."""
    check_steps(f"{method}_ancestral", x, sigmas)
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if method == "euler" or sigma_down == 0:
            # Euler step to sigma_down
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigma_down - sigmas[i])
        elif method == "dpm_2":
            # DPM-Solver-2: slope at the geometric midpoint to sigma_down
            d = to_d(x, sigmas[i], denoised)
            sigma_mid = sigmas[i].log().lerp(sigma_like(sigma_down, sigmas).log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = run.denoise(x_2, sigma_mid)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigma_down - sigmas[i])
        else:
            # DPM-Solver++(2S): data prediction at the log-SNR midpoint s, then the full step
            t, t_next = log_snr_time(sigmas[i]), log_snr_time(sigma_like(sigma_down, sigmas))
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (sigma_at_time(s) / sigma_at_time(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = run.denoise(x_2, sigma_at_time(s))
            x = (sigma_at_time(t_next) / sigma_at_time(t)) * x - (-h).expm1() * denoised_2
        # k-diffusion's DPM2 a adds no noise after an Euler step to sigma_down = 0
        if sigmas[i + 1] > 0 and (sigma_down != 0 or method != "dpm_2"):
            x = x + run.noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


euler_ancestral = variant(
    _ancestral,
    "euler_ancestral",
    "Ancestral sampling with Euler steps: down to sigma_down, then fresh noise sigma_up (k-diffusion).",
    method="euler",
)
dpm_2_ancestral = variant(
    _ancestral,
    "dpm_2_ancestral",
    "Ancestral sampling with DPM-Solver-2 steps to sigma_down (Lu et al. 2022; k-diffusion).",
    method="dpm_2",
)
dpmpp_2s_ancestral = variant(
    _ancestral,
    "dpmpp_2s_ancestral",
    "Ancestral sampling with DPM-Solver++(2S) steps to sigma_down (Lu et al. 2022b, Alg. 1).",
    method="dpmpp_2s",
)


# --- linear multistep ------------------------------------------------------------------------------------------


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


@sampler(checked=True)
def lms(run: Run, x: Tensor, sigmas: Tensor, *, order: int = 4, denoise_to_zero: bool = False) -> Tensor:
    """Linear multistep (Adams-Bashforth) in sigma on the last ``order`` slopes (Karras et al. 2022; k-diffusion).

    The step to a final sigma of 0 is k-diffusion's multistep step (A1111's "LMS"), or with
    ``denoise_to_zero=True`` the denoised prediction itself (ComfyUI's ``lms`` since 2025, which sets it).
    """
    if order < 1:
        raise SdlabError("LMS order must be >= 1", hint="k-diffusion's default is 4", order=order)
    t = sigmas.detach().cpu().numpy()
    ds: list[Tensor] = []  # slopes, oldest first
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
        ds = [*ds, to_d(x, sigmas[i], denoised)][-order:]
        if denoise_to_zero and sigmas[i + 1] == 0:
            x = denoised  # ComfyUI's denoising step
        else:
            coeffs = lms_coefficients(t, i, min(i + 1, order))
            x = x + sum(c * d for c, d in zip(coeffs, reversed(ds), strict=True))
    return x


# --- DPM-Solver++ (Lu et al. 2022b, arXiv:2211.01095) --------------------------------------------------------


@sampler(checked=True, noise=_brownian)
def dpmpp_sde(
    run: Run, x: Tensor, sigmas: Tensor, *, eta: float = 1.0, s_noise: float = 1.0, r: float = 1 / 2
) -> Tensor:
    """Stochastic DPM-Solver++(2S): two ancestral sub-steps via s = t + r h (Lu et al. 2022b; k-diffusion)."""
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
        if sigmas[i + 1] == 0:
            # Euler step to sigma = 0
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = log_snr_time(sigmas[i]), log_snr_time(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        # Sub-step 1: ancestral DPM-Solver++(1) from t to s
        sd, su = get_ancestral_step(sigma_at_time(t), sigma_at_time(s), eta)
        s_ = log_snr_time(sigma_like(sd, sigmas))
        x_2 = (sigma_at_time(s_) / sigma_at_time(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + run.noise_sampler(sigma_at_time(t), sigma_at_time(s)) * s_noise * su
        denoised_2 = run.denoise(x_2, sigma_at_time(s))
        # Sub-step 2: ancestral step from t to t_next with the 2nd-order combination of both denoisings
        sd, su = get_ancestral_step(sigma_at_time(t), sigma_at_time(t_next), eta)
        t_next_ = log_snr_time(sigma_like(sd, sigmas))
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (sigma_at_time(t_next_) / sigma_at_time(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + run.noise_sampler(sigma_at_time(t), sigma_at_time(t_next)) * s_noise * su
    return x


@sampler(checked=True)
def dpmpp_2m(run: Run, x: Tensor, sigmas: Tensor) -> Tensor:
    """DPM-Solver++(2M): multistep, one model evaluation per step (Lu et al. 2022b, Alg. 2)."""
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
        t, t_next = log_snr_time(sigmas[i]), log_snr_time(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            # first step and last step: DPM-Solver++(1)
            x = (sigma_at_time(t_next) / sigma_at_time(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - log_snr_time(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_at_time(t_next) / sigma_at_time(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def _check_solver_type(solver_type: str) -> None:
    if solver_type not in ("heun", "midpoint"):
        raise SdlabError("unknown solver_type", hint="use 'midpoint' or 'heun'", solver_type=solver_type)


@sampler(checked=True, noise=_brownian)
def dpmpp_2m_sde(
    run: Run, x: Tensor, sigmas: Tensor, *, eta: float = 1.0, s_noise: float = 1.0, solver_type: str = "midpoint"
) -> Tensor:
    """SDE-DPM-Solver++(2M) with a "midpoint" or "heun" 2nd-order correction (Lu et al. 2022b; k-diffusion)."""
    _check_solver_type(solver_type)
    old_denoised, h_last, h = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
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
                noise = run.noise_sampler(sigmas[i], sigmas[i + 1])
                x = x + noise * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
        old_denoised, h_last = denoised, h
    return x


@sampler(checked=True, noise=_brownian)
def dpmpp_3m_sde(run: Run, x: Tensor, sigmas: Tensor, *, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """DPM-Solver++(3M) SDE: 3rd-order multistep on the last three denoisings (after Lu et al. 2022b; k-diffusion)."""
    denoised_1, denoised_2 = None, None
    h, h_1, h_2 = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
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
                noise = run.noise_sampler(sigmas[i], sigmas[i + 1])
                x = x + noise * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


SAMPLERS: dict[str, Callable[..., Any]] = {fn.__name__: fn for fn in (
    euler, euler_ancestral, heun, dpm_2, dpm_2_ancestral, lms, dpm_fast, dpm_adaptive, dpmpp_2s_ancestral, dpmpp_sde,
    dpmpp_2m, dpmpp_2m_sde, dpmpp_3m_sde,
)}  # fmt: skip
"""k-diffusion's names (``sample_<name>`` without the prefix) -> sdlab sampler functions."""
