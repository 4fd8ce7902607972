"""A1111's own samplers (the ones that are not k-diffusion functions), in sdlab's sigma-space convention.

Reproduces AUTOMATIC1111 v1.10.x: DDIM, DDIM CFG++, PLMS and UniPC (``modules/sd_samplers_timesteps_impl.py``
and ``modules/models/diffusion/uni_pc``), LCM (``modules/sd_samplers_lcm.py``) and Restart
(``modules/sd_samplers_extra.py``). Every sampler has sdlab's signature
``fn(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None, **knobs) -> x``.

**Timestep samplers.** A1111 runs DDIM, DDIM CFG++, PLMS and UniPC on fixed timesteps of its own and ignores
the schedule chosen in the UI. :func:`ddim_sigmas`, :func:`plms_sigmas` and :func:`unipc_sigmas` give those as
sigmas (``TIMESTEP_SIGMAS`` maps sampler names to them); they are schedules of the training table and live in
:mod:`sdlab.schedules.timesteps`, re-exported here. Timestep ``t`` means the training sigma ``model.sigmas[t]``,
and a fractional ``t`` (UniPC) means k-diffusion's ``t_to_sigma``: ``log(sigma)`` linear in ``t`` between table
entries. The denoiser maps sigma back to ``t``. Exact table sigmas give an exact integer ``t``.

A1111 works on the VP latent ``x_vp = x / sqrt(1 + sigma**2)`` with an eps-predicting model. sdlab keeps ``x``
in VE scaling, and ``eps = (x - denoised) / sigma``. The updates below are the same algebra divided through by
``sqrt(alphas_cumprod)``, so results match A1111's up to float rounding, with two conversions at the ends:

* **Start.** A1111 hands these samplers unit-variance noise as the VP latent (no multiplication by
  ``sigmas[0]``). It behaves like the "SGM noise multiplier", not like k-diffusion's ``noise * sigmas[0]``.
  So start from ``x = vp_to_ve(noise, sigmas[0])`` (``noise * sqrt(1 + sigmas[0]**2)``).
* **End.** None of these four samplers reaches sigma 0. DDIM and PLMS stop at timestep 1 and UniPC stops at
  timestep 0 (``model.sigmas[0]``). A1111 decodes that VP latent as it is: ``ve_to_vp(x, sigmas[-1])``.

>>> sigmas = ddim_sigmas(model, 20)                # 20 sigmas, t = 951, 901, ..., 1: 19 model calls
>>> x = ddim(model, vp_to_ve(noise, sigmas[0]), sigmas)
>>> latent = ve_to_vp(x, sigmas[-1])              # what A1111 hands to the VAE

Callbacks follow sdlab, not A1111. ``x`` is the latent at ``sigma = sigmas[i]`` before step ``i``, and
``denoised`` is the model's prediction there. A1111 reports the latent after the step with ``sigma`` 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.options import Domain, check_option
from sdlab.samplers.base import Run, to_d, uncond_denoised
from sdlab.samplers.steps import sampler, tell, variant
from sdlab.schedules.table import sigmas_to_t
from sdlab.schedules.timesteps import (
    ONE_TIMESTEP,
    TIMESTEP_SIGMAS,
    UNIPC_SKIP_TYPES,
    ddim_sigmas,
    plms_sigmas,
    training_table,
    unipc_sigmas,
    vp_lambda,
    vp_log_alpha,
)

__all__ = [
    "ddim_sigmas",
    "plms_sigmas",
    "unipc_sigmas",
    "vp_to_ve",
    "ve_to_vp",
    "ddim",
    "ddim_cfgpp",
    "plms",
    "unipc",
    "unipc_multistep",
    "lcm",
    "restart",
    "SAMPLERS",
    "TIMESTEP_SIGMAS",
    "CFGPP_SCALE_DIVISOR",
    "ONE_TIMESTEP",
    "UNIPC_VARIANTS",
    "UNIPC_SKIP_TYPES",
]

CFGPP_SCALE_DIVISOR = 12.5
"""A1111 divides the CFG scale by this for DDIM CFG++ (``cond_scale_miltiplier = 1 / 12.5``): scale 7 -> 0.56.

