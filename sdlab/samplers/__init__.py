"""Samplers: plain functions with one signature, and :func:`sample` to run any of them by name.

>>> import torch, sdlab
>>> D = lambda x, sigma: x / (1 + sigma[:, None] ** 2)   # exact denoiser of N(0, I) data
>>> sigmas = sdlab.get_sigmas("karras", 10)
>>> x = sdlab.sample(D, torch.randn(1, 4) * sigmas[0], sigmas, "DPM++ 2M")
>>> x.shape
torch.Size([1, 4])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.samplers.base import Callback, NoiseSampler
from sdlab.samplers.catalogue import ResolvedSampler, SamplerInfo, list_samplers, resolve_sampler

__all__ = ["sample", "resolve_sampler", "list_samplers", "sampler_options", "check_sigmas"]


def sampler_options(fn: Callable[..., Any]) -> set[str]:
    """The keyword options (knobs) a sampler function accepts."""
    skip = {"model", "x", "sigmas", "extra_args", "callback", "noise_sampler", "disable"}
    params = inspect.signature(fn).parameters.values()
    return {p.name for p in params if p.name not in skip and p.kind is not p.VAR_POSITIONAL}


def check_sigmas(sigmas: Tensor, *, sampler: str | None = None) -> None:
    """Raise :class:`SdlabError` unless ``sigmas`` is a finite, non-increasing 1-D tensor of length >= 2."""
    if not isinstance(sigmas, Tensor) or sigmas.ndim != 1 or len(sigmas) < 2:
        raise SdlabError(
            "sigmas must be a 1-D tensor with at least 2 entries",
            sampler=sampler,
            shape=tuple(getattr(sigmas, "shape", ())),
            hint="make one with sdlab.get_sigmas(schedule, steps)",
        )
    if not torch.isfinite(sigmas).all() or (sigmas < 0).any():
        raise SdlabError("sigmas must be finite and >= 0", sampler=sampler, sigmas=sigmas.tolist()[:8])
    if (sigmas[1:] > sigmas[:-1]).any():
        raise SdlabError("sigmas must not increase", sampler=sampler, sigmas=sigmas.tolist()[:8])


def _finite_guard(callback: Callback | None, sampler: str) -> Callback:
    def guarded(info: dict[str, Any]) -> None:
        for key in ("denoised", "x"):
            value = info.get(key)
            if isinstance(value, Tensor) and not torch.isfinite(value).all():
                sigma = info.get("sigma")
                raise SdlabError(
                    f"NaN or Inf appeared in {key!r} during sampling",
                    sampler=sampler,
                    step=info.get("i"),
                    sigma=float(sigma.flatten()[0]) if isinstance(sigma, Tensor) else sigma,
                    hint="try float32 instead of float16, a lower CFG scale, or another schedule",
                )
        if callback is not None:
            callback(info)

    return guarded


def _a1111_extras(resolved: ResolvedSampler, model: Any, options: dict[str, Any]) -> None:
    # A1111 runs DPM fast / DPM adaptive between the model's own sigma_min and sigma_max, whatever the schedule
    if resolved.flavour == "a1111" and resolved.info.key in ("dpm_fast", "dpm_adaptive"):
        table = getattr(model, "sigmas", None)
        if isinstance(table, Tensor):
            options.setdefault("sigma_min", float(table[0]))
            options.setdefault("sigma_max", float(table[-1]))


def sample(
    denoiser: Callable[..., Tensor],
    x: Tensor,
    sigmas: Tensor,
    sampler: str | SamplerInfo | ResolvedSampler | Callable[..., Tensor],
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    seeds: Sequence[int] | None = None,
    rng_source: str = "CPU",
    check_finite: bool = True,
    **options: Any,
) -> Tensor:
    """Run ``sampler`` (a name or a sampler function) on any k-diffusion-convention denoiser.

    ``x`` is noise already scaled to ``sigmas[0]``. A name carries its front end's defaults (A1111's eta 1 for
    ancestral samplers, ComfyUI's eta 0 for DPM fast ...); ``options`` override them. Stochastic samplers draw
    their noise from ``noise_sampler(sigma, sigma_next)`` when given, else from per-image generators seeded by
    ``seeds`` (Brownian trees for the SDE samplers), else from the global torch RNG (k-diffusion's default).
    Raises :class:`SdlabError` for unknown names or options and when NaN/Inf appears (naming step and sigma).
    """
    if callable(sampler) and not isinstance(sampler, (str, SamplerInfo, ResolvedSampler)):
        fn, label, resolved = sampler, getattr(sampler, "__name__", "custom"), None
        options = dict(options)
    else:
        resolved = resolve_sampler(sampler)
        fn, label = resolved.info.fn, resolved.label
        options = {**resolved.options, **options}
        _a1111_extras(resolved, denoiser, options)
    check_sigmas(sigmas, sampler=label)
    accepted = sampler_options(fn)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    unknown = [] if takes_any else sorted(set(options) - accepted)
    if unknown:
        raise SdlabError(
            f"sampler {label!r} does not take option(s) {', '.join(unknown)}",
            sampler=label,
            hint=f"it accepts: {', '.join(sorted(accepted)) or 'no options'}",
        )
    if noise_sampler is None and seeds is not None:
        from sdlab import rng

        if resolved is not None and resolved.info.brownian:
            noise_sampler = rng.brownian_noise_sampler(x, sigmas, list(seeds), source=rng_source)
        else:
            image_rng = rng.ImageRNG(tuple(x.shape[1:]), list(seeds), source=rng_source, device=x.device)
            image_rng.first()  # as in A1111, the stream's first draw is the initial noise; steps draw after it
            noise_sampler = rng.image_noise_sampler(image_rng)
    guarded = _finite_guard(callback, label) if check_finite else callback
    out = fn(denoiser, x, sigmas, extra_args=extra_args, callback=guarded, noise_sampler=noise_sampler, **options)
    if check_finite and not torch.isfinite(out).all():
        raise SdlabError("NaN or Inf in the final sample", sampler=label, hint="try float32 or a lower CFG scale")
    return out
