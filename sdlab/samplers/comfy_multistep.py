"""ComfyUI's multistep and exponential-integrator samplers: iPNDM, iPNDM-v, DEIS, RES multistep (plain, CFG++,
ancestral), DPM-Solver++(3M) and its own UniPC. Published from :mod:`sdlab.samplers.comfy` (see its notes on how
sdlab's forms relate to ComfyUI's).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.samplers.a1111 import unipc_multistep
from sdlab.samplers.base import Run, get_ancestral_step, to_d, uncond_denoised
from sdlab.samplers.steps import (
    check_order,
    combine,
    half_log_snr,
    phi1,
    phi2,
    public_in,
    report,
    sampler,
    transitions,
    variant,
)

__all__ = [
    "ipndm",
    "ipndm_v",
    "deis",
    "res_multistep",
    "res_multistep_cfg_pp",
    "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp",
    "dpmpp_3m",
    "uni_pc",
    "uni_pc_bh2",
    "UNI_PC_FINAL_SIGMA",
]


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


@public_in("sdlab.samplers.comfy")
@sampler()
def _ipndm(run: Run, x: Tensor, sigmas: Tensor, *, max_order: int = 4, variable: bool) -> Tensor:
    """Multistep in sigma on the slopes d = (x - D) / sigma; the last step jumps to D."""
    check_order("ipndm_v" if variable else "ipndm", "max_order", max_order, 1, 4)
    t = sigmas.tolist()
    slopes: list[Tensor] = []  # newest first
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
        d = to_d(x, sigmas[i], denoised)
        slopes = [d, *slopes][:max_order]
        if t[i + 1] == 0:
            x = denoised
            continue
        order = len(slopes)
        weights = _ipndm_variable(order, t, i) if variable and order > 1 else _ipndm_fixed(order)
        x = x + (t[i + 1] - t[i]) * combine(weights, slopes)
    return x


ipndm = variant(
    _ipndm,
    "ipndm",
    "Improved PNDM (Zhang & Chen 2023): Adams-Bashforth with equal-step weights, warming up from Euler.",
    variable=False,
)
ipndm_v = variant(
    _ipndm,
    "ipndm_v",
    "Improved PNDM with weights for variable step sizes (zju-pi/diff-sampler's iPNDM-v).",
    variable=True,
)


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


@public_in("sdlab.samplers.comfy")
@sampler()
def deis(run: Run, x: Tensor, sigmas: Tensor, *, max_order: int = 3, deis_mode: str = "tab") -> Tensor:
    """DEIS (Zhang & Chen 2023) in ComfyUI's "tAB" mode: exponential-integrator multistep with quadrature weights."""
    check_order("deis", "max_order", max_order, 1, 4)
    if deis_mode != "tab":
        raise SdlabError("only deis_mode='tab' is available", sampler="deis", deis_mode=deis_mode, hint="pass 'tab'")
    weights = _deis_tab_weights(sigmas.tolist(), max_order)
    slopes: list[Tensor] = []  # newest first
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
        d = to_d(x, sigmas[i], denoised)
        slopes = [d, *slopes][:max_order]
        if weights[i]:  # noqa: SIM108  (DEIS step with len(weights[i]) slopes)
            x = x + combine(weights[i], slopes)
        else:  # first (and last) step: Euler
            x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


# --- RES multistep (Zhang et al. 2023, arXiv:2308.02157) ----------------------------------------------------


