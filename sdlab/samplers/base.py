"""Conventions every sdlab sampler follows (k-diffusion's, which A1111 and ComfyUI use).

A **denoiser** is any callable ``D(x, sigma, **cond) -> denoised``: ``x`` is the noisy latent in
variance-exploding scaling (``x = x0 + sigma * noise``), ``sigma`` a tensor of shape ``(batch,)`` and the
result the model's estimate of ``x0``. Discrete models (every Stable Diffusion checkpoint) also carry
``sigmas`` (their ascending training sigma table), ``sigma_min``, ``sigma_max``, ``sigma_to_t`` and
``t_to_sigma``. A classifier-free-guidance denoiser also sets ``last_uncond_denoised`` on every call,
which the CFG++ samplers read.

A **sampler** is a plain function::

    sampler(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None, **options) -> x

sdlab writes each algorithm as ``fn(run, x, sigmas, **options)`` under the decorator
:func:`sdlab.samplers.steps.sampler`, which gives it that signature and hands it the model and the three
keyword arguments, filled in, as one :class:`Run`.

``x`` is noise already scaled to ``sigmas[0]``; ``sigmas`` is a 1-D tensor, decreasing, usually ending in 0.
After each step it calls ``callback({"x", "i", "sigma", "sigma_hat", "denoised"})``. Stochastic samplers
draw fresh noise only from ``noise_sampler(sigma, sigma_next)``; without one they use
:func:`default_noise_sampler` (``torch.randn_like``, the global RNG).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from sdlab.noise.types import NoiseSampler

__all__ = [
    "Denoiser",
    "Callback",
    "Run",
    "NoiseSampler",
    "append_dims",
    "to_d",
    "get_ancestral_step",
    "default_noise_sampler",
    "uncond_denoised",
    "tell",
]

Callback = Callable[[dict[str, Any]], None]


class Denoiser(Protocol):
    """Anything callable as ``D(x, sigma, **cond) -> denoised`` (see the module docstring)."""

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor: ...


class Run(NamedTuple):
    """The denoiser a sampler runs with its ``extra_args``, ``callback`` and ``noise_sampler`` (filled in)."""

    model: Any
    extra_args: dict[str, Any]
    callback: Callback | None
    noise_sampler: NoiseSampler

    def denoise(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """The model's denoised prediction for ``x`` at noise level ``sigma`` (a number, given to every sample)."""
        return self.model(x, x.new_ones([x.shape[0]]) * sigma, **self.extra_args)

    def predict(self, x: Tensor, i: int, sigma: Tensor) -> Tensor:
        """:meth:`denoise` for step ``i`` (no churn), told to the callback first thing."""
        denoised = self.denoise(x, sigma)
        tell(self.callback, x, i, sigma, sigma, denoised)
        return denoised


def tell(callback: Callback | None, x: Tensor, i: int, sigma: Any, sigma_hat: Any, denoised: Tensor) -> None:
    """Call ``callback`` (if any) with k-diffusion's step dict."""
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dims so a per-sample ``v`` broadcasts against an ``ndim``-d tensor."""
    return v[(...,) + (None,) * (ndim - v.ndim)]


def to_d(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """The probability-flow ODE derivative dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, eq. 3)."""
    return (x - denoised) / append_dims(sigma, x.ndim)


def get_ancestral_step(sigma_from: Any, sigma_to: Any, eta: float = 1.0) -> tuple[Any, Any]:
    """Split an ancestral step into a deterministic part down to ``sigma_down`` and fresh noise ``sigma_up``.

    Works on floats or 0-d tensors (kept as given, so float32 runs round exactly like k-diffusion's).
    ``eta=0`` gives ``(sigma_to, 0)``: exactly the deterministic step.
    """
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def default_noise_sampler(x: Tensor) -> NoiseSampler:
    """Fresh standard normal noise shaped like ``x`` from the global RNG (k-diffusion's default)."""
    return lambda sigma, sigma_next: torch.randn_like(x)


def uncond_denoised(model: Any, denoised: Tensor) -> Tensor:
    """The unconditional prediction of the last CFG call (for CFG++), or ``denoised`` without guidance."""
    uncond = getattr(model, "last_uncond_denoised", None)
    return denoised if uncond is None else uncond
