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
import numbers
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.noise import rng as rng_module
from sdlab.samplers.a1111 import ONE_TIMESTEP
from sdlab.samplers.base import Callback, NoiseSampler
from sdlab.samplers.catalogue import ResolvedSampler, SamplerInfo, list_samplers, resolve_sampler
from sdlab.samplers.domains import SAMPLER_OPTION_RELATIONS, check_option, domains_for, function_key

__all__ = [
    "sample",
    "resolve_sampler",
    "list_samplers",
    "sampler_options",
    "check_sampler_options",
    "check_sigmas",
    "FiniteGuard",
]

SamplerLike = str | SamplerInfo | ResolvedSampler | Callable[..., Tensor]


def sampler_options(fn: Callable[..., Any]) -> set[str]:
    """The keyword options (knobs) a sampler function accepts."""
    skip = {"model", "x", "sigmas", "extra_args", "callback", "noise_sampler", "disable"}
    params = inspect.signature(fn).parameters.values()
    return {p.name for p in params if p.name not in skip and p.kind is not p.VAR_POSITIONAL}


def _resolve(sampler: SamplerLike) -> tuple[Callable[..., Any], str, ResolvedSampler | None]:
    """(function, label, resolved or None for a custom function)."""
    if callable(sampler) and not isinstance(sampler, (str, SamplerInfo, ResolvedSampler)):
        return sampler, getattr(sampler, "__name__", "custom"), None
    resolved = resolve_sampler(sampler)
    return resolved.info.fn, resolved.label, resolved


def _check_options(fn: Callable[..., Any], label: str, options: Mapping[str, Any]) -> None:
    """Unknown options, then each value against its domain, then the checks across options."""
    accepted = sampler_options(fn)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    unknown = [] if takes_any else sorted(set(options) - accepted)
    if unknown:
        raise SdlabError(
            f"sampler {label!r} does not take option(s) {', '.join(unknown)}",
            sampler=label,
            option=", ".join(unknown),
            hint=f"it accepts: {', '.join(sorted(accepted)) or 'no options'}",
        )
    domains = domains_for(fn)
    if domains is None:  # a custom sampler function: its own business
        return
    for name in sorted(options):
        if name in domains:
            check_option(domains[name], name, options[name], sampler=label)
    relation = SAMPLER_OPTION_RELATIONS.get(function_key(fn) or "")
    if relation is not None:
        names, check = relation
        defaults = {p.name: p.default for p in inspect.signature(fn).parameters.values()}
        values = {name: options.get(name, defaults.get(name)) for name in names}
        why = check(**values)
        if why is not None:
            raise SdlabError(
                f"sampler {label!r}: {why}",
                sampler=label,
                option=", ".join(names),
                got=values,
                hint="change one of " + ", ".join(names),
            )


