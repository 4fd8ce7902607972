"""ComfyUI's stochastic exponential solvers: ER-SDE-Solver-3, SEEDS-2/3 and SA-Solver (with PECE). Published from
:mod:`sdlab.samplers.comfy` (see its notes on how sdlab's forms relate to ComfyUI's).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.samplers.base import Run
from sdlab.samplers.steps import check_order, combine, half_log_snr, public_in, sampler, transitions, variant

__all__ = [
    "er_sde",
    "er_sde_noise_scaler",
    "seeds_2",
    "seeds_3",
    "sa_solver",
    "sa_solver_pece",
    "sa_solver_tau_interval",
]


# --- ER-SDE-Solver-3 (Cui et al. 2023, arXiv:2309.06169) ----------------------------------------------------


@public_in("sdlab.samplers.comfy")
def er_sde_noise_scaler(lam: Tensor) -> Tensor:
    """ER-SDE's default noise-scale function ``lambda * (exp(lambda^0.3) + 10)`` (ComfyUI's default)."""
    return lam * ((lam**0.3).exp() + 10.0)


@public_in("sdlab.samplers.comfy")
@sampler()
def er_sde(
    run: Run,
    x: Tensor,
    sigmas: Tensor,
    *,
    s_noise: float = 1.0,
    noise_scaler: Callable[[Tensor], Tensor] | None = None,
    max_stage: int = 3,
) -> Tensor:
    """ER-SDE-Solver-3 (Cui et al. 2023): extended reverse-time SDE in lambda = sigma / alpha, up to 3 stages.

    ``noise_scaler(lam) = lam`` with ``s_noise = 0`` is the ODE solver (ComfyUI's "ODE" solver type), and
    ``lam ** (eta + 1)`` the reverse-time SDE.
    """
    check_order("er_sde", "max_stage", max_stage, 1, 3)
    scale = er_sde_noise_scaler if noise_scaler is None else noise_scaler
    lams = sigmas.to(torch.float64)  # VE: lambda_t = sigma_t / alpha_t = sigma_t
    k = torch.arange(200, dtype=torch.float64)  # quadrature points per step
    old_denoised, old_d1 = None, None
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = lams[i], lams[i + 1]
            r = float(scale(lam_t) / scale(lam_s))
            x = r * x + (1 - r) * denoised  # stage 1
            if i >= 1 and max_stage >= 2:  # stage 2: first divided difference of D in lambda
                dl = lam_t - lam_s
                pos = lam_t - k * dl / 200  # left Riemann points from lam_t up to lam_s
                s_1 = float(torch.sum(1 / scale(pos)) * (-dl / 200))
                d1 = (denoised - old_denoised) / float(lam_s - lams[i - 1])
                x = x + float(dl + s_1 * scale(lam_t)) * d1
                if i >= 2 and max_stage >= 3:  # stage 3: second divided difference
                    s_2 = float(torch.sum((pos - lam_s) / scale(pos)) * (-dl / 200))
                    d2 = (d1 - old_d1) / float((lam_s - lams[i - 2]) / 2)
                    x = x + float(dl**2 / 2 + s_2 * scale(lam_t)) * d2
                old_d1 = d1
            std = float((lam_t**2 - lam_s**2 * r**2).sqrt().nan_to_num(nan=0.0))
            if s_noise > 0 and std > 0:
                x = x + run.noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * std
        old_denoised = denoised
    return x


# --- SEEDS (Gonzalez et al. 2023, arXiv:2305.14267) ---------------------------------------------------------


def _ei_phi1(h: float) -> float:
    """``h * phi_1(h) = e^h - 1``."""
    return math.expm1(h)


def _ei_phi2(h: float) -> float:
    """``h * phi_2(h) = (e^h - 1 - h) / h``."""
    return (math.expm1(h) - h) / h


@public_in("sdlab.samplers.comfy")
@sampler()
def seeds_2(run: Run, x: Tensor, sigmas: Tensor, *, eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5) -> Tensor:
    """SEEDS-2 (Gonzalez et al. 2023): two-stage stochastic exponential solver, data prediction; eta 0 = ODE."""
    inject_noise = eta > 0 and s_noise > 0
    for i, sigma, sigma_next in transitions(sigmas):
        denoised = run.predict(x, i, sigma)
        if sigma_next == 0:
            x = denoised
            continue
        lam_s, lam_t = half_log_snr(float(sigma)), half_log_snr(float(sigma_next))
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        sigma_1 = math.exp(-(lam_s + r * h))
        # stage 1: exponential Euler to lambda_s + r h
        x_2 = sigma_1 / float(sigma) * math.exp(-r * h * eta) * x - _ei_phi1(-r * h_eta) * denoised
        if inject_noise:
            z = math.sqrt(-math.expm1(-2 * r * h * eta)) * run.noise_sampler(sigma, sigmas.new_tensor(sigma_1))
            x_2 = x_2 + z * sigma_1 * s_noise
        denoised_2 = run.denoise(x_2, sigma_1)
        # stage 2: full step with D extrapolated through both evaluations
        denoised_d = torch.lerp(denoised, denoised_2, 1 / (2 * r))
        x = float(sigma_next / sigma) * math.exp(-h * eta) * x - _ei_phi1(-h_eta) * denoised_d
        if inject_noise:  # carry the stage-1 noise along, add the remainder of the segment
            seg = (r - 1) * h * eta
            z = z * math.exp(seg) + math.sqrt(-math.expm1(2 * seg)) * run.noise_sampler(
                sigmas.new_tensor(sigma_1), sigma_next
            )
            x = x + z * sigma_next * s_noise
    return x


@public_in("sdlab.samplers.comfy")
@sampler()
def seeds_3(
    run: Run,
    x: Tensor,
    sigmas: Tensor,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r_1: float = 1.0 / 3,
    r_2: float = 2.0 / 3,
) -> Tensor:
    """SEEDS-3 (Gonzalez et al. 2023): three-stage stochastic exponential solver, data prediction; eta 0 = ODE."""
    inject_noise = eta > 0 and s_noise > 0
    for i, sigma, sigma_next in transitions(sigmas):
        denoised = run.predict(x, i, sigma)
        if sigma_next == 0:
            x = denoised
            continue
        lam_s, lam_t = half_log_snr(float(sigma)), half_log_snr(float(sigma_next))
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        sigma_1, sigma_2 = math.exp(-(lam_s + r_1 * h)), math.exp(-(lam_s + r_2 * h))
        s_1, s_2 = sigmas.new_tensor(sigma_1), sigmas.new_tensor(sigma_2)
        # stage 1
        x_2 = sigma_1 / float(sigma) * math.exp(-r_1 * h * eta) * x - _ei_phi1(-r_1 * h_eta) * denoised
        if inject_noise:
            z = math.sqrt(-math.expm1(-2 * r_1 * h * eta)) * run.noise_sampler(sigma, s_1)
            x_2 = x_2 + z * sigma_1 * s_noise
        denoised_2 = run.denoise(x_2, sigma_1)
        # stage 2
        a_2 = r_2 / r_1 * _ei_phi2(-r_2 * h_eta)
        a_1 = _ei_phi1(-r_2 * h_eta) - a_2
        x_3 = sigma_2 / float(sigma) * math.exp(-r_2 * h * eta) * x - (a_1 * denoised + a_2 * denoised_2)
        if inject_noise:
            seg = (r_1 - r_2) * h * eta
            z = z * math.exp(seg) + math.sqrt(-math.expm1(2 * seg)) * run.noise_sampler(s_1, s_2)
            x_3 = x_3 + z * sigma_2 * s_noise
        denoised_3 = run.denoise(x_3, sigma_2)
        # stage 3
        b_3 = _ei_phi2(-h_eta) / r_2
        b_1 = _ei_phi1(-h_eta) - b_3
        x = float(sigma_next / sigma) * math.exp(-h * eta) * x - (b_1 * denoised + b_3 * denoised_3)
        if inject_noise:
            seg = (r_2 - 1) * h * eta
            z = z * math.exp(seg) + math.sqrt(-math.expm1(2 * seg)) * run.noise_sampler(s_2, sigma_next)
            x = x + z * sigma_next * s_noise
    return x


# --- SA-Solver (Xue et al. 2023, arXiv:2309.05019) ----------------------------------------------------------


def _percent_to_sigma(model: Any, percent: float) -> float:
    """ComfyUI's ``model_sampling.percent_to_sigma``: read from the model's training sigma table if it has one,
    else log-linear between ``sigma_max`` (0 %) and ``sigma_min`` (100 %) as for continuous EDM models."""
    if percent <= 0.0:
        return 999999999.9
    if percent >= 1.0:
        return 0.0
    table = getattr(model, "sigmas", None)
    if table is not None:
        log_sigmas = torch.as_tensor(table, dtype=torch.float64).log()
        t = (1.0 - percent) * (len(log_sigmas) - 1)  # ComfyUI: (1 - percent) * 999
        lo, w = int(math.floor(t)), t - math.floor(t)
        hi = min(lo + 1, len(log_sigmas) - 1)
        return math.exp((1 - w) * float(log_sigmas[lo]) + w * float(log_sigmas[hi]))
    sigma_min, sigma_max = getattr(model, "sigma_min", None), getattr(model, "sigma_max", None)
    if sigma_min is None or sigma_max is None:
        raise SdlabError(
            "sa_solver's default stochastic interval needs the model's sigma range",
            sampler="sa_solver",
            hint="use a denoiser with a `sigmas` table or sigma_min/sigma_max, or pass tau_func=",
        )
    log_min = math.log(float(sigma_min))
    return math.exp((math.log(float(sigma_max)) - log_min) * (1.0 - percent) + log_min)


@public_in("sdlab.samplers.comfy")
def sa_solver_tau_interval(start_sigma: float, end_sigma: float, eta: float = 1.0) -> Callable[[float], float]:
    """SA-Solver's tau(sigma): ``eta`` for sigma in [end_sigma, start_sigma], else 0 (ODE steps)."""
    return lambda sigma: eta if eta > 0 and start_sigma >= sigma >= end_sigma else 0.0


def _sa_solver_weights(
    nodes: list[float], lam_s: float, lam_t: float, tau: float, *, corrector: bool, simple_order_2: bool
) -> list[float]:
    """Stochastic Adams weights b_j (Xue et al. 2023, eqs. 15 and 18) for D at the lambda ``nodes``, oldest first.

    b_j = integral over [lam_s, lam_t] of (1 + tau^2) exp((1 + tau^2)(lam - lam_t)) l_j(lam) dlam, with l_j the
    Lagrange basis on ``nodes`` (alpha_t = 1 for variance-exploding models).
    """
    k, h = 1 + tau**2, lam_t - lam_s
    decay = -math.expm1(-k * h)  # the weight of a constant D
    if simple_order_2 and len(nodes) == 2:  # Appendix D's simple order-2 weights
        b_new = 0.5 * k * h if corrector else decay - 0.5 * k * h**2 / (nodes[0] - lam_s)
        return [decay - b_new, b_new]
    # moments m_p = integral of the kernel times lam^p, by parts: m_p = lam_t^p - lam_s^p e^{-kh} - (p/k) m_{p-1}
    moments: list[float] = []
    for p in range(len(nodes)):
        moments.append(lam_t**p - lam_s**p * math.exp(-k * h) - (p / k * moments[-1] if p else 0.0))
    vandermonde = torch.tensor([[node**p for node in nodes] for p in range(len(nodes))], dtype=torch.float64)
    return torch.linalg.solve(vandermonde, torch.tensor(moments, dtype=torch.float64)).tolist()


@public_in("sdlab.samplers.comfy")
@sampler()
def sa_solver(
    run: Run,
    x: Tensor,
    sigmas: Tensor,
    *,
    tau_func: Callable[[float], float] | None = None,
    s_noise: float = 1.0,
    predictor_order: int = 3,
    corrector_order: int = 4,
    use_pece: bool = False,
    simple_order_2: bool = False,
) -> Tensor:
    """SA-Solver (Xue et al. 2023): stochastic Adams predictor-corrector in data prediction.

    ``tau_func(sigma)`` sets the stochasticity of the step ending at ``sigma``; by default 1 between the
    model's sigmas at 20 % and 80 % of its training time and 0 (ODE) elsewhere, as in ComfyUI.
    """
    check_order("sa_solver", "predictor_order", predictor_order, 1, 6)
    check_order("sa_solver", "corrector_order", corrector_order, 0, 6)
    if len(sigmas) <= 1:
        return x
    if tau_func is None:
        tau_func = sa_solver_tau_interval(_percent_to_sigma(run.model, 0.2), _percent_to_sigma(run.model, 0.8))
    sigma_f = sigmas.tolist()
    lams = [half_log_snr(s) if s > 0 else math.inf for s in sigma_f]
    lower_order_to_end = sigma_f[-1] == 0  # lower the orders near the end for stability
    n = len(sigmas) - 1
    x_pred, h, tau, noise = x, 0.0, 0.0, None
    history: list[Tensor] = []  # D at the previous sigmas, oldest first
    for i in range(n):
        denoised = run.predict(x_pred, i, sigmas[i])  # evaluate
        history = [*history, denoised][-max(predictor_order, corrector_order) :]
        p_order = min(predictor_order, len(history))
        c_order = 0 if i == 0 or (sigma_f[i + 1] == 0 and not use_pece) else min(corrector_order, len(history))
        if lower_order_to_end:
            p_order, c_order = min(p_order, n - 1 - i), min(c_order, n - i)

        # corrector: redo the last step with the new evaluation among the nodes
        if c_order == 0:
            x = x_pred
        else:
            b = _sa_solver_weights(
                lams[i - c_order + 1 : i + 1], lams[i - 1], lams[i], tau, corrector=True, simple_order_2=simple_order_2
            )
            x = sigma_f[i] / sigma_f[i - 1] * math.exp(-(tau**2) * h) * x + combine(b, history[-c_order:])
            if noise is not None:
                x = x + noise  # the same noise as the predictor step
            if use_pece:  # evaluate the corrected state (PECE)
                denoised = run.denoise(x, sigmas[i])
                history[-1] = denoised

        # predictor
        if sigma_f[i + 1] == 0:
            x = denoised  # denoising step
            continue
        tau = float(tau_func(sigma_f[i + 1]))
        b = _sa_solver_weights(
            lams[i - p_order + 1 : i + 1], lams[i], lams[i + 1], tau, corrector=False, simple_order_2=simple_order_2
        )
        h = lams[i + 1] - lams[i]
        x_pred = sigma_f[i + 1] / sigma_f[i] * math.exp(-(tau**2) * h) * x + combine(b, history[-p_order:])
        noise = None
        if tau > 0 and s_noise > 0:
            std = sigma_f[i + 1] * math.sqrt(-math.expm1(-2 * tau**2 * h)) * s_noise
            noise = run.noise_sampler(sigmas[i], sigmas[i + 1]) * std
            x_pred = x_pred + noise
    return x


sa_solver_pece = variant(
    sa_solver,
    "sa_solver_pece",
    "SA-Solver in PECE mode (predict, evaluate, correct, evaluate): 2 NFE a step.",
    use_pece=True,
)
