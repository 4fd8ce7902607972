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

The algorithms live in three modules: this one (CFG++ Euler, Heun++, DDPM, gradient estimation, the DPM++
CFG++ forms), :mod:`sdlab.samplers.comfy_multistep` (iPNDM, DEIS, RES multistep, DPM++ 3M, UniPC) and
:mod:`sdlab.samplers.comfy_sde` (ER-SDE, SEEDS, SA-Solver); every name is importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor

from sdlab.samplers import comfy_multistep, comfy_sde
from sdlab.samplers.a1111 import lcm
from sdlab.samplers.base import Run, get_ancestral_step, to_d, uncond_denoised
from sdlab.samplers.comfy_multistep import UNI_PC_FINAL_SIGMA as UNI_PC_FINAL_SIGMA
from sdlab.samplers.comfy_multistep import deis as deis
from sdlab.samplers.comfy_multistep import dpmpp_3m as dpmpp_3m
from sdlab.samplers.comfy_multistep import ipndm as ipndm
from sdlab.samplers.comfy_multistep import ipndm_v as ipndm_v
from sdlab.samplers.comfy_multistep import res_multistep as res_multistep
from sdlab.samplers.comfy_multistep import res_multistep_ancestral as res_multistep_ancestral
from sdlab.samplers.comfy_multistep import res_multistep_ancestral_cfg_pp as res_multistep_ancestral_cfg_pp
from sdlab.samplers.comfy_multistep import res_multistep_cfg_pp as res_multistep_cfg_pp
from sdlab.samplers.comfy_multistep import uni_pc as uni_pc
from sdlab.samplers.comfy_multistep import uni_pc_bh2 as uni_pc_bh2
from sdlab.samplers.comfy_sde import er_sde as er_sde
from sdlab.samplers.comfy_sde import er_sde_noise_scaler as er_sde_noise_scaler
from sdlab.samplers.comfy_sde import sa_solver as sa_solver
from sdlab.samplers.comfy_sde import sa_solver_pece as sa_solver_pece
from sdlab.samplers.comfy_sde import sa_solver_tau_interval as sa_solver_tau_interval
from sdlab.samplers.comfy_sde import seeds_2 as seeds_2
from sdlab.samplers.comfy_sde import seeds_3 as seeds_3
from sdlab.samplers.steps import Churn, half_log_snr, sampler, tell, transitions, variant

__all__ = [
    "SAMPLERS",
    "NOT_IMPLEMENTED",
    "euler_cfg_pp",
    "euler_ancestral_cfg_pp",
    "heunpp2",
    "ddpm",
    "lcm",
    "gradient_estimation",
    "gradient_estimation_cfg_pp",
    "dpmpp_2m_cfg_pp",
    "dpmpp_2s_ancestral_cfg_pp",
    *comfy_multistep.__all__,
    *comfy_sde.__all__,
]


# --- CFG++ Euler (Chung et al. 2024, arXiv:2406.08070) ------------------------------------------------------


