"""The sweep grid as a config: :class:`SweepConfig`, read from a TOML file by :func:`load_config`, every key checked.

A sweep file (TOML; every key but prompts, seeds and samplers optional)::

    name = "smoke"
    prompts = ["a red circle above a blue square, sunset sky"]
    seeds = [0, 1]                      # the seeds of one spec run together as one batch: one cell
    samplers = ["Euler", "Euler a", "DPM++ 2M"]
    schedules = ["Automatic"]           # A1111 or ComfyUI names
    steps = [4, 8]
    cfg = [5.0]
    model = "embedded"                  # hub id, diffusers folder or .safetensors file
    size = "64x64"                      # default: the model's native size
    rng = "GPU"                         # A1111's noise source: GPU, CPU or NV
    metrics = ["latent_rmse", "ssim", "psnr"]   # default: these plus lpips when its backbone is cached
    trajectory = true                   # per-step latent deltas (denoised at step i vs i+1 and vs the final)
    step_image_metrics = ["ssim"]       # also on decoded predictions: a VAE decode per step, unless
    step_decode_every = 5               #   only every 5th step is decoded, or step_decode = "tiny" (TAESD)
    reference = { sampler = "DPM++ 2M", schedule = "Karras", steps = 100 }   # or "highest" or "none"

    [sampler_options]                   # for every sampler (each must take them); a list is a grid axis
    s_noise = 1.0
    [sampler_options."Euler a"]         # for one sampler of the grid
    eta = [0.5, 1.0]

**Reference.** Each cell's final images are measured against a reference run from the same prompt, seeds, CFG,
model, size and RNG. The default is a deterministic, well-converged run, DPM++ 2M on the Karras schedule at 100
steps (:data:`sdlab.experiments.DEFAULT_REFERENCE`), so every sampler of a sweep is measured against the same
images; a table names another. ``"highest"`` measures each sampler against itself at the grid's highest step
count (its own convergence; that cell has no reference rows), ``"none"`` measures nothing but cost.

What needs no model is checked here (types, shapes, option names and values per sampler: :func:`option_grid`);
names of samplers and schedules against the model, by :func:`sdlab.sweeps.grid.expand`.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from sdlab import inputs
from sdlab.errors import SdlabError, closest
from sdlab.experiments import DISTANCES
from sdlab.generation import MAX_STEPS
from sdlab.samplers import check_sampler_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "SweepConfig",
    "load_config",
    "option_grid",
    "check_options",
    "parse_size",
    "options_dict",
    "REFERENCE_MODES",
    "IMAGE_METRICS",
]

REFERENCE_MODES = ("default", "highest", "none")
# the metrics measured on decoded images (latent_rmse is on latents)
IMAGE_METRICS = ("ssim", "psnr", "lpips", "flip", "ms_ssim")


@dataclass(frozen=True)
class SweepConfig:
    """A sweep grid. Axes are tuples; :meth:`from_dict` takes a TOML-like mapping and checks every key."""

    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    samplers: tuple[str, ...]
    schedules: tuple[str, ...] = ("Automatic",)
    steps: tuple[int, ...] = (20,)
    cfg: tuple[float, ...] = (7.0,)  # A1111's default CFG scale
    negative_prompt: str = ""
    # option -> value or tuple of values (a grid axis); sampler name -> {option: value(s)} for one sampler
    sampler_options: tuple[tuple[str, Any], ...] = ()
    model: str | None = None  # None: the embedded model
    size: tuple[int, int] | None = None  # None: the model's native size
    rng: str = "GPU"  # A1111's default noise source
    device: str | None = None  # None: CUDA, else MPS, else CPU
    dtype: str | None = None  # None: fp16 on CUDA/MPS, fp32 on the CPU
    reference: str | tuple[tuple[str, Any], ...] = "default"  # "default", "highest", "none" or a reference table
    metrics: tuple[str, ...] | None = None  # None: latent_rmse, ssim, psnr (+ lpips when available)
    trajectory: bool = False  # per-step latent deltas (costs memory for the trajectory, little time)
    step_image_metrics: tuple[str, ...] = ()  # ssim/psnr/lpips on decoded per-step predictions (a VAE decode each)
    step_decode: str = "full"  # "full" VAE decode, "tiny" (TAESD) or "preview" (A1111's cheap linear preview)
    step_decode_every: int = 1  # decode every k-th step (and the last): full decodes cost about a UNet step each
    name: str = "sweep"

    def __post_init__(self) -> None:
        _check_config(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "sweep config") -> SweepConfig:
        """A config from a mapping (a parsed TOML file): unknown keys and wrong types raise SdlabError."""
        if not isinstance(data, Mapping):
            raise SdlabError("a sweep config must be a table (mapping)", source=source, type=type(data).__name__)
        names = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise SdlabError(f"unknown key {unknown[0]!r} in {source}", key=unknown[0], hint=closest(unknown[0], names))
        for key in ("prompts", "seeds", "samplers"):
            if key not in data:
                raise SdlabError(f"{source} needs {key!r}", key=key, hint=_EXPECTED[key])
        kwargs = {k: _convert(k, v) for k, v in data.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-ready dict (tuples as lists, option tables as dicts)."""
        d = asdict(self)
        d["sampler_options"] = options_dict(self.sampler_options)
        if isinstance(self.reference, tuple):
            d["reference"] = options_dict(self.reference)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


