"""ComfyUI's own base algorithms, beyond the 13 of k-diffusion (``comfy/k_diffusion/sampling.py``).

Each function keeps ComfyUI's defaults and step rules and the sdlab sampler signature (see
:mod:`sdlab.samplers.base`); :data:`SAMPLERS` maps ComfyUI's sampler names to them.

>>> x = sigmas[0] * torch.randn(1, 4, 64, 64)               # noise at sigma_max; sigmas from any schedule
>>> x0 = SAMPLERS["res_multistep"](denoiser, x, sigmas)     # denoiser: D(x, sigma) -> x0; result (1, 4, 64, 64)

How sdlab's forms relate to ComfyUI's:

* sdlab models are variance-exploding (ComfyUI's EPS and V_PREDICTION models): ``alpha_t = 1``, the half
  log-SNR is ``lambda = -log(sigma)`` and ``alpha_cumprod = 1 / (1 + sigma^2)``. ComfyUI's rectified-flow
  (``CONST``) branches of ER-SDE, SEEDS and SA-Solver do not apply.
* The CFG++ forms read the unconditional prediction with :func:`~sdlab.samplers.base.uncond_denoised`
  (``last_uncond_denoised`` of a CFG denoiser) instead of ComfyUI's post-CFG hook. ComfyUI also computes the
  unconditional pass at ``cfg = 1`` for them; an sdlab CFG denoiser should do the same.
* Fresh noise comes only from ``noise_sampler`` (default: :func:`~sdlab.samplers.base.default_noise_sampler`)
  and is drawn only when it is added. ComfyUI sometimes draws and discards noise (at ``eta = 0``; Heun++ draws
  ``randn_like`` every step even without churn): that changes its global RNG state, never its result.
* The callback receives the current ``x`` (ComfyUI's iPNDM, iPNDM-v and DEIS pass the initial one).
* Scalar step coefficients, DEIS's and ER-SDE's quadratures are computed in float64 (ComfyUI: in the dtype of
  ``sigmas``; its ER-SDE quadrature points are float32, and in float32 its UniPC's log-SNR at sigma 0.001 keeps
  few digits: about 5e-5 relative on an 8-step result, where sdlab's float32 run is within 4e-7 of float64).
* ComfyUI's quirks are kept, since they are what its users get: DPM++ 2S a CFG++ takes the full step's
  ``uncond`` from the midpoint call, iPNDM-v's order-3/4 weights are not Adams-Bashforth on unequal steps, RES
  multistep ancestral measures ``c2`` to the previous ``sigma_down``, DEIS's time map is EDM's VP schedule
  whatever the model.
* ComfyUI's ``lcm`` is the same algorithm as A1111's ``sample_lcm`` (jump to x0, re-noise), so
  :data:`SAMPLERS` maps it to :func:`sdlab.samplers.a1111.lcm`; only A1111 pairs it with its own LCM denoiser.
* ComfyUI's ``ddim`` is Euler (with random inpainting noise) and lives with the k-diffusion samplers.
* ComfyUI's ``uni_pc`` and ``uni_pc_bh2`` (:func:`uni_pc`, :func:`uni_pc_bh2`) are its own UniPC on the
  schedule's sigmas, not A1111's UniPC on the training timesteps (:func:`sdlab.samplers.a1111.unipc`); both
  run the UniPC steps of :func:`sdlab.samplers.a1111.unipc_multistep`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.samplers.a1111 import lcm, unipc_multistep
from sdlab.samplers.base import (
    Callback,
    NoiseSampler,
    default_noise_sampler,
    get_ancestral_step,
    to_d,
    uncond_denoised,
)

__all__ = [
    "SAMPLERS",
    "NOT_IMPLEMENTED",
    "euler_cfg_pp",
    "euler_ancestral_cfg_pp",
    "heunpp2",
    "ddpm",
    "lcm",
    "ipndm",
    "ipndm_v",
    "deis",
    "res_multistep",
    "res_multistep_cfg_pp",
    "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp",
    "gradient_estimation",
    "gradient_estimation_cfg_pp",
    "dpmpp_2m_cfg_pp",
    "dpmpp_2s_ancestral_cfg_pp",
    "er_sde",
    "seeds_2",
    "seeds_3",
    "sa_solver",
    "sa_solver_pece",
    "dpmpp_3m",
    "uni_pc",
    "uni_pc_bh2",
    "UNI_PC_FINAL_SIGMA",
    "er_sde_noise_scaler",
    "sa_solver_tau_interval",
]


# --- small shared pieces ----------------------------------------------------------------------------------


def _lam(sigma: float) -> float:
    """Half log-SNR ``lambda = log(alpha / sigma) = -log(sigma)`` of a variance-exploding model."""
    return -math.log(sigma)


def _phi1(h: float) -> float:
    """``phi_1(h) = (e^h - 1) / h`` of exponential integrators."""
    return math.expm1(h) / h


def _phi2(h: float) -> float:
    """``phi_2(h) = (phi_1(h) - 1) / h``."""
    return (_phi1(h) - 1.0) / h


def _at(x: Tensor, sigma: Tensor | float) -> Tensor:
    """``sigma`` as the per-sample ``(batch,)`` tensor a denoiser takes."""
    return x.new_ones([x.shape[0]]) * sigma


def _combine(weights: list[float], tensors: list[Tensor]) -> Tensor:
    """The weighted sum ``sum_j weights[j] * tensors[j]``."""
    return sum(w * t for w, t in zip(weights, tensors, strict=True))  # type: ignore[return-value]


def _report(callback: Callback | None, x: Tensor, i: int, sigma: Tensor, denoised: Tensor) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})


def _check_order(sampler: str, name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        hint = f"pass {name}={high}" if isinstance(value, int) and value > high else f"pass {name}={low}"
        raise SdlabError(f"{name} must be an integer in [{low}, {high}]", sampler=sampler, hint=hint, **{name: value})


# --- CFG++ Euler (Chung et al. 2024, arXiv:2406.08070) ------------------------------------------------------


@torch.no_grad()
def euler_ancestral_cfg_pp(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """Ancestral Euler with the noise direction of the unconditional prediction (CFG++, Chung et al. 2024)."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _at(x, sigma), **extra_args)
        uncond = uncond_denoised(model, denoised)
        _report(callback, x, i, sigma, denoised)
        if sigma_next == 0:
            x = denoised  # denoising step
            continue
        sigma_down, sigma_up = get_ancestral_step(float(sigma), float(sigma_next), eta)
        d = to_d(x, sigma, uncond)  # the unconditional noise estimate
        x = denoised + d * sigma_down  # re-noise the guided x0 with it down to sigma_down
        if eta > 0 and s_noise > 0:
            x = x + noise_sampler(sigma, sigma_next) * s_noise * sigma_up
    return x