@sampler()
def euler_ancestral_cfg_pp(run: Run, x: Tensor, sigmas: Tensor, *, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral Euler with the noise direction of the unconditional prediction (CFG++, Chung et al. 2024)."""
    for i, sigma, sigma_next in transitions(sigmas):
        denoised = run.predict(x, i, sigma)
        uncond = uncond_denoised(run.model, denoised)
        if sigma_next == 0:
            x = denoised  # denoising step
            continue
        sigma_down, sigma_up = get_ancestral_step(float(sigma), float(sigma_next), eta)
        d = to_d(x, sigma, uncond)  # the unconditional noise estimate
        x = denoised + d * sigma_down  # re-noise the guided x0 with it down to sigma_down
        if eta > 0 and s_noise > 0:
            x = x + run.noise_sampler(sigma, sigma_next) * s_noise * sigma_up
    return x


euler_cfg_pp = variant(
    euler_ancestral_cfg_pp,
    "euler_cfg_pp",
    "Euler steps with the unconditional noise direction (CFG++, Chung et al. 2024): eta 0 of the ancestral form.",
    eta=0.0,
    s_noise=0.0,
)


# --- Heun++ (Carzit/sd-webui-samplers-scheduler) -----------------------------------------------------------


@sampler(group=Churn)
def heunpp2(run: Run, x: Tensor, sigmas: Tensor, churn: Churn) -> Tensor:
    """Heun++: Euler step, then a slope averaged over up to three points, weighted by sigma / sigma_max."""
    n, s_end, sigma_max = len(sigmas) - 1, sigmas[-1], sigmas[0]
    for i in range(n):
        # optional churn (Karras et al. 2022, Algorithm 2), its noise drawn only when it is added
        gamma = churn.gamma(sigmas[i], n)
        sigma_hat = sigmas[i] * (gamma + 1)
        if gamma > 0:
            x = x + run.noise_sampler(sigmas[i], sigma_hat) * churn.s_noise * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
        denoised = run.denoise(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        tell(run.callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == s_end:  # last step: Euler
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigmas[i + 1], run.denoise(x_2, sigmas[i + 1]))
        if sigmas[i + 2] == s_end:  # one point ahead: Heun with weight sigma_{i+1} / (2 sigma_max)
            w_2 = sigmas[i + 1] / (2 * sigma_max)
            d_prime = (1 - w_2) * d + w_2 * d_2
        else:  # two points ahead: Heun++
            x_3 = x_2 + d_2 * (sigmas[i + 2] - sigmas[i + 1])
            d_3 = to_d(x_3, sigmas[i + 2], run.denoise(x_3, sigmas[i + 2]))
            w_2, w_3 = sigmas[i + 1] / (3 * sigma_max), sigmas[i + 2] / (3 * sigma_max)
            d_prime = (1 - w_2 - w_3) * d + w_2 * d_2 + w_3 * d_3
        x = x + d_prime * dt
    return x


# --- DDPM -------------------------------------------------------------------------------------------------------


@sampler()
def ddpm(run: Run, x: Tensor, sigmas: Tensor) -> Tensor:
    """Ancestral DDPM steps (Ho et al. 2020, eq. 11) between the given sigmas, alpha_cumprod = 1 / (1 + sigma^2)."""
    for i, sigma, sigma_next in transitions(sigmas):
        denoised = run.predict(x, i, sigma)
        eps = (x - denoised) / sigma
        alpha_bar, alpha_bar_prev = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
        alpha = alpha_bar / alpha_bar_prev  # 1 - beta_t for this (possibly long) step
        x_vp = x / (1 + sigma**2) ** 0.5  # variance-preserving scaling
        mean = (x_vp - (1 - alpha) / (1 - alpha_bar) ** 0.5 * eps) / alpha**0.5
        if sigma_next > 0:
            beta_tilde = (1 - alpha) * (1 - alpha_bar_prev) / (1 - alpha_bar)  # posterior variance
            mean = mean + beta_tilde**0.5 * run.noise_sampler(sigma, sigma_next)
            x = mean * (1 + sigma_next**2) ** 0.5
        else:
            x = mean
    return x


# --- gradient estimation (Permenter & Yuan 2024) ------------------------------------------------------------


@sampler()
def _gradient_estimation(run: Run, x: Tensor, sigmas: Tensor, *, ge_gamma: float = 2.0, cfg_pp: bool) -> Tensor:
    """Euler with the gradient-estimation slope; with ``cfg_pp`` along the unconditional noise direction."""
    old_d = None
    for i, sigma, sigma_next in transitions(sigmas):
        denoised = run.predict(x, i, sigma)
        d = to_d(x, sigma, uncond_denoised(run.model, denoised) if cfg_pp else denoised)
        if sigma_next == 0:
            x = denoised  # denoising step
        else:
            dt = sigma_next - sigma
            x = denoised + d * sigma_next if cfg_pp else x + d * dt  # Euler
            if old_d is not None:  # extrapolate the slope: d + (gamma - 1)(d - d_old)
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x


gradient_estimation = variant(
    _gradient_estimation,
    "gradient_estimation",
    "Euler with the gradient-estimation slope d + (gamma - 1)(d - d_prev) (Permenter & Yuan 2024).",
    cfg_pp=False,
)
gradient_estimation_cfg_pp = variant(
    _gradient_estimation,
    "gradient_estimation_cfg_pp",
    "Gradient estimation with the unconditional noise direction (CFG++).",
    cfg_pp=True,
)


# --- DPM-Solver++ CFG++ forms (Lu et al. 2022; Chung et al. 2024) -------------------------------------------


@sampler()
def dpmpp_2m_cfg_pp(run: Run, x: Tensor, sigmas: Tensor) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022) with the unconditional noise direction (CFG++)."""
    old_uncond = None
    for i, sigma, sigma_next in transitions(sigmas):
        denoised = run.predict(x, i, sigma)
        uncond = uncond_denoised(run.model, denoised)
        if sigma_next == 0:
            x = denoised
        else:
            h = half_log_snr(float(sigma_next)) - half_log_snr(float(sigma))
            x = denoised + math.exp(-h) * (x - uncond)  # first order: DDIM with the uncond noise
            if old_uncond is not None:  # second-order correction (ComfyUI: guided minus previous uncond)
                r = (half_log_snr(float(sigma)) - half_log_snr(float(sigmas[i - 1]))) / h
                x = x - math.expm1(-h) / (2 * r) * (denoised - old_uncond)
        old_uncond = uncond
    return x


@sampler()
def dpmpp_2s_ancestral_cfg_pp(run: Run, x: Tensor, sigmas: Tensor, *, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral DPM-Solver++(2S) (Lu et al. 2022) with the unconditional noise direction (CFG++), r = 1/2.

    As in ComfyUI, the full step's shift ``denoised - uncond`` takes ``uncond`` from the midpoint evaluation.
    """
    for i, sigma, sigma_next in transitions(sigmas):
        denoised = run.predict(x, i, sigma)
        uncond = uncond_denoised(run.model, denoised)
        sigma_down, sigma_up = get_ancestral_step(float(sigma), float(sigma_next), eta)
        if sigma_down == 0:  # Euler to sigma 0
            x = denoised
        else:  # DPM-Solver++(2S): midpoint s in lambda, x shifted so x - denoised is the uncond noise
            t, t_next = half_log_snr(float(sigma)), half_log_snr(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = math.exp(t - s) * (x + denoised - uncond) - math.expm1(-h / 2) * denoised
            denoised_2 = run.denoise(x_2, math.exp(-s))
            uncond = uncond_denoised(run.model, denoised_2)  # ComfyUI shifts the full step by the midpoint's uncond
            x = math.exp(t - t_next) * (x + denoised - uncond) - math.expm1(-h) * denoised_2
        if sigma_next > 0 and sigma_up > 0 and s_noise > 0:
            x = x + run.noise_sampler(sigma, sigma_next) * s_noise * sigma_up
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {fn.__name__: fn for fn in (
    euler_cfg_pp, euler_ancestral_cfg_pp, heunpp2, dpmpp_2s_ancestral_cfg_pp, dpmpp_2m_cfg_pp, ddpm, lcm, ipndm,
    ipndm_v, deis, res_multistep, res_multistep_cfg_pp, res_multistep_ancestral, res_multistep_ancestral_cfg_pp,
    gradient_estimation, gradient_estimation_cfg_pp, er_sde, seeds_2, seeds_3, sa_solver, sa_solver_pece, uni_pc,
    uni_pc_bh2,
)}  # fmt: skip
"""ComfyUI sampler name -> sdlab function, for ComfyUI's own algorithms (the k-diffusion ones live elsewhere)."""

NOT_IMPLEMENTED: list[str] = []
"""ComfyUI base algorithms neither in this module nor with the k-diffusion ones (``ddim`` is Euler there): none."""