def check_sampler_options(sampler: SamplerLike, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check ``options`` for ``sampler`` (a name, an info, a resolved sampler or a function); return what would run.

    Resolves the name, refuses options the sampler does not take, and checks every value's type and range
    against :data:`sdlab.samplers.domains.SAMPLER_OPTION_DOMAINS` (and the checks across options, such as
    SEEDS-3's ``r_1 <= r_2``). Raises :class:`SdlabError` with ``option``, ``sampler``, ``got`` and the allowed
    range as hint. Returns the options the sampler would run with: the name's front-end defaults (A1111's
    eta 1 for ancestral samplers ...) overridden by ``options``. :func:`sample` calls it.

    >>> check_sampler_options("Euler a", {"eta": 0.5})
    {'eta': 0.5}
    >>> check_sampler_options("Euler a", {"eta": "0.5"})
    Traceback (most recent call last):
    ...
    sdlab.errors.SdlabError: option 'eta' must be a finite number >= 0: it is a string, not a number [...
    """
    if options is not None and not isinstance(options, Mapping):
        raise SdlabError(
            "sampler options must be a mapping of option name to value",
            got=options,
            hint="pass e.g. {'eta': 0.5}",
        )
    options = dict(options or {})
    bad_keys = [k for k in options if not isinstance(k, str)]
    if bad_keys:
        raise SdlabError("sampler option names must be strings", got=bad_keys, hint="pass e.g. {'eta': 0.5}")
    fn, label, resolved = _resolve(sampler)
    merged = options if resolved is None else {**resolved.options, **options}
    _check_options(fn, label, merged)
    return merged


def check_sigmas(sigmas: Tensor, *, sampler: str | None = None) -> None:
    """Raise :class:`SdlabError` unless ``sigmas`` is a schedule a sampler can walk.

    That is: a 1-D tensor of length >= 2, finite, >= 0, non-increasing, starting above 0, decreasing overall
    (not constant), with 0 (if anywhere) only as the last entry.
    """
    if not isinstance(sigmas, Tensor):
        raise SdlabError(
            f"sigmas must be a 1-D tensor, not a {type(sigmas).__name__}",
            sampler=sampler,
            got=sigmas if isinstance(sigmas, (str, bytes, numbers.Number)) else type(sigmas).__name__,
            hint="make one with sdlab.get_sigmas(schedule, steps), or pass a list of numbers",
        )
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise SdlabError(
            "sigmas must be a 1-D tensor with at least 2 entries (one step)",
            sampler=sampler,
            shape=tuple(sigmas.shape),
            hint="make one with sdlab.get_sigmas(schedule, steps)",
        )
    if sigmas.dtype == torch.bool or sigmas.is_complex():
        raise SdlabError("sigmas must hold real numbers", sampler=sampler, dtype=str(sigmas.dtype))
    values = sigmas.detach().double().cpu()
    head = values.tolist()[:8]
    if not torch.isfinite(values).all() or (values < 0).any():
        raise SdlabError("sigmas must be finite and >= 0", sampler=sampler, sigmas=head)
    if (values[1:] > values[:-1]).any():
        raise SdlabError("sigmas must not increase", sampler=sampler, sigmas=head)
    if values[0] == 0:
        raise SdlabError(
            "sigmas are all 0: the schedule must start above 0 (there is no noise to remove)",
            sampler=sampler,
            sigmas=head,
            hint="start at the model's sigma_max, e.g. sdlab.get_sigmas('karras', 20)",
        )
    if values[0] == values[-1]:
        raise SdlabError(
            f"sigmas are constant (all {float(values[0]):g}): a schedule must decrease towards 0",
            sampler=sampler,
            sigmas=head,
            hint="make one with sdlab.get_sigmas(schedule, steps)",
        )
    if (values[:-1] == 0).any():
        raise SdlabError(
            "sigmas reach 0 before the last entry: a step from 0 to 0 divides by zero",
            sampler=sampler,
            sigmas=head,
            hint="end the schedule at its first 0",
        )


def _as_sigmas(sigmas: Any, x: Tensor, label: str) -> Tensor:
    """A float tensor as it is; integers, or a list, tuple or array of numbers, as a float tensor on x's device.

    The new tensor is float64 when x is, else float32 (get_sigmas' default).
    """
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if isinstance(sigmas, Tensor):
        exact = sigmas.is_floating_point() or sigmas.dtype == torch.bool or sigmas.is_complex()
        return sigmas if exact else sigmas.to(dtype)  # bool and complex: check_sigmas names them
    if isinstance(sigmas, (list, tuple)):
        junk = [s for s in sigmas if not isinstance(s, numbers.Real) or isinstance(s, bool)]
        if junk:
            raise SdlabError(
                f"sigmas must be numbers: the {type(sigmas).__name__} holds a {type(junk[0]).__name__}",
                sampler=label,
                got=junk[0] if isinstance(junk[0], (str, bytes, bool)) else type(junk[0]).__name__,
                hint="pass a 1-D tensor or a list of numbers, e.g. sdlab.get_sigmas('karras', 20)",
            )
    elif not (isinstance(sigmas, np.ndarray) and sigmas.dtype.kind in "iuf"):
        check_sigmas(sigmas, sampler=label)  # raises, naming the type
    try:
        return torch.tensor(np.asarray(sigmas, dtype=np.float64), dtype=dtype, device=x.device)
    except (OverflowError, ValueError, TypeError) as exc:  # e.g. ints beyond float range
        raise SdlabError(f"sigmas cannot be read as numbers: {exc}", sampler=label, hint="pass floats") from None


def _check_x(x: Any, label: str, check_finite: bool) -> None:
    if not isinstance(x, Tensor):
        raise SdlabError(
            f"x must be a tensor (the noisy latents), not a {type(x).__name__}",
            sampler=label,
            hint="pass noise * sigmas[0] as a torch tensor of shape (batch, ...)",
        )
    if x.ndim < 2 or x.shape[0] < 1 or x.numel() == 0:
        raise SdlabError(
            "x must be a batch of latents: shape (batch, ...) with at least 2 dims and no empty dim",
            sampler=label,
            shape=tuple(x.shape),
            hint="add the batch dimension, e.g. x[None] for one latent of shape (4, 64, 64)",
        )
    if not x.is_floating_point():
        raise SdlabError("x must be a floating-point tensor", sampler=label, dtype=str(x.dtype), hint="use x.float()")
    if check_finite and not bool(torch.isfinite(x).all()):
        raise SdlabError(
            "x holds NaN or Inf before sampling started",
            sampler=label,
            hint="check the initial noise and latents passed in",
        )


def _check_seeds(seeds: Any, x: Tensor, label: str) -> list[int]:
    if isinstance(seeds, (str, bytes, Mapping)) or not isinstance(seeds, Iterable):
        example = f"[{seeds}]" if isinstance(seeds, numbers.Integral) else "[0, 1]"
        raise SdlabError(
            "seeds must be a list of ints, one per image of x",
            sampler=label,
            got=seeds,
            hint=f"pass e.g. seeds={example}",
        )
    seeds = list(seeds)
    if len(seeds) != x.shape[0]:
        raise SdlabError(
            f"seeds must have one entry per image of x: {len(seeds)} seed(s) for a batch of {x.shape[0]}",
            sampler=label,
            seeds=len(seeds),
            batch=x.shape[0],
            hint="pass len(x) seeds",
        )
    return seeds


FINITE_CHECK_EVERY = 32
"""The NaN/Inf guard looks at its device-side flags once every this many steps (and at the end), not every step."""


class FiniteGuard:
    """Watches each step's ``x`` and ``denoised`` for NaN/Inf without a host sync per step.

    Each callback adds one device-side flag pair (x bad, denoised bad) to a list; :meth:`check` reads them all
    at once (every :data:`FINITE_CHECK_EVERY` steps, so a sampler that loops on NaN stops, and at the end) and,
    when one is set, raises naming the first bad step, its sigma and which tensor went bad.
    """

    def __init__(self, callback: Callback | None, sampler: str) -> None:
        self.callback, self.sampler = callback, sampler
        self.flags: list[Tensor] = []
        self.steps: list[tuple[Any, Any]] = []  # (i, sigma) per recorded step

    def __call__(self, info: dict[str, Any]) -> None:
        values = [info.get(key) for key in ("x", "denoised")]
        tensors = [v for v in values if isinstance(v, Tensor)]
        if tensors:
            device = tensors[0].device
            bad = [~torch.isfinite(v).all() if isinstance(v, Tensor) else torch.tensor(False) for v in values]
            self.flags.append(torch.stack([flag.to(device) for flag in bad]))
            self.steps.append((info.get("i"), info.get("sigma")))
            if len(self.flags) % FINITE_CHECK_EVERY == 0:
                self.check()
        if self.callback is not None:
            self.callback(info)

    def check(self) -> None:
        """Raise :class:`SdlabError` for the first recorded step whose ``denoised`` or ``x`` is not finite."""
        if not self.flags:
            return
        flags = torch.stack([f.to(self.flags[0].device) for f in self.flags])
        if not bool(flags.any()):  # the one host sync
            return
        first = int(flags.any(dim=1).nonzero()[0])
        key = "denoised" if bool(flags[first, 1]) else "x"
        step, sigma = self.steps[first]
        raise SdlabError(
            f"NaN or Inf appeared in {key!r} during sampling",
            sampler=self.sampler,
            step=step,
            sigma=float(sigma.flatten()[0]) if isinstance(sigma, Tensor) else sigma,
            hint="try float32 instead of float16, a lower CFG scale, or another schedule",
        )


def _model_sigma_range(resolved: ResolvedSampler, model: Any, options: dict[str, Any]) -> None:
    """A1111 runs DPM fast / DPM adaptive between the model's own sigma_min and sigma_max, whatever the schedule."""
    if resolved.uses_model_sigma_range:
        table = getattr(model, "sigmas", None)
        if isinstance(table, Tensor):
            options.setdefault("sigma_min", float(table[0]))
            options.setdefault("sigma_max", float(table[-1]))


def _rng_name(rng: str | None, rng_source: str | None) -> str:
    """``rng`` (as :func:`sdlab.generate` names it), or the old ``rng_source`` with a DeprecationWarning."""
    if rng_source is None:
        return "CPU" if rng is None else rng
    warnings.warn("sample(rng_source=...) is now sample(rng=...)", DeprecationWarning, stacklevel=3)
    if rng is not None and rng != rng_source:
        raise SdlabError("pass rng only (rng_source is its old name)", rng=rng, rng_source=rng_source)
    return rng_source


def _seeded_noise(
    resolved: ResolvedSampler | None, x: Tensor, sigmas: Tensor, seeds: list[int], source: str
) -> NoiseSampler:
    """Per-image noise as A1111 draws it: Brownian trees for the SDE samplers, else each image's own generator."""

    if resolved is not None and resolved.info.brownian:
        return rng_module.brownian_noise_sampler(x, sigmas, seeds, source=source)
    image_rng = rng_module.ImageRNG(tuple(x.shape[1:]), seeds, source=source, device=x.device)
    image_rng.first()  # as in A1111, the stream's first draw is the initial noise; steps draw after it
    return rng_module.image_noise_sampler(image_rng)


def sample(
    denoiser: Callable[..., Tensor],
    x: Tensor,
    sigmas: Tensor | Sequence[float],
    sampler: SamplerLike,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    seeds: Sequence[int] | None = None,
    rng: str | None = None,
    check_finite: bool = True,
    rng_source: str | None = None,
    **options: Any,
) -> Tensor:
    """Run ``sampler`` (a name or a sampler function) on any k-diffusion-convention denoiser.

    ``x`` is noise already scaled to ``sigmas[0]``, shaped (batch, ...). ``sigmas`` is a 1-D tensor (a list or
    tuple of numbers is converted, on x's device). A name carries its front end's defaults (A1111's eta 1 for
    ancestral samplers, ComfyUI's eta 0 for DPM fast ...); ``options`` override them and are checked by
    :func:`check_sampler_options`. Stochastic samplers draw their noise from ``noise_sampler(sigma, sigma_next)``
    when given, else from per-image generators seeded by ``seeds`` (one per image of ``x``; Brownian trees for
    the SDE samplers; ``rng``: "CPU" (default), "GPU" or "NV" as in :func:`sdlab.generate`, ``rng_source`` is
    its old name), else from the global torch RNG (k-diffusion's default). Raises :class:`SdlabError` for
    unknown names or options, values out of range, and when NaN/Inf appears (naming step and sigma; the check
    reads device-side flags at the end and every :data:`FINITE_CHECK_EVERY` steps, not every step).
    """
    source = _rng_name(rng, rng_source)
    fn, label, resolved = _resolve(sampler)
    options = dict(options) if resolved is None else {**resolved.options, **options}
    if resolved is not None:
        _model_sigma_range(resolved, denoiser, options)
    _check_x(x, label, check_finite)
    sigmas = _as_sigmas(sigmas, x, label)
    if resolved is not None and resolved.own_timesteps and sigmas.ndim == 1 and len(sigmas) == 1:
        raise SdlabError(
            f"{label} got a single sigma and needs at least 2: {ONE_TIMESTEP}",
            sampler=label,
            sigmas=sigmas.tolist(),
            hint="use steps >= 2",
        )
    check_sigmas(sigmas, sampler=label)
    _check_options(fn, label, options)
    if seeds is not None:
        seeds = _check_seeds(seeds, x, label)
    if noise_sampler is None and seeds is not None:
        noise_sampler = _seeded_noise(resolved, x, sigmas, seeds, source)
    guard = FiniteGuard(callback, label) if check_finite else None
    out = fn(denoiser, x, sigmas, extra_args=extra_args, callback=guard or callback, noise_sampler=noise_sampler,
             **options)  # fmt: skip
    final = out[0] if isinstance(out, tuple) else out  # DPM adaptive with return_info=True: (x, info)
    if guard is not None:
        guard.check()
    if check_finite and not torch.isfinite(final).all():
        raise SdlabError(
            "NaN or Inf in the final sample",
            sampler=label,
            step=len(sigmas) - 1,
            sigma=float(sigmas[-1]),
            hint="try float32 or a lower CFG scale",
        )
    return out