The CFG denoiser applies it, not the sampler. It must also compute the uncond pass on every step (A1111
disables its uncond-skipping optimisations when a sampler asks for ``last_noise_uncond``).
"""

UNIPC_VARIANTS = ("bh1", "bh2", "vary_coeff")


def vp_to_ve(x: Tensor, sigma: Tensor | float) -> Tensor:
    """A VP latent (A1111's timestep samplers) in sdlab's VE scaling: ``x * sqrt(1 + sigma**2)``."""
    return x * math.sqrt(1 + float(sigma) ** 2)


def ve_to_vp(x: Tensor, sigma: Tensor | float) -> Tensor:
    """A VE latent at ``sigma`` as the VP latent A1111 would hold (and decode): ``x / sqrt(1 + sigma**2)``."""
    return x / math.sqrt(1 + float(sigma) ** 2)


# --- DDIM and PLMS -------------------------------------------------------------------------------------------


def _check_eta(eta: float, sampler: str) -> None:
    if not 0 <= eta <= 1:
        raise SdlabError(
            "DDIM eta must lie in [0, 1]; above 1 the direction term's square root goes negative",
            sampler=sampler,
            eta=eta,
            hint="A1111's 'Eta DDIM' slider runs from 0 to 1",
        )


@sampler()
def _ddim(run: Run, x: Tensor, sigmas: Tensor, *, eta: float = 0.0, cfgpp: bool) -> Tensor:
    """DDIM, or with ``cfgpp`` DDIM CFG++, in VE form (see :func:`ddim` and :func:`ddim_cfgpp`)."""
    _check_eta(eta, "ddim_cfgpp" if cfgpp else "ddim")
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = run.predict(x, i, sigmas[i])
        # eq. 12's sigma_t(eta) divided by sqrt(alpha_prev) (= k-diffusion's ancestral sigma_up, unclamped)
        sigma_up = eta * sigma_next * math.sqrt(max(0.0, 1 - (sigma_next / sigma) ** 2))
        sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
        # CFG++ points the "direction to x_t" along the unconditional eps instead of the guided one
        eps = to_d(x, sigmas[i], uncond_denoised(run.model, denoised) if cfgpp else denoised)
        x = denoised + sigma_down * eps
        if sigma_up:
            x = x + sigma_up * run.noise_sampler(sigmas[i], sigmas[i + 1])
    return x


ddim = variant(
    _ddim,
    "ddim",
    """DDIM (Song et al. 2021, eq. 12) as A1111's ``ddim``. ``eta`` is "Eta DDIM" (default 0, deterministic).

    In VE form each step is ``x = denoised + sigma_down * eps + sigma_up * noise``. With ``eta = 0`` that is
    Euler. Run it on :func:`ddim_sigmas` to reproduce A1111 (see the module docstring). It works on any
    decreasing sigmas, a final 0 included.
    """,
    cfgpp=False,
)
ddim_cfgpp = variant(
    _ddim,
    "ddim_cfgpp",
    """DDIM CFG++ (Chung et al. 2024) as A1111's ``ddim_cfgpp``: guided x0, direction along the uncond eps.

    It reads the uncond prediction from ``model.last_uncond_denoised``. Without guidance it equals
    :func:`ddim`. A1111 also divides the CFG scale by :data:`CFGPP_SCALE_DIVISOR`, which the CFG denoiser has
    to do.
    """,
    cfgpp=True,
)


@sampler()
def plms(run: Run, x: Tensor, sigmas: Tensor) -> Tensor:
    """PLMS (Liu et al. 2022, pseudo linear multistep) as A1111's ``plms``: Adams-Bashforth on eps.

    The first step is a pseudo improved Euler step. It costs 2 model calls, and with a final sigma of 0 it
    stays Euler. The next steps use Adams-Bashforth of order 2, then 3, then 4, on the raw eps of earlier
    steps. The coefficients assume equal steps, as A1111's uniform timesteps are. In VE form a step is
    ``x + (sigma_next - sigma) * eps'``, which is DDIM's eta-0 update driven by the combined ``eps'``.
    ``noise_sampler`` is unused.
    """
    old_eps: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        dt = sigmas[i + 1] - sigmas[i]
        denoised = run.predict(x, i, sigmas[i])
        eps = to_d(x, sigmas[i], denoised)
        if not old_eps:  # pseudo improved Euler
            eps_prime = eps
            if sigmas[i + 1] > 0:
                x_2 = x + eps * dt
                eps_2 = to_d(x_2, sigmas[i + 1], run.denoise(x_2, sigmas[i + 1]))
                eps_prime = (eps + eps_2) / 2
        elif len(old_eps) == 1:  # Adams-Bashforth 2
            eps_prime = (3 * eps - old_eps[-1]) / 2
        elif len(old_eps) == 2:  # Adams-Bashforth 3
            eps_prime = (23 * eps - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:  # Adams-Bashforth 4
            eps_prime = (55 * eps - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x = x + eps_prime * dt
        old_eps = [*old_eps, eps][-3:]
    return x


# --- UniPC ---------------------------------------------------------------------------------------------------


def _weighted(coeffs: list[float], tensors: list[Tensor]) -> Tensor | float:
    return sum((c * d for c, d in zip(coeffs, tensors, strict=True)), 0.0)


def _unipc_update(
    x_hat: Tensor,
    ms: list[Tensor],
    lams: list[float],
    lam_t: float,
    p: int,
    variant: str,
    predict: Callable[[Tensor], Tensor] | None,
) -> tuple[Tensor, Tensor | None]:
    """One UniP-p step in VE form from the last of the points with half log-SNRs ``lams`` to ``lam_t``.

    ``ms`` are the data predictions at those points (oldest first). With ``predict`` (x -> the data prediction at
    the target), the corrector UniC-p follows, reusing that model call; returns (x, that prediction or None).
    """
    h = lam_t - lams[-1]
    m0 = ms[-1]
    rks = [(lams[-(k + 1)] - lams[-1]) / h for k in range(1, p)]
    D1s = [(ms[-(k + 1)] - m0) / rk for k, rk in enumerate(rks, start=1)]
    rks.append(1.0)
    hh = -h  # data prediction
    x_base = math.exp(-h) * x_hat - math.expm1(hh) * m0  # the first-order (DDIM) step
    if variant == "vary_coeff":
        C = torch.tensor([[rk**k / math.factorial(k + 1) for k in range(p)] for rk in rks], dtype=torch.float64)
        h_phi = [math.expm1(hh)]
        for k in range(1, p + 1):
            h_phi.append(h_phi[-1] / hh - 1 / math.factorial(k))
        A_p = torch.linalg.inv(C[:-1, :-1]).tolist() if D1s else []
        x_t = x_base - _weighted(h_phi[1:p], [_weighted(A_p[k], D1s) for k in range(p - 1)])
        if predict is None:
            return x_t, None
        m_t = predict(x_t)
        A_c = torch.linalg.inv(C).tolist()
        x_t = x_base - _weighted(h_phi[1:p], [_weighted(A_c[k][:-1], D1s) for k in range(p - 1)])
        return x_t - h_phi[p] * A_c[max(p - 2, 0)][-1] * (m_t - m0), m_t
    B_h = hh if variant == "bh1" else math.expm1(hh)
    R = torch.tensor([[rk ** (k - 1) for rk in rks] for k in range(1, p + 1)], dtype=torch.float64)
    b, h_phi_k = [], math.expm1(hh) / hh - 1
    for k in range(1, p + 1):
        b.append(h_phi_k * math.factorial(k) / B_h)
        h_phi_k = h_phi_k / hh - 1 / math.factorial(k + 1)
    b = torch.tensor(b, dtype=torch.float64)
    if not D1s:
        rhos_p = []
    elif p == 2:
        rhos_p = [0.5]
    else:
        rhos_p = torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
    x_t = x_base - B_h * _weighted(rhos_p, D1s)  # predictor UniP-p
    if predict is None:
        return x_t, None
    m_t = predict(x_t)
    rhos_c = [0.5] if p == 1 else torch.linalg.solve(R, b).tolist()
    return x_base - B_h * (_weighted(rhos_c[:-1], D1s) + rhos_c[-1] * (m_t - m0)), m_t  # corrector UniC-p


def unipc_multistep(
    x_hat: Tensor,
    lam: list[float],
    data_prediction: Callable[[Tensor, int], Tensor],
    *,
    variant: str,
    order: int,
    lower_order_final: bool,
    report: Callable[[Tensor, int, Tensor], None] | None = None,
) -> Tensor:
    """Multistep UniPC with data prediction (Zhao et al. 2023) over grid points ``0 .. n``, in VE form.

    ``lam[i]`` is the half log-SNR of grid point ``i``, and ``x_hat`` is VE-scaled with UniPC's sigma
    ``exp(-lam[0])``. ``data_prediction(x_hat, i)`` is the model's data prediction at point ``i`` (points
    ``0 .. n - 1`` are evaluated). The first ``order - 1`` steps warm up at orders 1, 2, ...; with
    ``lower_order_final`` the last steps lower the order to the steps left. Every step but the last is
    corrected, reusing the model call at the predicted point. ``report(x_hat, i, denoised)`` is called before
    step ``i``. Returns ``x_hat`` at point ``n``. A1111's and ComfyUI's UniPC both run this; they differ in the
    grid (A1111's training-table time, ComfyUI's sigmas) and in the order they ask for.
    """
    n = len(lam) - 1
    ms, lams = [data_prediction(x_hat, 0)], [lam[0]]
    for i in range(n):
        if report is not None:
            report(x_hat, i, ms[-1])
        if i + 1 < order:  # warm-up: orders 1, 2, ... while the history is short
            p = i + 1
        elif lower_order_final:
            p = min(order, n - i)
        else:
            p = order
        last = i + 1 == n
        predict = None if last else (lambda x_t, j=i + 1: data_prediction(x_t, j))
        x_hat, m_t = _unipc_update(x_hat, ms, lams, lam[i + 1], p, variant, predict)
        if not last:
            ms, lams = [*ms, m_t][-order:], [*lams, lam[i + 1]][-order:]
    return x_hat


@sampler()
def unipc(
    run: Run, x: Tensor, sigmas: Tensor, *, variant: str = "bh1", order: int = 3, lower_order_final: bool = True
) -> Tensor:
    """UniPC (Zhao et al. 2023), multistep with data prediction, as A1111's ``uni_pc`` port runs it.

    A1111's defaults are ``variant="bh1"``, ``order=3`` and ``lower_order_final=True``. The predictor
    UniP-p and corrector UniC-p need ``len(sigmas) - 1 >= order``. The first ``order - 1`` steps warm up at
    orders 1, 2, .... The last step has no corrector. Each corrector reuses the model call made at the
    predicted point, so a step costs one call. The solver works on A1111's VP schedule: each sigma is
    mapped to its timestep ``t`` (k-diffusion's ``sigma_to_t``), and alpha, lambda come from
    ``0.5 * log(alphas_cumprod)`` linear in ``t``. At a fractional ``t`` this differs slightly from
    ``1 / sqrt(1 + sigma**2)``, and that is what A1111 computes. ``sigmas`` must lie inside the training
    table, so there is no final 0. The callback's ``denoised`` for step ``i`` is the data prediction UniPC
    uses for ``sigmas[i]``, taken at the predictor's point. ``vary_coeff`` follows the original code, quirks
    included: its corrector pairs ``h_phi_K`` with row ``K - 2`` of ``inv(C)``, and on the analytic Gaussian
    tests it converges only at about first order for ``order >= 2``. ``noise_sampler`` is unused.
    """
    if variant not in UNIPC_VARIANTS:
        raise SdlabError("unknown UniPC variant", variant=variant, hint=closest(variant, UNIPC_VARIANTS))
    n = len(sigmas) - 1
    check_option(Domain.integer(1, n, note="A1111 asserts the same"), "order", order, sampler="unipc", steps=n)
    table = training_table(run.model)
    sig = sigmas.detach().to(torch.float64).cpu()
    if not (sig >= table[0] * (1 - 1e-6)).all() or not (sig <= table[-1] * (1 + 1e-6)).all():
        raise SdlabError(
            "UniPC (A1111) works on the model's timesteps: every sigma must lie within the training table",
            sigma_min=float(table[0]),
            sigma_max=float(table[-1]),
            got=(float(sig.min()), float(sig.max())),
            hint="use unipc_sigmas(model, steps), which ends at the smallest training sigma, not 0; ComfyUI's "
            "uni_pc runs on any sigmas",
        )
    if (sig.diff() >= 0).any():
        raise SdlabError("UniPC needs strictly decreasing sigmas", sigmas=sig.tolist(), hint="drop repeated sigmas")

    log_alpha = vp_log_alpha(table, sigmas_to_t(table, sig))
    lam = vp_lambda(log_alpha).tolist()  # half log-SNR of each grid point
    # The VP latent is alpha * x_hat, with x_hat VE-scaled by UniPC's own sigma exp(-lambda). The model takes
    # the VE latent at sigmas[i], c[i] * x_hat, and c[i] is 1 at every exact table sigma.
    c = (log_alpha.exp() * torch.sqrt(1 + sig**2)).tolist()

    def data_prediction(x_hat: Tensor, i: int) -> Tensor:
        x_in = x_hat * c[i]
        eps = to_d(x_in, sigmas[i], run.denoise(x_in, sigmas[i]))
        return x_hat - math.exp(-lam[i]) * eps

    def report(x_hat: Tensor, i: int, denoised: Tensor) -> None:
        if run.callback is not None:
            tell(run.callback, x_hat * c[i], i, sigmas[i], sigmas[i], denoised)

    x_hat = unipc_multistep(
        x / c[0], lam, data_prediction, variant=variant, order=order, lower_order_final=lower_order_final, report=report
    )
    return x_hat * c[n]


# --- LCM and Restart -----------------------------------------------------------------------------------------


@sampler()
def lcm(run: Run, x: Tensor, sigmas: Tensor) -> Tensor:
    """LCM multistep sampling (Luo et al. 2023) as A1111's ``sample_lcm``: jump to x0, re-noise to the next sigma.

    A1111 pairs it with its own denoiser, ``LCMCompVisDenoiser``: a 50-entry sigma table at ``t = 19, 39, ...,
    999``, sigma snapped to the nearest of them, and the consistency boundary ``c_skip = 0.25 / ((10 t)^2 +
    0.25)``, ``c_out = 10 t / sqrt((10 t)^2 + 0.25)``. That is the denoiser's job, not this sampler's:
    :class:`sdlab.models.denoisers.LCMEpsDenoiser`, which :func:`sdlab.generate` uses for A1111's "LCM".
    """
    for i in range(len(sigmas) - 1):
        denoised = run.predict(x, i, sigmas[i])
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * run.noise_sampler(sigmas[i], sigmas[i + 1])
    return x


def _karras(n: int, sigma_min: float, sigma_max: float, like: Tensor, rho: float = 7.0) -> Tensor:
    """k-diffusion's ``get_sigmas_karras`` (Karras et al. 2022, eq. 5), with the trailing 0."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])]).to(like)


@sampler()
def restart(
    run: Run,
    x: Tensor,
    sigmas: Tensor,
    *,
    s_noise: float = 1.0,
    restart_list: dict[float, tuple[int, int, float]] | None = None,
) -> Tensor:
    """Restart sampling (Xu et al. 2023) as A1111's ``restart_sampler``: Heun steps plus re-noised restart loops.

    A1111 feeds it Karras sigmas. With ``restart_list=None`` and ``steps = len(sigmas) - 1``:

    * below 20 steps it is plain Heun (the step to 0 is Euler);
    * from 20 steps on it rebuilds the schedule: Karras with ``steps - restart_steps * restart_times`` steps
      between ``sigmas[-2]`` and ``sigmas[0]``. Then, after the step landing nearest to sigma 0.1, it jumps
      back up to the sigma nearest 2 and runs ``restart_steps`` Karras steps down again, ``restart_times``
      times (9 steps once; from 36 steps, ``steps // 4`` twice). That keeps ``steps`` Heun transitions.

    ``restart_list`` is A1111's ``{min_sigma: (restart_steps + 1, restart_times, max_sigma)}``. Each jump
    adds ``s_noise * sqrt(sigma_hi**2 - sigma_lo**2) * noise_sampler(sigma_lo, sigma_hi)``, so give it fresh
    noise on each call: a Brownian-tree sampler would repeat the same increment for a repeated interval.
    The callback's ``sigma`` is the step's start sigma; A1111 reports the target sigma there.
    """
    steps = len(sigmas) - 1
    if restart_list is None:
        restart_list = {}
        if steps >= 20:
            restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
            n_base = steps - restart_steps * restart_times
            sigmas = _karras(n_base, float(sigmas[-2]), float(sigmas[0]), like=sigmas)
            restart_list = {0.1: (restart_steps + 1, restart_times, 2.0)}

    def nearest(value: float) -> int:
        return int(torch.argmin((sigmas - value).abs()))

    # the transitions to run: the base schedule with restart segments spliced in
    restarts = {nearest(key): value for key, value in restart_list.items()}
    step_list = []
    for i in range(len(sigmas) - 1):
        step_list.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in restarts:
            n_restart, times, sigma_restart_max = restarts[i + 1]
            min_idx, max_idx = i + 1, nearest(sigma_restart_max)
            if max_idx < min_idx:
                seg = _karras(n_restart, float(sigmas[min_idx]), float(sigmas[max_idx]), like=sigmas)[:-1]
                step_list.extend(list(zip(seg[:-1], seg[1:], strict=True)) * times)

    last_sigma = None
    for step_id, (sigma, sigma_next) in enumerate(step_list):
        if last_sigma is not None and last_sigma < sigma:  # restart: jump back up with fresh noise
            noise = run.noise_sampler(last_sigma, sigma)
            x = x + noise * s_noise * (sigma**2 - last_sigma**2) ** 0.5
        denoised = run.predict(x, step_id, sigma)
        d = to_d(x, sigma, denoised)
        dt = sigma_next - sigma
        if sigma_next == 0:  # Euler
            x = x + d * dt
        else:  # Heun
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigma_next, run.denoise(x_2, sigma_next))
            x = x + (d + d_2) / 2 * dt
        last_sigma = sigma_next
    return x


SAMPLERS: dict[str, Callable[..., Tensor]] = {fn.__name__: fn for fn in (ddim, ddim_cfgpp, plms, unipc, lcm, restart)}
"""sdlab names of A1111's non-k-diffusion samplers -> functions."""