@torch.no_grad()
def euler_cfg_pp(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> Tensor:
    """Euler steps with the unconditional noise direction (CFG++, Chung et al. 2024): eta 0 of the ancestral form."""
    return euler_ancestral_cfg_pp(
        model, x, sigmas, extra_args=extra_args, callback=callback, noise_sampler=noise_sampler, eta=0.0, s_noise=0.0
    )


# --- Heun++ (Carzit/sd-webui-samplers-scheduler) -----------------------------------------------------------


@torch.no_grad()
def heunpp2(
    model: Any,
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
    """Heun++: Euler step, then a slope averaged over up to three points, weighted by sigma / sigma_max."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    n, s_end, sigma_max = len(sigmas) - 1, sigmas[-1], sigmas[0]
    for i in range(n):
        # optional churn (Karras et al. 2022, Algorithm 2)
        gamma = min(s_churn / n, 2**0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0
        sigma_hat = sigmas[i] * (gamma + 1)
        if gamma > 0:
            x = x + noise_sampler(sigmas[i], sigma_hat) * s_noise * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
        denoised = model(x, _at(x, sigma_hat), **extra_args)
        d = to_d(x, sigma_hat, denoised)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigma_hat, "denoised": denoised})
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == s_end:  # last step: Euler
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigmas[i + 1], model(x_2, _at(x, sigmas[i + 1]), **extra_args))
        if sigmas[i + 2] == s_end:  # one point ahead: Heun with weight sigma_{i+1} / (2 sigma_max)
            w_2 = sigmas[i + 1] / (2 * sigma_max)
            d_prime = (1 - w_2) * d + w_2 * d_2
        else:  # two points ahead: Heun++
            x_3 = x_2 + d_2 * (sigmas[i + 2] - sigmas[i + 1])
            d_3 = to_d(x_3, sigmas[i + 2], model(x_3, _at(x, sigmas[i + 2]), **extra_args))
            w_2, w_3 = sigmas[i + 1] / (3 * sigma_max), sigmas[i + 2] / (3 * sigma_max)
            d_prime = (1 - w_2 - w_3) * d + w_2 * d_2 + w_3 * d_3
        x = x + d_prime * dt
    return x


# --- DDPM -------------------------------------------------------------------------------------------------------


@torch.no_grad()
def ddpm(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> Tensor:
    """Ancestral DDPM steps (Ho et al. 2020, eq. 11) between the given sigmas, alpha_cumprod = 1 / (1 + sigma^2)."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _at(x, sigma), **extra_args)
        _report(callback, x, i, sigma, denoised)
        eps = (x - denoised) / sigma
        alpha_bar, alpha_bar_prev = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
        alpha = alpha_bar / alpha_bar_prev  # 1 - beta_t for this (possibly long) step
        x_vp = x / (1 + sigma**2) ** 0.5  # variance-preserving scaling
        mean = (x_vp - (1 - alpha) / (1 - alpha_bar) ** 0.5 * eps) / alpha**0.5
        if sigma_next > 0:
            beta_tilde = (1 - alpha) * (1 - alpha_bar_prev) / (1 - alpha_bar)  # posterior variance
            mean = mean + beta_tilde**0.5 * noise_sampler(sigma, sigma_next)
            x = mean * (1 + sigma_next**2) ** 0.5
        else:
            x = mean
    return x


# --- iPNDM and DEIS (Zhang & Chen 2023; ports of zju-pi/diff-sampler) ----------------------------------------


def _ipndm_fixed(order: int) -> list[float]:
    """Adams-Bashforth weights for equal steps, newest slope first."""
    return {1: [1.0], 2: [3 / 2, -1 / 2], 3: [23 / 12, -16 / 12, 5 / 12], 4: [55 / 24, -59 / 24, 37 / 24, -9 / 24]}[
        order
    ]


def _ipndm_variable(order: int, t: list[float], i: int) -> list[float]:
    """iPNDM-v weights for the step t[i] -> t[i+1], newest slope first, exactly as zju-pi and ComfyUI group them.

    Order 2 is variable-step Adams-Bashforth and order 3 is AB3 for equal steps only. Order 4 is not AB4 even
    for equal steps (weights 57, -65, 43, -11 over 24), and on unequal steps its weights do not sum to 1.
    """
    h = t[i + 1] - t[i]
    h1 = t[i] - t[i - 1]
    if order == 2:
        return [1 + h / (2 * h1), -h / (2 * h1)]
    h2 = t[i - 1] - t[i - 2]
    a1 = (1 - h**2 / (3 * h1 * (h1 + h2))) / 2
    if order == 3:
        return [1 + h / (2 * h1) + a1, -h / (2 * h1) - (1 + h1 / h2) * a1, a1 * h1 / h2]
    h3 = t[i - 2] - t[i - 3]
    a2 = (
        ((1 - h / (3 * (h + h1))) / 2 + (1 - h / (2 * (h + h1))) * h / (6 * (h + h1 + h2)))
        * (h * (h + h1) * (h + h1 + h2))
        / (h1 * (h1 + h2) * (h1 + h2 + h3))
    )
    q = h1 * (h1 + h2) / (h2 * (h2 + h3))
    return [
        1 + h / (2 * h1) + a1 + a2,
        -h / (2 * h1) - (1 + h1 / h2) * a1 - (1 + h1 / h2 + q) * a2,
        a1 * h1 / h2 + (h1 / h2 + q * (1 + h2 / h3)) * a2,
        -a2 * q * h1 / h2,
    ]


def _ipndm_sampler(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    extra_args: dict[str, Any] | None,
    callback: Callback | None,
    max_order: int,
    variable: bool,
) -> Tensor:
    """Multistep in sigma on the slopes d = (x - D) / sigma; the last step jumps to D."""
    _check_order("ipndm_v" if variable else "ipndm", "max_order", max_order, 1, 4)
    extra_args = {} if extra_args is None else extra_args
    t = sigmas.tolist()
    slopes: list[Tensor] = []  # newest first
    for i in range(len(sigmas) - 1):
        denoised = model(x, _at(x, sigmas[i]), **extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        slopes = [d, *slopes][:max_order]
        if t[i + 1] == 0:
            x = denoised
            continue
        order = len(slopes)
        weights = _ipndm_variable(order, t, i) if variable and order > 1 else _ipndm_fixed(order)
        x = x + (t[i + 1] - t[i]) * _combine(weights, slopes)
    return x


@torch.no_grad()
def ipndm(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    max_order: int = 4,
) -> Tensor:
    """Improved PNDM (Zhang & Chen 2023): Adams-Bashforth with equal-step weights, warming up from Euler."""
    return _ipndm_sampler(model, x, sigmas, extra_args, callback, max_order, variable=False)


@torch.no_grad()
def ipndm_v(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    max_order: int = 4,
) -> Tensor:
    """Improved PNDM with weights for variable step sizes (zju-pi/diff-sampler's iPNDM-v)."""
    return _ipndm_sampler(model, x, sigmas, extra_args, callback, max_order, variable=True)


def _deis_tab_weights(sigmas: list[float], max_order: int, n: int = 10_000) -> list[list[float]]:
    """DEIS "tAB" weights (Zhang & Chen 2023, eq. 14) for each step, newest slope first.

    Slopes d = dx/dsigma are interpolated by a polynomial in the VP time t of EDM's VP schedule
    (eps_s = 1e-3, sigma in [0.002, 80]) and integrated against dsigma/dt over the step, on ``n`` equally spaced
    points each weighted (t_next - t) / n, as zju-pi and ComfyUI do.
    """
    eps_s, sigma_lo, sigma_hi = 1e-3, 0.002, 80.0
    beta_d = 2 * (math.log(sigma_lo**2 + 1) / eps_s - math.log(sigma_hi**2 + 1)) / (eps_s - 1)
    beta_min = math.log(sigma_hi**2 + 1) - beta_d / 2
    t = [(math.sqrt(beta_min**2 + 2 * beta_d * math.log(s**2 + 1)) - beta_min) / beta_d for s in sigmas]
    weights: list[list[float]] = []
    for i in range(len(sigmas) - 1):
        order = min(i + 1, max_order)
        if order == 1 or sigmas[i + 1] <= 0:
            weights.append([])
            continue
        tau = torch.linspace(t[i], t[i + 1], n, dtype=torch.float64)
        alpha = torch.exp(-beta_d * tau**2 / 2 - beta_min * tau)  # alpha_cumprod = 1 / (1 + sigma^2)
        dsigma_dt = (beta_d * tau + beta_min) / (2 * torch.sqrt(alpha * (1 - alpha)))
        nodes = [t[i - k] for k in range(order)]
        row = []
        for j, t_j in enumerate(nodes):
            basis = torch.ones_like(tau)  # Lagrange basis polynomial of node j
            for k, t_k in enumerate(nodes):
                if k != j:
                    basis = basis * (tau - t_k) / (t_j - t_k)
            row.append(float(torch.sum(dsigma_dt * basis)) * (t[i + 1] - t[i]) / n)
        weights.append(row)
    return weights


@torch.no_grad()
def deis(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    max_order: int = 3,
    deis_mode: str = "tab",
) -> Tensor:
    """DEIS (Zhang & Chen 2023) in ComfyUI's "tAB" mode: exponential-integrator multistep with quadrature weights."""
    _check_order("deis", "max_order", max_order, 1, 4)
    if deis_mode != "tab":
        raise SdlabError("only deis_mode='tab' is available", sampler="deis", deis_mode=deis_mode, hint="pass 'tab'")
    extra_args = {} if extra_args is None else extra_args
    weights = _deis_tab_weights(sigmas.tolist(), max_order)
    slopes: list[Tensor] = []  # newest first
    for i in range(len(sigmas) - 1):
        denoised = model(x, _at(x, sigmas[i]), **extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        slopes = [d, *slopes][:max_order]
        if weights[i]:  # noqa: SIM108  (DEIS step with len(weights[i]) slopes)
            x = x + _combine(weights[i], slopes)
        else:  # first (and last) step: Euler
            x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


# --- RES multistep (Zhang et al. 2023, arXiv:2308.02157) ----------------------------------------------------


def _res_multistep(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    extra_args: dict[str, Any] | None,
    callback: Callback | None,
    noise_sampler: NoiseSampler | None,
    eta: float,
    s_noise: float,
    cfg_pp: bool,
) -> Tensor:
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    old_denoised, old_sigma_down = None, 0.0
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _at(x, sigma), **extra_args)
        uncond = uncond_denoised(model, denoised) if cfg_pp else denoised
        sigma_down, sigma_up = get_ancestral_step(float(sigma), float(sigma_next), eta)
        _report(callback, x, i, sigma, denoised)
        if sigma_down == 0 or old_denoised is None:  # Euler (CFG++: noise direction from uncond)
            if cfg_pp:
                x = denoised + to_d(x, sigma, uncond) * sigma_down
            else:
                x = x + to_d(x, sigma, denoised) * (sigma_down - sigma)
        else:  # second-order exponential multistep with c2 from the previous step
            t, t_next = _lam(float(sigma)), _lam(sigma_down)
            t_prev = _lam(float(sigmas[i - 1]))
            t_old = _lam(old_sigma_down) if old_sigma_down > 0 else math.inf
            h = t_next - t
            c2 = (t_prev - t_old) / h  # ComfyUI measures the previous step to its own sigma_down
            b2 = _phi2(-h) / c2
            b1 = _phi1(-h) - b2
            if cfg_pp:
                x = x + (denoised - uncond)
            x = math.exp(-h) * x + h * (b1 * uncond + b2 * old_denoised)
        if sigma_next > 0 and sigma_up > 0 and s_noise > 0:
            x = x + noise_sampler(sigma, sigma_next) * s_noise * sigma_up
        old_denoised, old_sigma_down = uncond, sigma_down
    return x


@torch.no_grad()
def res_multistep(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    s_noise: float = 1.0,
) -> Tensor:
    """RES second-order multistep (Zhang et al. 2023, arXiv:2308.02157): exponential integrator, 1 NFE a step."""
    return _res_multistep(model, x, sigmas, extra_args, callback, noise_sampler, 0.0, s_noise, cfg_pp=False)


@torch.no_grad()
def res_multistep_cfg_pp(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    s_noise: float = 1.0,
) -> Tensor:
    """RES multistep on the unconditional prediction (CFG++, Chung et al. 2024)."""
    return _res_multistep(model, x, sigmas, extra_args, callback, noise_sampler, 0.0, s_noise, cfg_pp=True)


@torch.no_grad()
def res_multistep_ancestral(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """RES multistep down to sigma_down, then fresh noise up to the next sigma (ancestral steps)."""
    return _res_multistep(model, x, sigmas, extra_args, callback, noise_sampler, eta, s_noise, cfg_pp=False)


@torch.no_grad()
def res_multistep_ancestral_cfg_pp(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """Ancestral RES multistep on the unconditional prediction (CFG++)."""
    return _res_multistep(model, x, sigmas, extra_args, callback, noise_sampler, eta, s_noise, cfg_pp=True)


# --- gradient estimation (Permenter & Yuan 2024) ------------------------------------------------------------


def _gradient_estimation(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    extra_args: dict[str, Any] | None,
    callback: Callback | None,
    ge_gamma: float,
    cfg_pp: bool,
) -> Tensor:
    extra_args = {} if extra_args is None else extra_args
    old_d = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _at(x, sigma), **extra_args)
        d = to_d(x, sigma, uncond_denoised(model, denoised) if cfg_pp else denoised)
        _report(callback, x, i, sigma, denoised)
        if sigma_next == 0:
            x = denoised  # denoising step
        else:
            dt = sigma_next - sigma
            x = denoised + d * sigma_next if cfg_pp else x + d * dt  # Euler
            if old_d is not None:  # extrapolate the slope: d + (gamma - 1)(d - d_old)
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x


@torch.no_grad()
def gradient_estimation(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    ge_gamma: float = 2.0,
) -> Tensor:
    """Euler with the gradient-estimation slope d + (gamma - 1)(d - d_prev) (Permenter & Yuan 2024)."""
    return _gradient_estimation(model, x, sigmas, extra_args, callback, ge_gamma, cfg_pp=False)


@torch.no_grad()
def gradient_estimation_cfg_pp(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    ge_gamma: float = 2.0,
) -> Tensor:
    """Gradient estimation with the unconditional noise direction (CFG++)."""
    return _gradient_estimation(model, x, sigmas, extra_args, callback, ge_gamma, cfg_pp=True)


# --- DPM-Solver++ CFG++ forms (Lu et al. 2022; Chung et al. 2024) -------------------------------------------


@torch.no_grad()
def dpmpp_2m_cfg_pp(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022) with the unconditional noise direction (CFG++)."""
    extra_args = {} if extra_args is None else extra_args
    old_uncond = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _at(x, sigma), **extra_args)
        uncond = uncond_denoised(model, denoised)
        _report(callback, x, i, sigma, denoised)
        if sigma_next == 0:
            x = denoised
        else:
            h = _lam(float(sigma_next)) - _lam(float(sigma))
            x = denoised + math.exp(-h) * (x - uncond)  # first order: DDIM with the uncond noise
            if old_uncond is not None:  # second-order correction (ComfyUI: guided minus previous uncond)
                r = (_lam(float(sigma)) - _lam(float(sigmas[i - 1]))) / h
                x = x - math.expm1(-h) / (2 * r) * (denoised - old_uncond)
        old_uncond = uncond
    return x


@torch.no_grad()
def dpmpp_2s_ancestral_cfg_pp(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> Tensor:
    """Ancestral DPM-Solver++(2S) (Lu et al. 2022) with the unconditional noise direction (CFG++), r = 1/2.

    As in ComfyUI, the full step's shift ``denoised - uncond`` takes ``uncond`` from the midpoint evaluation.
    """
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _at(x, sigma), **extra_args)
        uncond = uncond_denoised(model, denoised)
        sigma_down, sigma_up = get_ancestral_step(float(sigma), float(sigma_next), eta)
        _report(callback, x, i, sigma, denoised)
        if sigma_down == 0:  # Euler to sigma 0
            x = denoised
        else:  # DPM-Solver++(2S): midpoint s in lambda, x shifted so x - denoised is the uncond noise
            t, t_next = _lam(float(sigma)), _lam(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = math.exp(t - s) * (x + denoised - uncond) - math.expm1(-h / 2) * denoised
            denoised_2 = model(x_2, _at(x, math.exp(-s)), **extra_args)
            uncond = uncond_denoised(model, denoised_2)  # ComfyUI shifts the full step by the midpoint's uncond
            x = math.exp(t - t_next) * (x + denoised - uncond) - math.expm1(-h) * denoised_2
        if sigma_next > 0 and sigma_up > 0 and s_noise > 0:
            x = x + noise_sampler(sigma, sigma_next) * s_noise * sigma_up
    return x


# --- ER-SDE-Solver-3 (Cui et al. 2023, arXiv:2309.06169) ----------------------------------------------------


def er_sde_noise_scaler(lam: Tensor) -> Tensor:
    """ER-SDE's default noise-scale function ``lambda * (exp(lambda^0.3) + 10)`` (ComfyUI's default)."""
    return lam * ((lam**0.3).exp() + 10.0)


@torch.no_grad()
def er_sde(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    s_noise: float = 1.0,
    noise_scaler: Callable[[Tensor], Tensor] | None = None,
    max_stage: int = 3,
) -> Tensor:
    """ER-SDE-Solver-3 (Cui et al. 2023): extended reverse-time SDE in lambda = sigma / alpha, up to 3 stages.

    ``noise_scaler(lam) = lam`` with ``s_noise = 0`` is the ODE solver (ComfyUI's "ODE" solver type), and
    ``lam ** (eta + 1)`` the reverse-time SDE.
    """
    _check_order("er_sde", "max_stage", max_stage, 1, 3)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    scale = er_sde_noise_scaler if noise_scaler is None else noise_scaler
    lams = sigmas.to(torch.float64)  # VE: lambda_t = sigma_t / alpha_t = sigma_t
    k = torch.arange(200, dtype=torch.float64)  # quadrature points per step
    old_denoised, old_d1 = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, _at(x, sigmas[i]), **extra_args)
        _report(callback, x, i, sigmas[i], denoised)
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
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * std
        old_denoised = denoised
    return x


# --- SEEDS (Gonzalez et al. 2023, arXiv:2305.14267) ---------------------------------------------------------


def _ei_phi1(h: float) -> float:
    """``h * phi_1(h) = e^h - 1``."""
    return math.expm1(h)


def _ei_phi2(h: float) -> float:
    """``h * phi_2(h) = (e^h - 1 - h) / h``."""
    return (math.expm1(h) - h) / h


@torch.no_grad()
def seeds_2(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 0.5,
) -> Tensor:
    """SEEDS-2 (Gonzalez et al. 2023): two-stage stochastic exponential solver, data prediction; eta 0 = ODE."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    inject_noise = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _at(x, sigma), **extra_args)
        _report(callback, x, i, sigma, denoised)
        if sigma_next == 0:
            x = denoised
            continue
        lam_s, lam_t = _lam(float(sigma)), _lam(float(sigma_next))
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        sigma_1 = math.exp(-(lam_s + r * h))
        # stage 1: exponential Euler to lambda_s + r h
        x_2 = sigma_1 / float(sigma) * math.exp(-r * h * eta) * x - _ei_phi1(-r * h_eta) * denoised
        if inject_noise:
            z = math.sqrt(-math.expm1(-2 * r * h * eta)) * noise_sampler(sigma, sigmas.new_tensor(sigma_1))
            x_2 = x_2 + z * sigma_1 * s_noise
        denoised_2 = model(x_2, _at(x, sigma_1), **extra_args)
        # stage 2: full step with D extrapolated through both evaluations
        denoised_d = torch.lerp(denoised, denoised_2, 1 / (2 * r))
        x = float(sigma_next / sigma) * math.exp(-h * eta) * x - _ei_phi1(-h_eta) * denoised_d
        if inject_noise:  # carry the stage-1 noise along, add the remainder of the segment
            seg = (r - 1) * h * eta
            z = z * math.exp(seg) + math.sqrt(-math.expm1(2 * seg)) * noise_sampler(
                sigmas.new_tensor(sigma_1), sigma_next
            )
            x = x + z * sigma_next * s_noise
    return x


@torch.no_grad()
def seeds_3(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r_1: float = 1.0 / 3,
    r_2: float = 2.0 / 3,
) -> Tensor:
    """SEEDS-3 (Gonzalez et al. 2023): three-stage stochastic exponential solver, data prediction; eta 0 = ODE."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    inject_noise = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _at(x, sigma), **extra_args)
        _report(callback, x, i, sigma, denoised)
        if sigma_next == 0:
            x = denoised
            continue
        lam_s, lam_t = _lam(float(sigma)), _lam(float(sigma_next))
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        sigma_1, sigma_2 = math.exp(-(lam_s + r_1 * h)), math.exp(-(lam_s + r_2 * h))
        s_1, s_2 = sigmas.new_tensor(sigma_1), sigmas.new_tensor(sigma_2)
        # stage 1
        x_2 = sigma_1 / float(sigma) * math.exp(-r_1 * h * eta) * x - _ei_phi1(-r_1 * h_eta) * denoised
        if inject_noise:
            z = math.sqrt(-math.expm1(-2 * r_1 * h * eta)) * noise_sampler(sigma, s_1)
            x_2 = x_2 + z * sigma_1 * s_noise
        denoised_2 = model(x_2, _at(x, sigma_1), **extra_args)
        # stage 2
        a_2 = r_2 / r_1 * _ei_phi2(-r_2 * h_eta)
        a_1 = _ei_phi1(-r_2 * h_eta) - a_2
        x_3 = sigma_2 / float(sigma) * math.exp(-r_2 * h * eta) * x - (a_1 * denoised + a_2 * denoised_2)
        if inject_noise:
            seg = (r_1 - r_2) * h * eta
            z = z * math.exp(seg) + math.sqrt(-math.expm1(2 * seg)) * noise_sampler(s_1, s_2)
            x_3 = x_3 + z * sigma_2 * s_noise
        denoised_3 = model(x_3, _at(x, sigma_2), **extra_args)
        # stage 3
        b_3 = _ei_phi2(-h_eta) / r_2
        b_1 = _ei_phi1(-h_eta) - b_3
        x = float(sigma_next / sigma) * math.exp(-h * eta) * x - (b_1 * denoised + b_3 * denoised_3)
        if inject_noise:
            seg = (r_2 - 1) * h * eta
            z = z * math.exp(seg) + math.sqrt(-math.expm1(2 * seg)) * noise_sampler(s_2, sigma_next)
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


@torch.no_grad()
def sa_solver(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
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
    _check_order("sa_solver", "predictor_order", predictor_order, 1, 6)
    _check_order("sa_solver", "corrector_order", corrector_order, 0, 6)
    if len(sigmas) <= 1:
        return x
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    if tau_func is None:
        tau_func = sa_solver_tau_interval(_percent_to_sigma(model, 0.2), _percent_to_sigma(model, 0.8))
    sigma_f = sigmas.tolist()
    lams = [_lam(s) if s > 0 else math.inf for s in sigma_f]
    lower_order_to_end = sigma_f[-1] == 0  # lower the orders near the end for stability
    n = len(sigmas) - 1
    x_pred, h, tau, noise = x, 0.0, 0.0, None
    history: list[Tensor] = []  # D at the previous sigmas, oldest first
    for i in range(n):
        denoised = model(x_pred, _at(x, sigmas[i]), **extra_args)  # evaluate
        _report(callback, x_pred, i, sigmas[i], denoised)
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
            x = sigma_f[i] / sigma_f[i - 1] * math.exp(-(tau**2) * h) * x + _combine(b, history[-c_order:])
            if noise is not None:
                x = x + noise  # the same noise as the predictor step
            if use_pece:  # evaluate the corrected state (PECE)
                denoised = model(x, _at(x, sigmas[i]), **extra_args)
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
        x_pred = sigma_f[i + 1] / sigma_f[i] * math.exp(-(tau**2) * h) * x + _combine(b, history[-p_order:])
        noise = None
        if tau > 0 and s_noise > 0:
            std = sigma_f[i + 1] * math.sqrt(-math.expm1(-2 * tau**2 * h)) * s_noise
            noise = noise_sampler(sigmas[i], sigmas[i + 1]) * std
            x_pred = x_pred + noise
    return x


@torch.no_grad()
def sa_solver_pece(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    tau_func: Callable[[float], float] | None = None,
    s_noise: float = 1.0,
    predictor_order: int = 3,
    corrector_order: int = 4,
    simple_order_2: bool = False,
) -> Tensor:
    """SA-Solver in PECE mode (predict, evaluate, correct, evaluate): 2 NFE a step."""
    return sa_solver(
        model, x, sigmas, extra_args=extra_args, callback=callback, noise_sampler=noise_sampler, tau_func=tau_func,
        s_noise=s_noise, predictor_order=predictor_order, corrector_order=corrector_order, use_pece=True,
        simple_order_2=simple_order_2,
    )  # fmt: skip


# --- DPM-Solver++(3M) ODE -----------------------------------------------------------------------------------


@torch.no_grad()
def dpmpp_3m(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> Tensor:
    """DPM-Solver++(3M) (Lu et al. 2022), the ODE form of DPM++ 3M SDE (its eta 0); not a ComfyUI name."""
    extra_args = {} if extra_args is None else extra_args
    denoised_1 = denoised_2 = None
    h = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, _at(x, sigma), **extra_args)
        _report(callback, x, i, sigma, denoised)
        if sigma_next == 0:
            x = denoised  # denoising step
        else:
            h = _lam(float(sigma_next)) - _lam(float(sigma))
            x = math.exp(-h) * x - math.expm1(-h) * denoised  # first order (DDIM)
            phi_2 = math.expm1(-h) / h + 1
            if h_2 is not None:  # third order from two divided differences
                r_0, r_1 = h_1 / h, h_2 / h
                d1_0, d1_1 = (denoised - denoised_1) / r_0, (denoised_1 - denoised_2) / r_1
                d1 = d1_0 + (d1_0 - d1_1) * r_0 / (r_0 + r_1)
                d2 = (d1_0 - d1_1) / (r_0 + r_1)
                x = x + phi_2 * d1 - (phi_2 / h - 0.5) * d2
            elif h_1 is not None:  # second order
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


# --- UniPC (ComfyUI's comfy/extra_samplers/uni_pc.py) ---------------------------------------------------------

UNI_PC_FINAL_SIGMA = 0.001
"""ComfyUI's UniPC steps to this sigma in place of a final 0 and returns the latent there (not denoised)."""


@torch.no_grad()
def uni_pc(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    variant: str = "bh1",
) -> Tensor:
    """UniPC (Zhao et al. 2023) as ComfyUI's ``uni_pc`` runs it: multistep, data prediction, on the given sigmas.

    ComfyUI's UniPC works on any k-diffusion denoiser: it reads each sigma as a VP marginal with
    ``alpha = 1 / sqrt(1 + sigma^2)`` and half log-SNR ``lambda = -log(sigma)``, with no training table. A
    final 0 becomes :data:`UNI_PC_FINAL_SIGMA` (0.001), and the result is the latent there: the last step
    (the only one without a corrector) lands on 0.001, and nothing denoises it further. The order is
    ``min(3, steps - 1)``, lowered at the end (``lower_order_final``); a step costs one model call. ComfyUI's
    quirk at 1 step is kept: its order is then 0, so it takes no step and returns the starting latent
    rescaled, ``x * sqrt((1 + sigma_last^2) / (1 + sigma_0^2))`` (``sigma_last`` 0.001 for a final 0).
    ``variant`` is ``"bh1"`` (``uni_pc``) or ``"bh2"`` (``uni_pc_bh2``). ``noise_sampler`` is unused.
    """
    if variant not in ("bh1", "bh2"):
        raise SdlabError("unknown UniPC variant for ComfyUI's uni_pc", variant=variant, hint="use 'bh1' or 'bh2'")
    extra_args = {} if extra_args is None else extra_args
    n = len(sigmas) - 1
    grid = sigmas.detach().to("cpu", torch.float64).tolist()
    if grid[-1] == 0:
        grid[-1] = UNI_PC_FINAL_SIGMA
    if any(s <= 0 for s in grid) or any(a == b for a, b in zip(grid, grid[1:], strict=False)):
        raise SdlabError(
            "ComfyUI's UniPC needs positive sigmas (a 0 only at the end), none repeated",
            sampler="uni_pc",
            sigmas=sigmas.tolist()[:8],
            hint="drop repeated sigmas; a step of length 0 divides by zero",
        )

    def data_prediction(x_hat: Tensor, i: int) -> Tensor:
        return model(x_hat, _at(x_hat, sigmas[i]), **extra_args)

    def report(x_hat: Tensor, i: int, denoised: Tensor) -> None:
        _report(callback, x_hat, i, sigmas[i], denoised)

    if n == 1:  # order min(3, 0) = 0: ComfyUI evaluates the model once and takes no step
        report(x, 0, data_prediction(x, 0))
        return x * math.sqrt((1 + grid[-1] ** 2) / (1 + grid[0] ** 2))
    lam = [_lam(s) for s in grid]
    return unipc_multistep(
        x, lam, data_prediction, variant=variant, order=min(3, n - 1), lower_order_final=True, report=report
    )


@torch.no_grad()
def uni_pc_bh2(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> Tensor:
    """ComfyUI's ``uni_pc_bh2``: :func:`uni_pc` with the B(h) = e^h - 1 variant (bh2)."""
    return uni_pc(model, x, sigmas, extra_args=extra_args, callback=callback, variant="bh2")


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "euler_cfg_pp": euler_cfg_pp,
    "euler_ancestral_cfg_pp": euler_ancestral_cfg_pp,
    "heunpp2": heunpp2,
    "dpmpp_2s_ancestral_cfg_pp": dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_2m_cfg_pp": dpmpp_2m_cfg_pp,
    "ddpm": ddpm,
    "lcm": lcm,
    "ipndm": ipndm,
    "ipndm_v": ipndm_v,
    "deis": deis,
    "res_multistep": res_multistep,
    "res_multistep_cfg_pp": res_multistep_cfg_pp,
    "res_multistep_ancestral": res_multistep_ancestral,
    "res_multistep_ancestral_cfg_pp": res_multistep_ancestral_cfg_pp,
    "gradient_estimation": gradient_estimation,
    "gradient_estimation_cfg_pp": gradient_estimation_cfg_pp,
    "er_sde": er_sde,
    "seeds_2": seeds_2,
    "seeds_3": seeds_3,
    "sa_solver": sa_solver,
    "sa_solver_pece": sa_solver_pece,
    "uni_pc": uni_pc,
    "uni_pc_bh2": uni_pc_bh2,
}
"""ComfyUI sampler name -> sdlab function, for ComfyUI's own algorithms (the k-diffusion ones live elsewhere)."""

NOT_IMPLEMENTED: list[str] = []
"""ComfyUI base algorithms neither in this module nor with the k-diffusion ones (``ddim`` is Euler there): none."""
