"""DPM-Solver fast and adaptive (Lu et al. 2022, arXiv:2206.00927) as k-diffusion runs them: DPM-Solver-1/2/3 steps in
log-SNR time between the model's sigma_min and sigma_max.

Published from :mod:`sdlab.samplers.kdiffusion` (with the other k-diffusion samplers); the same numbers as
``k_diffusion.sampling.sample_dpm_fast`` / ``sample_dpm_adaptive`` bit for bit in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.samplers.base import Run
from sdlab.samplers.steps import check_steps, log_snr_time, public_in, sampler, sigma_at_time

__all__ = ["dpm_fast", "dpm_adaptive"]


def _dpm_solver_1(x: Tensor, t: Tensor, t_next: Tensor, eps: Tensor) -> Tensor:
    """DPM-Solver-1 (= DDIM) in noise prediction: x_next = x - sigma_next (e^h - 1) eps."""
    h = t_next - t
    return x - sigma_at_time(t_next) * h.expm1() * eps


def _dpm_solver_2(
    eps_at: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor, t_next: Tensor, eps: Tensor, r1: float = 1 / 2
) -> tuple[Tensor, Tensor]:
    """DPM-Solver-2 (Lu et al. 2022), one more evaluation at s1 = t + r1 h. Returns (x_next, eps at s1)."""
    h = t_next - t
    s1 = t + r1 * h
    u1 = x - sigma_at_time(s1) * (r1 * h).expm1() * eps
    eps_r1 = eps_at(u1, s1)
    x_2 = x - sigma_at_time(t_next) * h.expm1() * eps - sigma_at_time(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)
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
        u1 = x - sigma_at_time(s1) * (r1 * h).expm1() * eps
        eps_r1 = eps_at(u1, s1)
    phi_r2 = (r2 * h).expm1() / (r2 * h) - 1
    u2 = x - sigma_at_time(s2) * (r2 * h).expm1() * eps - sigma_at_time(s2) * (r2 / r1) * phi_r2 * (eps_r1 - eps)
    eps_r2 = eps_at(u2, s2)
    return (
        x - sigma_at_time(t_next) * h.expm1() * eps - sigma_at_time(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)
    )


def _endpoint(sigma: float | Tensor) -> Tensor:
    """As k-diffusion's ``torch.tensor(sigma)``: a tensor keeps dtype and device, a number gets the default dtype."""
    if isinstance(sigma, Tensor):
        return sigma.detach().clone()
    return torch.tensor(float(sigma))


@dataclass(frozen=True)
class Span:
    """Where DPM-Solver integrates, from ``sigma_max`` down to ``sigma_min`` (k-diffusion's first options)."""

    sigma_min: float | None = None  # None: the smallest positive sigma of the schedule
    sigma_max: float | None = None  # None: sigmas[0]; A1111 passes the model's own range