@public_in("sdlab.samplers.comfy")
@sampler()
def _res_multistep(
    run: Run, x: Tensor, sigmas: Tensor, *, eta: float = 1.0, s_noise: float = 1.0, cfg_pp: bool
) -> Tensor:
    """RES multistep down to sigma_down, then fresh noise sigma_up; with ``cfg_pp`` on the uncond prediction."""
    old_denoised, old_sigma_down = None, 0.0
    for i, sigma, sigma_next in transitions(sigmas):
        denoised = run.predict(x, i, sigma)
        uncond = uncond_denoised(run.model, denoised) if cfg_pp else denoised
        sigma_down, sigma_up = get_ancestral_step(float(sigma), float(sigma_next), eta)
        if sigma_down == 0 or old_denoised is None:  # Euler (CFG++: noise direction from uncond)
            if cfg_pp:
                x = denoised + to_d(x, sigma, uncond) * sigma_down
            else:
                x = x + to_d(x, sigma, denoised) * (sigma_down - sigma)
        else:  # second-order exponential multistep with c2 from the previous step
            t, t_next = half_log_snr(float(sigma)), half_log_snr(sigma_down)
            t_prev = half_log_snr(float(sigmas[i - 1]))
            t_old = half_log_snr(old_sigma_down) if old_sigma_down > 0 else math.inf
            h = t_next - t
            c2 = (t_prev - t_old) / h  # ComfyUI measures the previous step to its own sigma_down
            b2 = phi2(-h) / c2
            b1 = phi1(-h) - b2
            if cfg_pp:
                x = x + (denoised - uncond)
            x = math.exp(-h) * x + h * (b1 * uncond + b2 * old_denoised)
        if sigma_next > 0 and sigma_up > 0 and s_noise > 0:
            x = x + run.noise_sampler(sigma, sigma_next) * s_noise * sigma_up
        old_denoised, old_sigma_down = uncond, sigma_down
    return x


res_multistep = variant(
    _res_multistep,
    "res_multistep",
    "RES second-order multistep (Zhang et al. 2023, arXiv:2308.02157): exponential integrator, 1 NFE a step.",
    eta=0.0,
    cfg_pp=False,
)
res_multistep_cfg_pp = variant(
    _res_multistep,
    "res_multistep_cfg_pp",
    "RES multistep on the unconditional prediction (CFG++, Chung et al. 2024).",
    eta=0.0,
    cfg_pp=True,
)
res_multistep_ancestral = variant(
    _res_multistep,
    "res_multistep_ancestral",
    "RES multistep down to sigma_down, then fresh noise up to the next sigma (ancestral steps).",
    cfg_pp=False,
)
res_multistep_ancestral_cfg_pp = variant(
    _res_multistep,
    "res_multistep_ancestral_cfg_pp",
    "Ancestral RES multistep on the unconditional prediction (CFG++).",
    cfg_pp=True,
)


# --- DPM-Solver++(3M) ODE -----------------------------------------------------------------------------------


@public_in("sdlab.samplers.comfy")
@sampler()
def dpmpp_3m(run: Run, x: Tensor, sigmas: Tensor) -> Tensor:
    """DPM-Solver++(3M) (Lu et al. 2022), the ODE form of DPM++ 3M SDE (its eta 0); not a ComfyUI name."""
    denoised_1 = denoised_2 = None
    h = h_1 = h_2 = None
    for i, sigma, sigma_next in transitions(sigmas):
        denoised = run.predict(x, i, sigma)
        if sigma_next == 0:
            x = denoised  # denoising step
        else:
            h = half_log_snr(float(sigma_next)) - half_log_snr(float(sigma))
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


@public_in("sdlab.samplers.comfy")
@sampler()
def uni_pc(run: Run, x: Tensor, sigmas: Tensor, *, variant: str = "bh1") -> Tensor:
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
        return run.denoise(x_hat, sigmas[i])

    def report_step(x_hat: Tensor, i: int, denoised: Tensor) -> None:
        report(run.callback, x_hat, i, sigmas[i], denoised)

    if n == 1:  # order min(3, 0) = 0: ComfyUI evaluates the model once and takes no step
        report_step(x, 0, data_prediction(x, 0))
        return x * math.sqrt((1 + grid[-1] ** 2) / (1 + grid[0] ** 2))
    lam = [half_log_snr(s) for s in grid]
    return unipc_multistep(
        x, lam, data_prediction, variant=variant, order=min(3, n - 1), lower_order_final=True, report=report_step
    )


uni_pc_bh2 = variant(
    uni_pc,
    "uni_pc_bh2",
    "ComfyUI's ``uni_pc_bh2``: :func:`uni_pc` with the B(h) = e^h - 1 variant (bh2).",
    variant="bh2",
)
