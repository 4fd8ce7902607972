"""The true solution of the probability-flow ODE for an exact denoiser, with its own error estimate.

The PF-ODE dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, eq. 3) is solved with scipy's DOP853
(8th-order Dormand-Prince) in float64 at tight tolerance, in log-sigma u = log(sigma), where it reads
dx/du = x - D(x, sigma) and is equally smooth at every noise level. A denoiser with a ``score`` method uses
the equivalent dx/du = -sigma^2 * score(x, sigma), which avoids the cancellation in x - D at small sigma.

Every answer carries an error estimate: the ODE is solved twice, at tolerance ``rtol`` and ``rtol / 100``,
and the largest difference between the two is reported beside the (finer) solution.

>>> gmm = toy_mixture()
>>> x = 14.6 * torch.randn(8, 2, dtype=torch.float64)
>>> truth = true_solution(gmm, x, 14.6, gmm.sigma_min)
>>> truth.x_end.shape, truth.error_estimate < 1e-8
(torch.Size([8, 2]), True)

To sigma 0: a Gaussian mixture's drift -sigma * score is finite at 0, so the ODE is integrated to 0 itself
(in sigma for the last stretch). A dataset's ideal denoiser has no smooth limit (every path lands on a data
point); there the solution at 0 is the exact final denoise D(x(s), s) at a tiny s, whose error is estimated by
doing the same at s / 10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sdlab.errors import SdlabError

__all__ = ["TrueSolution", "true_solution", "true_path"]

_MIN_RTOL = 2.5e-14  # scipy raises rtol below 100 * machine epsilon to that value (with a warning)
SIGMA_FLOOR = 1e-4  # where integration in log-sigma stops on the way to sigma 0


@dataclass(frozen=True)
class TrueSolution:
    """The exact PF-ODE solution at ``sigma_end`` from ``x`` at ``sigma_start``.

    ``error_estimate`` is max |x(rtol) - x(rtol / 100)| over every element: a bound to quote beside any error
    measured against ``x_end``. ``nfe`` counts denoiser evaluations of both solves.
    """

    x_end: Tensor
    sigma_start: float
    sigma_end: float
    error_estimate: float
    nfe: int
    rtol: float


def _drift_log_sigma(denoiser: Any, shape: tuple[int, ...], counter: list[int]) -> Any:
    """f(u, y) = dx/du at sigma = exp(u), y the flattened batch (numpy float64)."""
    use_score = callable(getattr(denoiser, "score", None))

    def f(u: float, y: np.ndarray) -> np.ndarray:
        counter[0] += 1
        x = torch.from_numpy(y).reshape(shape)
        sigma = math.exp(u)
        s = torch.full((shape[0],), sigma, dtype=torch.float64)
        with torch.no_grad():
            dx = -(sigma**2) * denoiser.score(x, s) if use_score else x - denoiser(x, s)
        return dx.reshape(-1).numpy()

    return f


def _drift_sigma(denoiser: Any, shape: tuple[int, ...], counter: list[int]) -> Any:
    """f(sigma, y) = dx/dsigma = -sigma * score(x, sigma): finite down to sigma 0 for a smooth density."""

    def f(sigma: float, y: np.ndarray) -> np.ndarray:
        counter[0] += 1
        x = torch.from_numpy(y).reshape(shape)
        s = torch.full((shape[0],), max(sigma, 0.0), dtype=torch.float64)
        with torch.no_grad():
            return (-max(sigma, 0.0) * denoiser.score(x, s)).reshape(-1).numpy()

    return f


def _smooth_at_zero(denoiser: Any) -> bool:
    var = getattr(denoiser, "var", None)
    return callable(getattr(denoiser, "score", None)) and isinstance(var, Tensor) and bool((var > 0).all())


def _solve(
    denoiser: Any, x: Tensor, sigmas: list[float], rtol: float, atol: float, counter: list[int], floor: float
) -> list[np.ndarray]:
    """The solution at each of ``sigmas`` (decreasing, first = start, 0 allowed last) at one tolerance."""
    from scipy.integrate import solve_ivp

    shape = tuple(x.shape)
    y = x.detach().to("cpu", torch.float64).reshape(-1).numpy().copy()
    end = sigmas[-1]
    stop = min(min(s for s in sigmas if s > 0), floor) if end == 0 else end
    targets = [math.log(max(s, stop)) for s in sigmas[1:]]  # sigma 0 is reached from `stop` below
    u0 = math.log(sigmas[0])
    values = {u0: y}
    t_eval = sorted({t for t in targets if t < u0}, reverse=True)
    if t_eval:
        res = solve_ivp(
            _drift_log_sigma(denoiser, shape, counter), (u0, t_eval[-1]), y, method="DOP853", rtol=rtol, atol=atol,
            t_eval=t_eval,
        )  # fmt: skip
        if not res.success or len(res.t) != len(t_eval):
            raise SdlabError("the reference ODE solve failed", message=res.message, hint="loosen rtol")
        values.update({t: res.y[:, j] for j, t in enumerate(t_eval)})
    out = [y] + [values[t] for t in targets]
    if end == 0:
        if _smooth_at_zero(denoiser):
            res = solve_ivp(
                _drift_sigma(denoiser, shape, counter), (stop, 0.0), out[-1], method="DOP853", rtol=rtol, atol=atol
            )
            if not res.success:
                raise SdlabError("the reference ODE solve to sigma 0 failed", message=res.message)
            out[-1] = res.y[:, -1]
        else:  # the exact final denoise: the posterior has collapsed onto one data point
            counter[0] += 1
            x_stop = torch.from_numpy(out[-1]).reshape(shape)
            with torch.no_grad():
                out[-1] = denoiser(x_stop, torch.full((shape[0],), stop, dtype=torch.float64)).reshape(-1).numpy()
    return out


def _check(x: Tensor, sigmas: list[float], rtol: float) -> None:
    if not isinstance(x, Tensor) or x.ndim < 1:
        raise SdlabError("x must be a tensor (B, *dims)", got=type(x).__name__)
    if any(not math.isfinite(s) or s < 0 for s in sigmas) or sigmas[0] <= 0:
        raise SdlabError("sigmas must be finite, >= 0, and start above 0", sigmas=sigmas[:6])
    if any(b > a for a, b in zip(sigmas, sigmas[1:], strict=False)):
        raise SdlabError("sigmas must not increase", sigmas=sigmas[:6], hint="integrate from high to low noise")
    if not _MIN_RTOL <= rtol < 1e-3:
        raise SdlabError("rtol must lie in [2.5e-14, 1e-3)", rtol=rtol, hint="the default 1e-12 is near the limit")


def _paths(
    denoiser: Any, x: Tensor, sigmas: list[float], rtol: float, atol: float | None
) -> tuple[list[np.ndarray], float, int]:
    """Fine solution at every sigma, max |coarse - fine| over all of them, and the NFE of both solves."""
    scale = max(1.0, float(x.detach().abs().max()))
    atol = rtol * scale if atol is None else atol
    counter = [0]
    nfe_before = getattr(denoiser, "nfe", None)
    coarse = _solve(denoiser, x, sigmas, rtol, atol, counter, SIGMA_FLOOR)
    fine = _solve(denoiser, x, sigmas, max(rtol / 100, _MIN_RTOL), atol / 100, counter, SIGMA_FLOOR)
    error = max(float(np.abs(c - f).max()) for c, f in zip(coarse, fine, strict=True))
    if sigmas[-1] == 0 and not _smooth_at_zero(denoiser):
        # the final denoise's own error: the same denoise done from a 10x smaller sigma
        deeper = _solve(denoiser, x, [sigmas[0], 0.0], rtol, atol, counter, SIGMA_FLOOR / 10)[-1]
        error += float(np.abs(deeper - fine[-1]).max())
    if nfe_before is not None:
        denoiser.nfe = nfe_before  # the reference solve does not count against a sampler's NFE
    return fine, error, counter[0]


def true_solution(
    denoiser: Any,
    x: Tensor,
    sigma_start: float,
    sigma_end: float,
    *,
    rtol: float = 1e-12,
    atol: float | None = None,
) -> TrueSolution:
    """Solve the PF-ODE from ``x`` at ``sigma_start`` to ``sigma_end`` (0 allowed) for the whole batch at once.

    ``atol`` defaults to ``rtol * max(1, max|x|)``. The batch is one system (the step size is shared, the error
    norm is scipy's RMS over all elements); the reported ``error_estimate`` checks the result element-wise.
    """
    sigmas = [float(sigma_start), float(sigma_end)]
    _check(x, sigmas, rtol)
    fine, error, nfe = _paths(denoiser, x, sigmas, rtol, atol)
    x_end = torch.from_numpy(fine[-1].copy()).reshape(x.shape)
    return TrueSolution(x_end, sigmas[0], sigmas[1], error, nfe, rtol)


def true_path(
    denoiser: Any, x: Tensor, sigmas: Tensor | list[float], *, rtol: float = 1e-12, atol: float | None = None
) -> tuple[Tensor, float]:
    """The exact solution at every sigma of a schedule (x at ``sigmas[0]``): ((len(sigmas), *x.shape), error).

    Values between DOP853's steps come from its 7th-order dense output, so the error estimate (the two
    tolerances compared at every sigma) covers them too.
    """
    sig = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64).flatten()]
    _check(x, sig, rtol)
    fine, error, _ = _paths(denoiser, x, sig, rtol, atol)
    return torch.stack([torch.from_numpy(f.copy()).reshape(x.shape) for f in fine]), error