_EXPECTED = {
    "prompts": "a list of strings, e.g. prompts = ['a red circle, day sky']",
    "seeds": "a list of integers in [0, 2**32 - 1], e.g. seeds = [0, 1]",
    "samplers": "a list of sampler names, e.g. samplers = ['Euler a', 'DPM++ 2M']",
    "schedules": "a list of schedule names, e.g. schedules = ['Automatic', 'Karras']",
    "steps": "a list of integers >= 1, e.g. steps = [10, 20]",
    "cfg": "a list of numbers, e.g. cfg = [5, 7]",
    "negative_prompt": "a string",
    "sampler_options": "a table of option = value (or list of values), or of sampler name = such a table",
    "model": "a string: 'embedded', a hub id, a diffusers folder or a .safetensors file",
    "size": "'WIDTHxHEIGHT' or [width, height], multiples of 8",
    "rng": "one of 'GPU', 'CPU', 'NV'",
    "device": "a string such as 'cpu' or 'cuda'",
    "dtype": "one of 'float32', 'float16', 'bfloat16'",
    "reference": "'default', 'highest', 'none' or a table {sampler, schedule, steps, sampler_options}",
    "metrics": "a list of 'latent_rmse', 'ssim', 'psnr', 'lpips'",
    "trajectory": "true or false",
    "step_image_metrics": "a list of 'ssim', 'psnr', 'lpips'",
    "step_decode": "'full' (VAE) or 'preview' (cheap linear preview)",
    "step_decode_every": "an integer >= 1",
    "name": "a string",
}
_AXES = {"prompts": str, "samplers": str, "schedules": str, "seeds": int, "steps": int, "cfg": float}


def _bad(key: str, value: Any) -> SdlabError:
    return SdlabError(f"{key!r} has the wrong type or value", key=key, got=value, hint="expected " + _EXPECTED[key])


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)) and math.isfinite(v)


def _convert(key: str, value: Any) -> Any:
    """A TOML value as the dataclass field wants it (lists to tuples; a scalar is a one-value axis)."""
    if key in _AXES or key in ("metrics", "step_image_metrics"):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and key in _AXES:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _bad(key, value)
        return tuple(value)
    if key == "sampler_options":
        if not isinstance(value, Mapping):
            raise _bad(key, value)
        return _options_tuple(value, key)
    if key == "reference" and isinstance(value, Mapping):
        return _options_tuple(value, key)
    if key == "size" and isinstance(value, list):
        return tuple(value)
    return value


def _options_tuple(table: Mapping[str, Any], key: str) -> tuple[tuple[str, Any], ...]:
    out = []
    for name, value in sorted(table.items()):
        if isinstance(value, Mapping):
            value = _options_tuple(value, f"{key}.{name}")
        elif isinstance(value, list):
            value = tuple(value)
        out.append((name, value))
    return tuple(out)


def _is_table(value: Any) -> bool:
    """Whether a config value is an option table (a tuple of (name, value) pairs) rather than a list of values."""
    return isinstance(value, tuple) and bool(value) and all(isinstance(v, tuple) and len(v) == 2 for v in value)


