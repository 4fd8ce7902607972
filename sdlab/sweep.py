"""Sweeps: a grid of prompts x seeds x samplers x schedules x steps x CFG (x sampler options), run as cells into a
crash-safe results store, so a re-run computes only what is missing.

>>> from sdlab.sweep import run_sweep
>>> table = run_sweep("data/sweeps/smoke.toml", "runs/smoke")        # or a dict / SweepConfig
>>> table.query("comparison == 'reference'").pivot_table("value", ["sampler", "steps"], "metric")
>>> # the same tidy table, images beside it: pandas.read_parquet("runs/smoke/results.parquet")

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

**Cells.** One cell is one spec with all its seeds: :func:`run_cell` is pure (cell in, rows and uint8 images out,
no file writes; models and reference runs are cached per process), so an executor can map it over cells
anywhere; only :func:`run_sweep` writes, through :class:`~sdlab.store.ResultsStore`. A cell's key hashes
everything that changes its numbers: model id and weights' SHA-256, sampler, schedule, steps, CFG, options,
seeds, size, RNG, device, dtype, the reference, the metrics and the package versions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sdlab.errors import SdlabError, closest

__all__ = [
    "SweepConfig",
    "Run",
    "Cell",
    "CellResult",
    "load_config",
    "expand",
    "run_cell",
    "run_sweep",
    "summarize",
    "EXECUTORS",
    "worker_table",
]

EXECUTORS = ("local", "ray")  # "ray": sdlab.cluster maps the same cells over actors of a Ray cluster
REFERENCE_MODES = ("default", "highest", "none")
CELL_FORMAT = 1  # bump when run_cell's rows change meaning, so old cells are recomputed
_REFERENCE_CACHE_SIZE = 8  # reference runs kept per process (final latents + images)


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
        d["sampler_options"] = _options_dict(self.sampler_options)
        if isinstance(self.reference, tuple):
            d["reference"] = _options_dict(self.reference)
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
_IMAGE_METRICS = ("ssim", "psnr", "lpips")


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


def _options_dict(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    out = {}
    for name, value in items:
        if isinstance(value, tuple) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            value = _options_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def _check_config(c: SweepConfig) -> None:
    """Types and shapes of every field (names of samplers and schedules are checked by :func:`expand`)."""
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
    from sdlab.generation import MAX_STEPS

    if any(s > MAX_STEPS for s in c.steps):
        raise SdlabError(
            f"steps > {MAX_STEPS} is not supported", key="steps", got=max(c.steps), hint=f"use steps <= {MAX_STEPS}"
        )
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
    _size(c.size)
    from sdlab.experiments import DISTANCES

    if c.metrics is not None:
        if not isinstance(c.metrics, tuple) or not all(isinstance(m, str) for m in c.metrics):
            raise _bad("metrics", c.metrics)
        for m in c.metrics:
            if m not in DISTANCES:
                raise SdlabError(f"unknown metric {m!r}", key="metrics", hint=closest(m, DISTANCES))
    if not isinstance(c.step_image_metrics, tuple):
        raise _bad("step_image_metrics", c.step_image_metrics)
    for m in c.step_image_metrics:
        if m not in _IMAGE_METRICS:
            raise SdlabError(
                f"unknown per-step image metric {m!r}", key="step_image_metrics", hint=closest(str(m), _IMAGE_METRICS)
            )
    if c.step_decode not in ("full", "tiny", "preview"):
        raise _bad("step_decode", c.step_decode)
    if not _is_int(c.step_decode_every) or c.step_decode_every < 1:
        raise _bad("step_decode_every", c.step_decode_every)
    if c.step_image_metrics and not c.trajectory:
        raise SdlabError("step_image_metrics need trajectory = true", key="step_image_metrics")
    if isinstance(c.reference, str):
        if c.reference not in REFERENCE_MODES:
            raise SdlabError(
                f"unknown reference {c.reference!r}", key="reference", hint="expected " + _EXPECTED["reference"]
            )
    elif not isinstance(c.reference, tuple):
        raise _bad("reference", c.reference)
    if not isinstance(c.sampler_options, tuple):
        raise _bad("sampler_options", c.sampler_options)


def _size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, str):
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise _bad("size", size) from None
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(v) for v in size):
        w, h = size
    else:
        raise _bad("size", size)
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        raise _bad("size", size)
    return int(w), int(h)


def load_config(source: str | Path | Mapping[str, Any] | SweepConfig) -> SweepConfig:
    """A :class:`SweepConfig` from a TOML file path, a mapping or a config (returned as is)."""
    if isinstance(source, SweepConfig):
        return source
    if isinstance(source, Mapping):
        return SweepConfig.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise SdlabError("no such sweep file", file=str(path), hint="give the path of a .toml file")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SdlabError(f"cannot parse the sweep file: {e}", file=str(path), hint="check the TOML syntax") from e
    return SweepConfig.from_dict(data, source=path.name)


# ---------------------------------------------------------------------------------------------------------------
# cells


@dataclass(frozen=True)
class Run:
    """What to generate: one spec with all its seeds, the model named and identified by its weights' hash."""

    prompt: str
    negative_prompt: str
    seeds: tuple[int, ...]
    sampler: str
    schedule: str
    steps: int
    cfg: float
    sampler_options: tuple[tuple[str, Any], ...]
    model: str | None
    model_sha256: str
    size: tuple[int, int] | None
    rng: str
    device: str
    dtype: str

    def key(self) -> str:
        return _hash(asdict(self))