def _dpm_solver_setup(
    name: str, run: Run, x: Tensor, sigmas: Tensor, span: Span, eta: float
) -> tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Tensor]]:
    """Endpoints t_start, t_end (log-SNR) and the noise-prediction eps(x, t) that DPM-Solver integrates.

    The times are 0-d tensors in the endpoints' dtype, as k-diffusion makes them: by default the endpoints are
    taken from ``sigmas`` (so float64 sigmas give float64 times, as ComfyUI passes them), while a number passed
    as ``sigma_min`` / ``sigma_max`` (A1111 passes the model's range as floats) gives torch's default dtype.
    """
    check_steps(name, x, sigmas)
    sig_max = _endpoint(sigmas[0] if span.sigma_max is None else span.sigma_max)
    sig_min = _endpoint(sigmas[sigmas > 0].min() if span.sigma_min is None else span.sigma_min)
    lo, hi = float(sig_min), float(sig_max)  # for the messages
    if not (lo > 0 and hi > 0):
        raise SdlabError("DPM-Solver needs sigma_min and sigma_max > 0", sampler=name, sigma_min=lo, sigma_max=hi)
    t_start, t_end = log_snr_time(sig_max), log_snr_time(sig_min)
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

    def eps_at(x: Tensor, t: Tensor) -> Tensor:
        return (x - run.denoise(x, sigma_at_time(t))) / sigma_at_time(t)

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
    sigma, sigma_next = sigma_at_time(t), sigma_at_time(t_next)
    sigma_up = torch.minimum(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
    t_down = torch.minimum(t_end, log_snr_time((sigma_next**2 - sigma_up**2) ** 0.5))
    return t_down, (sigma_next**2 - sigma_at_time(t_down) ** 2).clamp(min=0) ** 0.5


@public_in("sdlab.samplers.kdiffusion")
@sampler(group=Span)
def dpm_fast(
    run: Run, x: Tensor, sigmas: Tensor, span: Span, *, eta: float = 0.0, s_noise: float = 1.0, n: int | None = None
) -> Tensor:
    """DPM-Solver-fast: n evaluations as uniform log-SNR steps of order 3, 3, ..., then 2/1 (Lu et al. 2022).

    Integrates from ``sigma_max`` (default ``sigmas[0]``) to ``sigma_min`` (default: the smallest positive
    sigma) with ``n`` model evaluations (default ``len(sigmas) - 1``) and returns x at ``sigma_min``: the
    other sigmas are not used.
    """
    t_start, t_end, eps_at = _dpm_solver_setup("dpm_fast", run, x, sigmas, span, eta)
    n = len(sigmas) - 1 if n is None else n
    if n < 1:
        raise SdlabError("dpm_fast needs n >= 1 model evaluations", n=n)
    m = n // 3 + 1
    ts = torch.linspace(t_start, t_end, m + 1, device=x.device)
    orders = [3] * (m - 2) + [2, 1] if n % 3 == 0 else [3] * (m - 1) + [n % 3]
    for i, order in enumerate(orders):
        t, t_next = ts[i], ts[i + 1]
        t_down, sigma_up = _ancestral_target(t, t_next, t_end, eta)
        eps = eps_at(x, t)
        denoised = x - sigma_at_time(t) * eps
        if run.callback is not None:
            info = {"x": x, "i": i, "t": t, "t_up": t, "denoised": denoised}
            run.callback({"sigma": sigma_at_time(t), "sigma_hat": sigma_at_time(t), **info})
        if order == 1:
            x = _dpm_solver_1(x, t, t_down, eps)
        elif order == 2:
            x, _ = _dpm_solver_2(eps_at, x, t, t_down, eps)
        else:
            x = _dpm_solver_3(eps_at, x, t, t_down, eps)
        x = x + sigma_up * s_noise * run.noise_sampler(sigma_at_time(t), sigma_at_time(t_next))
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


@public_in("sdlab.samplers.kdiffusion")
@sampler(group=Span)
def dpm_adaptive(
    run: Run,
    x: Tensor,
    sigmas: Tensor,
    span: Span,
    *,
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
    return_info: bool = False,
) -> Tensor | tuple[Tensor, dict[str, int]]:
    """DPM-Solver-12/23: embedded pairs with a PID-controlled adaptive step size (Lu et al. 2022).

    Integrates from ``sigma_max`` (default ``sigmas[0]``) to ``sigma_min`` (default: the smallest positive
    sigma), choosing its own steps: the number of sigmas is ignored. Each attempted step (accepted or
    not) costs ``order`` model evaluations; the callback dict and ``return_info=True``'s info carry the
    running counts ``steps``, ``nfe``, ``n_accept``, ``n_reject``. The error norm spans the whole batch, so
    all items take the same steps and an item's result depends on its batch.
    """
    t_start, t_end, eps_at = _dpm_solver_setup("dpm_adaptive", run, x, sigmas, span, eta)
    if order not in (2, 3):
        raise SdlabError("dpm_adaptive order must be 2 or 3", order=order)
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
        denoised = x - sigma_at_time(s) * eps
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
            x = x_high + sigma_up * s_noise * run.noise_sampler(sigma_at_time(s), sigma_at_time(t))
            s = t
            info["n_accept"] += 1
        else:
            info["n_reject"] += 1
        info["nfe"] += order
        info["steps"] += 1
        if run.callback is not None:
            step = {"x": x, "i": info["steps"] - 1, "t": s, "t_up": s, "denoised": denoised, "error": error}
            run.callback({"sigma": sigma_at_time(s), "sigma_hat": sigma_at_time(s), **step, "h": pid.h, **info})
    return (x, info) if return_info else x