def options_dict(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """An option table of a config (nested (name, value) pairs) as a plain dict, tuples as lists."""
    out = {}
    for name, value in items:
        if _is_table(value):
            value = options_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def _check_axes(c: SweepConfig) -> None:
    """Each grid axis is a non-empty tuple of distinct values of its type; seeds and steps in range."""
    for key, kind in _AXES.items():
        values = getattr(c, key)
        if not isinstance(values, tuple):
            raise _bad(key, values)
        if not values:
            raise SdlabError(f"{key!r} is empty: the grid has no cells", key=key, hint="expected " + _EXPECTED[key])
        ok = {str: lambda v: isinstance(v, str) and v != "", int: _is_int, float: _is_number}[kind]
        bad = [v for v in values if not ok(v)]
        if bad:
            raise _bad(key, bad[0])
        if len(set(values)) != len(values):
            dup = next(v for v in values if values.count(v) > 1)
            raise SdlabError(f"{key!r} lists {dup!r} twice", key=key, hint="each value once")
    if any(not 0 <= s <= 2**32 - 1 for s in c.seeds):
        raise _bad("seeds", [s for s in c.seeds if not 0 <= s <= 2**32 - 1][0])
    if any(s < 1 for s in c.steps):
        raise _bad("steps", min(c.steps))
    if any(s > MAX_STEPS for s in c.steps):
        raise SdlabError(
            f"steps > {MAX_STEPS} is not supported", key="steps", got=max(c.steps), hint=f"use steps <= {MAX_STEPS}"
        )


def _check_metrics(c: SweepConfig) -> None:
    """Metric names, the per-step image metrics and how predictions are decoded for them."""
    if c.metrics is not None:
        if not isinstance(c.metrics, tuple) or not all(isinstance(m, str) for m in c.metrics):
            raise _bad("metrics", c.metrics)
        for m in c.metrics:
            if m not in DISTANCES:
                raise SdlabError(f"unknown metric {m!r}", key="metrics", hint=closest(m, DISTANCES))
    if not isinstance(c.step_image_metrics, tuple):
        raise _bad("step_image_metrics", c.step_image_metrics)
    for m in c.step_image_metrics:
        if m not in IMAGE_METRICS:
            raise SdlabError(
                f"unknown per-step image metric {m!r}", key="step_image_metrics", hint=closest(str(m), IMAGE_METRICS)
            )
    if c.step_decode not in ("full", "tiny", "preview"):
        raise _bad("step_decode", c.step_decode)
    if not _is_int(c.step_decode_every) or c.step_decode_every < 1:
        raise _bad("step_decode_every", c.step_decode_every)
    if c.step_image_metrics and not c.trajectory:
        raise SdlabError("step_image_metrics need trajectory = true", key="step_image_metrics")


def _check_config(c: SweepConfig) -> None:
    """Types and shapes of every field (names of samplers and schedules are checked by ``expand``)."""
    _check_axes(c)
    for key in ("negative_prompt", "name"):
        if not isinstance(getattr(c, key), str):
            raise _bad(key, getattr(c, key))
    for key in ("model", "device", "dtype"):
        if getattr(c, key) is not None and not isinstance(getattr(c, key), str):
            raise _bad(key, getattr(c, key))
    if c.dtype is not None and c.dtype not in ("float32", "float16", "bfloat16"):
        raise _bad("dtype", c.dtype)
    if c.rng not in ("GPU", "CPU", "NV"):
        raise SdlabError(f"unknown rng {c.rng!r}", key="rng", hint=closest(str(c.rng), ("GPU", "CPU", "NV")))
    if not isinstance(c.trajectory, bool):
        raise _bad("trajectory", c.trajectory)
    parse_size(c.size)
    _check_metrics(c)
    if isinstance(c.reference, str):
        if c.reference not in REFERENCE_MODES:
            raise SdlabError(
                f"unknown reference {c.reference!r}", key="reference", hint="expected " + _EXPECTED["reference"]
            )
    elif not isinstance(c.reference, tuple):
        raise _bad("reference", c.reference)
    if not isinstance(c.sampler_options, tuple):
        raise _bad("sampler_options", c.sampler_options)


def parse_size(size: Any) -> tuple[int, int] | None:
    """A config's ``size`` ('WIDTHxHEIGHT' or [width, height], multiples of 8) as (width, height); None as None."""
    if isinstance(size, bool):
        raise _bad("size", size)
    try:
        return inputs.parse_size(size)
    except SdlabError as e:
        raise e.with_context(key="size") from e


def load_config(source: str | Path | Mapping[str, Any] | SweepConfig) -> SweepConfig:
    """A :class:`SweepConfig` from a TOML file path, a mapping or a config (returned as is)."""
    if isinstance(source, SweepConfig):
        return source
    if isinstance(source, Mapping):
        return SweepConfig.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise SdlabError("no such sweep file", file=str(path), hint="give the path of a .toml file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SdlabError(f"cannot parse the sweep file: {e}", file=str(path), hint="check the TOML syntax") from e
    return SweepConfig.from_dict(data, source=path.name)


def check_options(sampler: str, options: Mapping[str, Any], key: str) -> None:
    """``sampler`` takes ``options`` (single values): names, types, domains and the rules joining two options
    (SdlabError naming ``key.option``)."""
    try:
        check_sampler_options(sampler, dict(options))
    except SdlabError as e:
        option = e.context.get("option")  # one name, or several joined by ", "
        raise e.with_context(key=f"{key}.{option}" if option else key) from e


def option_grid(c: SweepConfig, sampler: str) -> list[tuple[tuple[str, Any], ...]]:
    """The option combinations for ``sampler``: global options, then its own table over them; lists are axes."""
    own: dict[str, Any] = {}
    merged: dict[str, Any] = {}
    for name, value in c.sampler_options:
        if _is_table(value):
            if name not in c.samplers:
                raise SdlabError(
                    f"sampler_options.{name!r} names a sampler that is not in samplers",
                    key=f"sampler_options.{name}",
                    hint=closest(name, c.samplers),
                )
            if name == sampler:
                own = dict(value)
        else:
            merged[name] = value
    merged.update(own)
    axes = []
    for name, value in sorted(merged.items()):
        key = f"sampler_options.{name}"
        values = value if isinstance(value, tuple) else (value,)
        if not values:
            raise SdlabError(f"{key} is an empty list: the grid has no cells", key=key)
        for v in values:
            if not (isinstance(v, (bool, str)) or _is_number(v)):
                raise SdlabError(f"{key} must be numbers, booleans or strings", key=key, got=v)
        axes.append([(name, v) for v in values])
    combos = [tuple(combo) for combo in itertools.product(*axes)]
    for combo in combos:
        check_options(sampler, dict(combo), "sampler_options")
    return combos
