"""Small pieces the sampler algorithms share: argument checks, the callback dict, churn, log-SNR time, phi functions.

Each sampler module (:mod:`sdlab.samplers.kdiffusion`, :mod:`sdlab.samplers.dpm_solver`,
:mod:`sdlab.samplers.comfy` and its parts) takes these from here, so that each rule has one home.
:func:`public_in` names the module a sampler function is published from (its ``__module__``), which is what
:func:`sdlab.samplers.domains.function_key` reads. :func:`variant` publishes one algorithm under the names of
its front-end variants (DDIM and DDIM CFG++, Euler and Heun, ...), each with some options fixed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.samplers.base import Callback, NoiseSampler, Run, default_noise_sampler, tell, to_d

__all__ = [
    "public_in",
    "sampler",
    "variant",
    "check_steps",
    "check_order",
    "tell",
    "report",
    "transitions",
    "Churn",
    "churn",
    "churned_slope",
    "log_snr_time",
    "sigma_at_time",
    "sigma_like",
    "half_log_snr",
    "phi1",
    "phi2",
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


_HOOKS = [
    inspect.Parameter("extra_args", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="dict[str, Any] | None"),
    inspect.Parameter("callback", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="Callback | None"),
    inspect.Parameter("noise_sampler", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="NoiseSampler | None"),
]
_MODEL = inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Denoiser")


def sampler(
    *,
    checked: bool = False,
    noise: Callable[[Tensor, Tensor], NoiseSampler] | None = None,
    group: type | None = None,
) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Give an algorithm ``fn(run, x, sigmas, **options)`` the sampler convention of :mod:`.base`.

    The result is ``fn(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None, **options)``
    under ``torch.no_grad()``: it checks the sigmas first when ``checked`` (:func:`check_steps`), fills in
    ``extra_args`` ({}) and ``noise_sampler`` (``noise(x, sigmas)``, by default
    :func:`~sdlab.samplers.base.default_noise_sampler`) and passes them with the model as one
    :class:`~sdlab.samplers.base.Run`. A ``group`` (a dataclass such as :class:`Churn`) of options that
    several samplers share is taken as keyword options and handed to ``fn`` as its fourth argument. The
    signature says all this; the source is ``fn``'s (``__wrapped__``).
    """
    grouped = [f.name for f in dataclasses.fields(group)] if group is not None else []

    def wrap(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        @functools.wraps(fn)
        @torch.no_grad()
        def call(model: Any, x: Tensor, sigmas: Tensor, **options: Any) -> Tensor:
            extra_args = options.pop("extra_args", None)
            callback = options.pop("callback", None)
            noise_sampler = options.pop("noise_sampler", None)
            if checked:
                check_steps(fn.__name__, x, sigmas)
            if noise_sampler is None:
                noise_sampler = default_noise_sampler(x) if noise is None else noise(x, sigmas)
            run = Run(model, {} if extra_args is None else extra_args, callback, noise_sampler)
            if group is None:
                return fn(run, x, sigmas, **options)
            return fn(run, x, sigmas, group(**{k: options.pop(k) for k in grouped if k in options}), **options)

        _run, x, sigmas, *options = inspect.signature(fn).parameters.values()
        if group is not None:
            options = [*_group_parameters(group), *options[1:]]
        call.__signature__ = inspect.signature(fn).replace(  # type: ignore[attr-defined]
            parameters=[_MODEL, x, sigmas, *_HOOKS, *options]
        )
        return call

    return wrap


def _group_parameters(group: type) -> list[inspect.Parameter]:
    """A dataclass's fields as keyword-only parameters with their defaults."""
    kind = inspect.Parameter.KEYWORD_ONLY
    return [inspect.Parameter(f.name, kind, default=f.default, annotation=f.type) for f in dataclasses.fields(group)]


def variant(fn: Callable[..., Any], name: str, doc: str, **fixed: Any) -> Callable[..., Any]:
    """``fn`` published as sampler ``name`` with the options ``fixed`` set: one algorithm, several names.

    The variant has its own ``__name__`` and docstring and ``fn``'s signature without the fixed options (so
    :func:`sdlab.samplers.sampler_options` and the option domains see only what it takes); its source is
    ``fn``'s (``__wrapped__``). ``heun = variant(_karras, "heun", "...", method="heun")``.
    """

    @functools.wraps(fn)
    def call(*args: Any, **options: Any) -> Any:
        return fn(*args, **options, **fixed)

    signature = inspect.signature(fn)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = doc
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name not in fixed]
    )
    return call


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


def transitions(sigmas: Tensor) -> Iterator[tuple[int, Tensor, Tensor]]:
    """The steps of a schedule: ``(i, sigmas[i], sigmas[i + 1])`` for i = 0 .. len(sigmas) - 2."""
    for i in range(len(sigmas) - 1):
        yield i, sigmas[i], sigmas[i + 1]


def report(callback: Callback | None, x: Tensor, i: int, sigma: Tensor, denoised: Tensor) -> None:
    """:func:`tell` for a step without churn (``sigma_hat = sigma``)."""
    tell(callback, x, i, sigma, sigma, denoised)


@dataclasses.dataclass(frozen=True)
class Churn:
    """The churn options of Karras et al. 2022, Alg. 2 (Euler, Heun, DPM2, Heun++): k-diffusion's defaults."""

    s_churn: float = 0.0  # 0: no churn; the sum of gamma over the steps, before the cap
    s_tmin: float = 0.0  # churn only where s_tmin <= sigma <= s_tmax
    s_tmax: float = float("inf")
    s_noise: float = 1.0  # scales the churn noise

    def gamma(self, sigma: Tensor, n_steps: int) -> float:
        """Alg. 2 line 4's gamma_i: ``min(s_churn / n_steps, sqrt(2) - 1)`` inside [s_tmin, s_tmax], else 0."""
        return min(self.s_churn / n_steps, 2**0.5 - 1) if self.s_tmin <= sigma <= self.s_tmax else 0.0


def churn(x: Tensor, sigma: Tensor, n_steps: int, noise: Tensor, options: Churn) -> tuple[Tensor, Tensor]:
    """Karras et al. 2022 Alg. 2, lines 4-7: add noise to raise sigma to sigma_hat = (1 + gamma) sigma."""
    gamma = options.gamma(sigma, n_steps)
    eps = noise * options.s_noise
    sigma_hat = sigma * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigma**2) ** 0.5
    return x, sigma_hat


def churned_slope(run: Run, x: Tensor, sigmas: Tensor, i: int, options: Churn) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Step ``i`` of Euler/Heun/DPM2 up to the first slope: churn, denoise at sigma_hat, report.

    The churn noise is drawn on every step, used or not, so the RNG stream matches k-diffusion's.
    Returns ``(x, sigma_hat, denoised, d)``.
    """
    noise = run.noise_sampler(sigmas[i], sigmas[i + 1])
    x, sigma_hat = churn(x, sigmas[i], len(sigmas) - 1, noise, options)
    denoised = run.denoise(x, sigma_hat)
    d = to_d(x, sigma_hat, denoised)
    tell(run.callback, x, i, sigmas[i], sigma_hat, denoised)
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


def combine(weights: list[float], tensors: list[Tensor]) -> Tensor:
    """The weighted sum ``sum_j weights[j] * tensors[j]``."""
    return sum(w * t for w, t in zip(weights, tensors, strict=True))  # type: ignore[return-value]