@dataclass(frozen=True)
class Cell:
    """One unit of work: a run, the run it is measured against (None: none) and what to measure. Picklable."""

    run: Run
    reference: Run | None
    role: str  # "measured", or "reference" for a reference run of its own
    metrics: tuple[str, ...]
    trajectory: bool = False
    step_image_metrics: tuple[str, ...] = ()
    step_decode: str = "full"
    step_decode_every: int = 1
    reference_label: str = ""
    versions: tuple[tuple[str, str], ...] = field(default_factory=lambda: _versions())

    def key(self) -> str:
        """SHA-256 of everything that changes this cell's rows and images."""
        d = asdict(self)
        d["reference"] = None if self.reference is None else self.reference.key()
        d["format"] = CELL_FORMAT
        return _hash(d)


@dataclass
class CellResult:
    """A cell's tidy rows (one per image x step x metric) and its images (name -> uint8 (H, W, 3) array)."""

    rows: pd.DataFrame
    images: dict[str, np.ndarray]


def _versions() -> tuple[tuple[str, str], ...]:
    from sdlab.spec import versions

    return tuple(sorted(versions().items()))


def _hash(d: dict[str, Any]) -> str:
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


_IDENTITY: dict[tuple[Any, ...], tuple[str, str, str]] = {}


def _model_identity(model: str | None, device: str | None, dtype: str | None) -> tuple[str, str, str]:
    """(weights SHA-256, device, dtype) without loading the model where its files are local (cached per process)."""
    from sdlab.models.loading import _folder_sha256, resolve_device, sha256_file

    dev, dt = resolve_device(device, dtype)
    path = None
    if model is None or model == "embedded":
        from sdlab.embedded import pipeline_dir

        path = Path(pipeline_dir())
    elif Path(model).expanduser().exists():
        path = Path(model).expanduser()
    stamp: tuple[Any, ...] = (model, str(dev), str(dt))
    if path is not None:
        st = path.stat()
        stamp += (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if stamp not in _IDENTITY:
        if path is None:  # a hub id: load it (the process keeps it for the run)
            from sdlab.generation import load

            sha = load(model, device=device, dtype=dtype).file_sha256
        else:
            sha = sha256_file(path) if path.is_file() else _folder_sha256(path, None)
        _IDENTITY[stamp] = (sha, str(dev), str(dt).removeprefix("torch."))
    return _IDENTITY[stamp]


_ANY_RUN = Run("", "", (0,), "Euler", "Automatic", 1, 1.0, (), None, "", None, "GPU", "cpu", "float32")


def _check_run(run: Run, key: str, model: Any, checked: set[tuple[Any, ...]]) -> None:
    """A dry run of ``run``'s sampler on its schedule (:func:`sdlab.generation.check_run`), once per sampler,
    schedule, steps and options: an SdlabError naming ``key`` for what the sampler would refuse at run time."""
    from sdlab.generation import check_run

    what = (run.sampler, run.schedule, run.steps, run.sampler_options)
    if what in checked:
        return
    try:
        check_run(run.sampler, run.schedule, run.steps, model, **dict(run.sampler_options))
    except SdlabError as e:
        raise e.with_context(key=key, sampler=run.sampler, schedule=run.schedule, steps=run.steps) from e
    checked.add(what)


def _check_model(c: SweepConfig) -> Any:
    """The grid's model, loaded (a broken file fails here, before anything is written), with the size checked."""
    from sdlab import limits
    from sdlab.generation import load
    from sdlab.models.loading import resolve_device

    try:
        device, dtype = resolve_device(c.device, c.dtype)
    except SdlabError as e:
        raise e.with_context(key="device") from e
    width, height = _size(c.size) or (None, None)
    if width is not None:  # before loading: a size that cannot be generated is refused at once
        limits.check_image(width, height, batch=len(c.seeds), device=device, key="size")
    try:
        sd = load(**_load_kwargs(c.model, str(device), str(dtype).removeprefix("torch.")))
    except SdlabError as e:
        raise e.with_context(key="model") from e
    if width is None:
        width, height = sd.default_size
        limits.check_image(width, height, batch=len(c.seeds), device=device, key="size")
    return sd


def _check_names(c: SweepConfig, model: Any) -> None:
    """Every sampler and schedule of the grid resolves (SdlabError naming the key otherwise)."""
    from sdlab.generation import schedule_for
    from sdlab.samplers import resolve_sampler

    for sampler in c.samplers:
        try:
            resolve_sampler(sampler)
        except SdlabError as e:
            raise e.with_context(key="samplers", sampler=sampler) from e
        for schedule in c.schedules:
            try:
                schedule_for(sampler, schedule, min(c.steps), model)
            except SdlabError as e:
                raise e.with_context(key="schedules", schedule=schedule, sampler=sampler) from e


def _check_options(sampler: str, options: Mapping[str, Any], key: str) -> None:
    """``sampler`` takes ``options`` (single values): names, types, domains and the rules joining two options
    (SdlabError naming ``key.option``)."""
    from sdlab.samplers import check_sampler_options

    try:
        check_sampler_options(sampler, dict(options))
    except SdlabError as e:
        option = e.context.get("option")  # one name, or several joined by ", "
        raise e.with_context(key=f"{key}.{option}" if option else key) from e


def _option_grid(c: SweepConfig, sampler: str) -> list[tuple[tuple[str, Any], ...]]:
    """The option combinations for ``sampler``: global options, then its own table over them; lists are axes."""
    own: dict[str, Any] = {}
    merged: dict[str, Any] = {}
    for name, value in c.sampler_options:
        if isinstance(value, tuple) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
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
        _check_options(sampler, dict(combo), "sampler_options")
    return combos


def _reference_run(c: SweepConfig, base: dict[str, Any]) -> tuple[Run | None, str]:
    """The named reference run for a group (the "default" or a table); None for "highest" / "none"."""
    from sdlab.experiments import DEFAULT_REFERENCE, Reference

    if c.reference in ("highest", "none"):
        return None, str(c.reference)
    ref = DEFAULT_REFERENCE if c.reference == "default" else Reference.coerce(_options_dict(c.reference))
    run = Run(**base, sampler=ref.sampler, schedule=ref.schedule, steps=ref.steps, sampler_options=ref.options)
    return run, ref.label


def _resolve_metrics(c: SweepConfig, override: Sequence[str] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from sdlab.experiments import lpips_unavailable

    wanted = tuple(override) if override is not None else c.metrics
    if wanted is None:
        wanted = ("latent_rmse", "ssim", "psnr") + (("lpips",) if lpips_unavailable() is None else ())
    else:
        bad = [m for m in wanted if m not in ("latent_rmse", *_IMAGE_METRICS)]
        if bad:
            raise SdlabError(f"unknown metric {bad[0]!r}", key="metrics", hint=closest(str(bad[0]), _IMAGE_METRICS))
    if "lpips" in wanted or "lpips" in c.step_image_metrics:
        reason = lpips_unavailable()
        if reason:
            raise SdlabError(
                f"LPIPS is unavailable: {reason}", key="metrics", hint="cache the backbone, or leave lpips out"
            )
    return tuple(dict.fromkeys(wanted)), c.step_image_metrics


def expand(config: SweepConfig | Mapping[str, Any] | str | Path, *, metrics: Sequence[str] | None = None) -> list[Cell]:
    """The grid's cells (reference runs first), every name checked; nothing is written or generated.

    Order: prompt, CFG, sampler, schedule, option combination, steps. The model is identified by its weights'
    SHA-256 (hashed from its files; a hub id is loaded).
    """
    c = load_config(config)
    sd = _check_model(c)
    _check_names(c, sd)
    cell_metrics, step_metrics = _resolve_metrics(c, metrics)
    options = {s: _option_grid(c, s) for s in c.samplers}
    sha, device, dtype = _model_identity(c.model, c.device, c.dtype)
    if c.reference not in REFERENCE_MODES:
        from sdlab.experiments import Reference

        try:
            ref = Reference.coerce(_options_dict(c.reference))
        except SdlabError as e:
            raise SdlabError(e.message, key="reference", hint=e.hint) from e
        _check_run(Run(**{**asdict(_ANY_RUN), "sampler": ref.sampler, "schedule": ref.schedule, "steps": ref.steps}),
                   "reference", sd, set())  # fmt: skip
        _check_options(ref.sampler, dict(ref.options), "reference.sampler_options")
    size = _size(c.size)
    references: dict[str, Cell] = {}
    measured: list[Cell] = []
    for prompt, cfg in itertools.product(c.prompts, c.cfg):
        base = dict(
            prompt=prompt, negative_prompt=c.negative_prompt, seeds=tuple(int(s) for s in c.seeds), cfg=float(cfg),
            model=c.model, model_sha256=sha, size=size, rng=c.rng, device=device, dtype=dtype,
        )  # fmt: skip
        ref_run, label = _reference_run(c, base)
        if ref_run is not None:
            references.setdefault(ref_run.key(), Cell(ref_run, None, "reference", (), reference_label=label))
        for sampler, schedule in itertools.product(c.samplers, c.schedules):
            for opts in options[sampler]:
                runs = [Run(**base, sampler=sampler, schedule=schedule, steps=n, sampler_options=opts) for n in c.steps]
                own = runs[int(np.argmax(c.steps))] if c.reference == "highest" else ref_run
                own_label = f"{sampler} / {schedule} / {max(c.steps)} steps" if c.reference == "highest" else label
                for run in runs:
                    measured.append(
                        Cell(
                            run, own, "measured", cell_metrics if own is not None else (), c.trajectory,
                            step_metrics, c.step_decode, int(c.step_decode_every),
                            own_label if own is not None else "none",
                        )
                    )  # fmt: skip
    checked: set[tuple[Any, ...]] = set()
    for cell in references.values():
        _check_run(cell.run, "reference", sd, checked)
    for cell in measured:
        _check_run(cell.run, "samplers", sd, checked)
    if c.reference == "highest":  # each group's own highest-step cell first: the others are measured against it
        measured.sort(key=lambda cell: cell.reference != cell.run)
    return [*references.values(), *measured]


# ---------------------------------------------------------------------------------------------------------------
# running one cell (pure: no file writes)

_RUNS: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()


def _load_kwargs(model: str | None, device: str, dtype: str) -> dict[str, Any]:
    """model, device and dtype for generate / load; the defaults as None, so the model cache is shared."""
    from sdlab.models.loading import resolve_device

    dev, dt = resolve_device(None, None)
    return {
        "model": model,
        "device": None if device == str(dev) else device,
        "dtype": None if dtype == str(dt).removeprefix("torch.") else dtype,
    }


def _load_args(run: Run) -> dict[str, Any]:
    return _load_kwargs(run.model, run.device, run.dtype)


def _generate(run: Run, *, trajectory: bool) -> Any:
    from sdlab.generation import generate

    return generate(
        run.prompt, negative_prompt=run.negative_prompt, sampler=run.sampler, schedule=run.schedule,
        steps=run.steps, cfg=run.cfg, seeds=list(run.seeds), size=run.size, rng=run.rng, trajectory=trajectory,
        **_load_args(run), **dict(run.sampler_options),
    )  # fmt: skip


def _remember(run: Run, latents: torch.Tensor, images: torch.Tensor) -> None:
    _RUNS[run.key()] = (latents, images)
    _RUNS.move_to_end(run.key())
    while len(_RUNS) > _REFERENCE_CACHE_SIZE:
        _RUNS.popitem(last=False)


def _reference_result(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference run's final latents and images: from this process's cache, else generated now."""
    hit = _RUNS.get(run.key())
    if hit is None:
        result = _generate(run, trajectory=False)
        _remember(run, result.latents, result.images)
        hit = _RUNS[run.key()]
    return hit


def run_cell(cell: Cell) -> CellResult:
    """Generate the cell's run and measure it: rows (cost, vs reference, per-step deltas) and uint8 images.

    Pure: nothing is written; the model and the reference runs are cached in this process only.
    """
    from sdlab.experiments import _distances, spec_columns, step_deltas

    result = _generate(cell.run, trajectory=cell.trajectory)
    is_own_reference = cell.reference == cell.run
    if cell.role == "reference" or is_own_reference:
        _remember(cell.run, result.latents, result.images)
    values: dict[str, torch.Tensor] = {}
    if cell.reference is not None and not is_own_reference and cell.metrics:
        ref_latents, ref_images = _reference_result(cell.reference)
        values = _distances(result.latents, ref_latents, result.images, ref_images, cell.metrics)
    n = len(result.specs)
    per_image = result.seconds / n
    sd = None
    if cell.step_image_metrics:
        from sdlab.generation import load

        sd = load(**_load_args(cell.run))
    rows: list[dict[str, Any]] = []
    images: dict[str, np.ndarray] = {}
    pixels = (result.images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for k, spec in enumerate(result.specs):
        name = f"seed{spec.seed}"
        images[name] = np.ascontiguousarray(pixels[k])
        base = {
            "role": cell.role,
            "reference": cell.reference_label,
            "reference_key": "" if cell.reference is None else cell.reference.key(),
            "nfe": int(result.nfe),
            "seconds": per_image,
            "image": name,
            **spec_columns(spec),
        }
        final = {"step": -1, "sigma": math.nan, "elapsed": result.seconds}
        rows.append({**base, **final, "comparison": "cost", "metric": "nfe", "value": float(result.nfe)})
        rows.append({**base, **final, "comparison": "cost", "metric": "seconds", "value": per_image})
        for metric, tensor in values.items():
            rows.append({**base, **final, "comparison": "reference", "metric": metric, "value": float(tensor[k])})
        if cell.trajectory:
            deltas = step_deltas(
                result.trajectories[k], result.latents[k], model=sd, image_metrics=cell.step_image_metrics,
                decode=cell.step_decode, decode_every=cell.step_decode_every,
            )  # fmt: skip
            rows.extend({**base, **row} for row in deltas)
    frame = pd.DataFrame(rows)
    first = ["role", "comparison", "sampler", "schedule", "steps", "seed", "cfg", "step", "sigma", "metric", "value"]
    frame = frame[first + [col for col in frame.columns if col not in first]]
    return CellResult(frame, images)


# ---------------------------------------------------------------------------------------------------------------
# running a sweep


def _load_model(run: Run) -> float:
    """Load ``run``'s model into this process's cache; the seconds it took (0 when it was already loaded)."""
    import time

    from sdlab import generation

    start = time.perf_counter()
    loaded = len(generation._MODELS)
    generation.load(**_load_args(run))
    return time.perf_counter() - start if len(generation._MODELS) > loaded else 0.0


def _work(cell: Cell) -> tuple[CellResult, dict[str, Any]]:
    """Run one cell and time it: its result and a stats row (seconds in the cell, of which loading a model)."""
    import time

    start = time.perf_counter()
    load_seconds = _load_model(cell.run)
    result = run_cell(cell)
    seconds = time.perf_counter() - start
    return result, {"seconds": seconds, "load_seconds": load_seconds, "images": len(result.images)}


def _map_local(cells: Sequence[Cell], stats: list[dict[str, Any]]) -> Iterator[tuple[Cell, CellResult]]:
    """Run cells one after another in this process, yielding each as it finishes."""
    for cell in cells:
        result, stat = _work(cell)
        stats.append({"worker": "local", **stat})
        yield cell, result


def _model_order(cells: Sequence[Cell]) -> list[Cell]:
    """Cells grouped by model (first appearance order kept), so a worker rarely switches model."""
    first: dict[tuple[Any, ...], int] = {}
    for cell in cells:
        first.setdefault(_model_of(cell), len(first))
    return sorted(cells, key=lambda cell: first[_model_of(cell)])


def _model_of(cell: Cell) -> tuple[Any, ...]:
    run = cell.run
    return (run.model, run.model_sha256, run.device, run.dtype)


def worker_table(stats: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per worker: cells, images, busy seconds, images per busy second and seconds spent loading models."""
    columns = ["worker", "cells", "images", "busy_s", "images_per_s", "load_s"]
    if not stats:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(list(stats))
    out = frame.groupby("worker", sort=True).agg(
        cells=("seconds", "size"), images=("images", "sum"), busy_s=("seconds", "sum"), load_s=("load_seconds", "sum")
    )
    out["images_per_s"] = out["images"] / out["busy_s"].where(out["busy_s"] > 0)
    return out.reset_index()[columns]


def run_sweep(
    config: SweepConfig | Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    metrics: Sequence[str] | None = None,
    fsync: bool = True,
    verify: bool = False,
) -> pd.DataFrame:
    """Run every cell of the grid not already in ``out_dir``'s store; return this sweep's tidy table.

    The whole grid is checked (names, option values, steps, model file, image size, the number of images against
    :func:`sdlab.limits.max_sweep_images`) before ``out_dir`` is created. A stored cell is reused only when its
    shard reads back and its images have the recorded size and SHA-256; otherwise it is recomputed.
    ``verify=True`` first checks every cell in ``out_dir`` (also those of other grids) and removes the bad ones.

    Each finished cell is committed atomically by this process, the store's one writer (a killed sweep loses at
    most the cells in flight; running it again resumes); then ``results.parquet`` is rebuilt from every cell in
    ``out_dir``, with ``image_path`` relative to ``out_dir``. ``metrics`` overrides the config's.

    ``executor``: "local" runs the cells one after another in this process; "ray" sends them to long-lived
    actors of a Ray cluster (:func:`sdlab.cluster.map_ray`): ``address`` None starts a local Ray instance (or
    joins ``RAY_ADDRESS``), "auto" joins the running cluster, "host:port" or "ray://host:port" a given one;
    ``workers`` caps the number of actors (default: one per GPU, or per CPU for CPU models). Both give the same
    rows and images (CPU float32, same torch thread count). The table's ``attrs["workers"]`` holds
    :func:`worker_table`'s records for the cells run now (also printed at the end when ``progress``), and
    ``attrs["startup_seconds"]`` the time spent starting Ray and its actors and stopping them.
    """
    if executor not in EXECUTORS:
        raise SdlabError(
            f"unknown executor {executor!r}", executor=executor, known=list(EXECUTORS),
            hint="executor='local' (this process) or executor='ray' (a Ray cluster; pip install \"sdlab[ray]\")",
        )  # fmt: skip
    if executor == "local" and (address is not None or workers is not None):
        raise SdlabError(
            "address and workers are settings of the 'ray' executor", executor=executor, address=address,
            workers=workers, hint="pass executor='ray' (CLI: --ray [ADDRESS]) or drop them",
        )  # fmt: skip
    if executor == "ray":
        from sdlab.cluster import check_ray

        check_ray()  # a clear error before any work when Ray is missing
    c = load_config(config)
    cells = expand(c, metrics=metrics)
    _check_volume(cells)
    from sdlab.store import ResultsStore

    store = ResultsStore(out_dir, fsync=fsync)
    if verify:
        bad = store.verify()
        if progress:
            print(f"verified {out_dir}: {len(bad)} bad cell(s) removed, to be recomputed", file=sys.stderr)
    todo = _model_order([cell for cell in cells if not store.has(cell.key(), verify=True)])
    if progress:
        print(_plan(cells, todo, estimate=executor == "local"), file=sys.stderr)
    stats: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    if executor == "ray":
        from sdlab.cluster import map_ray

        mapped = map_ray(todo, stats, address=address, workers=workers, info=info)
    else:
        mapped = _map_local(todo, stats)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="cell", desc=c.name)
    images_done, images_total = 0, sum(len(cell.run.seeds) for cell in todo)
    try:
        for cell, result in mapped:
            store.put(cell.key(), result.rows, result.images, meta={"cell": _cell_meta(cell)})
            images_done += len(result.images)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(images=f"{images_done}/{images_total}")
    finally:
        if hasattr(mapped, "close"):
            mapped.close()  # a Ray mapper stops its actors (and the Ray instance it started)
        if bar is not None:
            bar.close()
    per_worker = worker_table(stats)
    if progress and stats:
        print(per_worker.to_string(index=False, float_format=lambda v: f"{v:.3g}"), file=sys.stderr)
    table = pd.read_parquet(store.compact())
    keys = {cell.key() for cell in cells}
    table = table[table["cell_key"].isin(keys)].reset_index(drop=True)
    table.attrs["workers"] = per_worker.to_dict("records")  # plain records: pandas compares attrs when combining
    table.attrs["startup_seconds"] = info.get("startup_seconds", 0.0) + info.get("shutdown_seconds", 0.0)
    return table


def _images(cells: Sequence[Cell]) -> int:
    return sum(len(cell.run.seeds) for cell in cells)


def _check_volume(cells: Sequence[Cell]) -> None:
    """SdlabError when the grid holds more images than :func:`sdlab.limits.max_sweep_images` allows."""
    from sdlab import limits

    total, limit = _images(cells), limits.max_sweep_images()
    if total > limit:
        raise SdlabError(
            f"the grid holds {total:,} images in {len(cells):,} cells, over the limit of {limit:,}",
            hint=f"shrink the grid (seeds, steps, samplers, option lists), or set {limits.SWEEP_ENV}={total} "
            "if you mean it",
        )


ESTIMATE_FROM = 200  # images to compute from which run_sweep times a short calibration run to estimate the total


def _nfe_per_step(sampler: str) -> float:
    """Model evaluations per step from the catalogue; 2 where it is adaptive or unknown (a rough guess)."""
    from sdlab.samplers import resolve_sampler

    text = resolve_sampler(sampler).info.nfe_per_step
    digits = [int(part) for part in text.split("-") if part.isdigit()]
    return float(max(digits)) if digits else 2.0


def _estimate_seconds(cells: Sequence[Cell]) -> float:
    """Seconds to run ``cells`` here: per-image overhead and per-evaluation cost timed on the first cell's model."""
    import time

    run = cells[0].run
    seconds = {}
    for steps in (2, 2, 4):  # the first 2-step run warms up; the second is timed
        start = time.perf_counter()
        _generate(
            Run(**{**asdict(run), "seeds": run.seeds[:1], "sampler": "Euler", "schedule": "Karras", "steps": steps,
                   "sampler_options": ()}),
            trajectory=False,
        )  # fmt: skip
        seconds[steps] = time.perf_counter() - start
    per_eval = max(seconds[4] - seconds[2], 0.0) / 2
    overhead = max(seconds[2] - 2 * per_eval, 0.0)
    return sum(
        len(cell.run.seeds) * (overhead + cell.run.steps * _nfe_per_step(cell.run.sampler) * per_eval) for cell in cells
    )


def _plan(cells: Sequence[Cell], todo: Sequence[Cell], *, estimate: bool) -> str:
    """What the sweep is about to do: cells and images to compute, stored ones reused, and an estimated time."""
    n = _images(todo)
    text = f"{len(todo):,} of {len(cells):,} cells to run ({n:,} images; {len(cells) - len(todo):,} cells stored)"
    if estimate and n >= ESTIMATE_FROM:
        total = _estimate_seconds(todo)
        text += f", estimated {total / 60:.1f} min here"
    return text


def _cell_meta(cell: Cell) -> dict[str, Any]:
    d = asdict(cell)
    d["key"] = cell.key()
    return json.loads(json.dumps(d, default=str))


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per sampler, schedule (as named and as resolved), steps and CFG: the mean of each metric vs the reference
    (over prompts and seeds), NFE and seconds per image. Reference runs of their own are left out."""
    if table.empty:
        return pd.DataFrame()
    keys = [k for k in ("sampler", "schedule", "schedule_resolved", "steps", "cfg") if k in table.columns]
    measured = table[table["role"] == "measured"] if "role" in table else table
    if measured.empty:
        measured = table
    finals = measured[measured["step"] == -1]
    parts = []
    ref = finals[finals["comparison"] == "reference"]
    if not ref.empty:
        parts.append(ref.pivot_table("value", keys, "metric", aggfunc="mean"))
    cost = finals[finals["comparison"] == "cost"].pivot_table("value", keys, "metric", aggfunc="mean")
    parts.append(cost.rename(columns={"seconds": "seconds/image"}))
    out = pd.concat(parts, axis=1).reset_index()
    out.columns.name = None
    return out
