"""From a sweep config to its cells: :func:`expand` checks the whole grid against the model and lists every cell.

Everything that can fail is found here, before a sweep writes anything: the model loads and the image size fits,
every sampler and schedule resolves, each option combination is in its domain, each run passes a dry run of its
sampler on its schedule (:func:`sdlab.generation.check_run`), and the metrics are available.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sdlab import limits
from sdlab.embedded import pipeline_dir
from sdlab.errors import SdlabError, closest
from sdlab.experiments import DEFAULT_REFERENCE, Reference
from sdlab.generation import check_run, load, schedule_for
from sdlab.measure.metrics import default_perceptual, metric_unavailable
from sdlab.models.loading import folder_sha256, resolve_device, sha256_file
from sdlab.samplers import resolve_sampler
from sdlab.sweeps.cells import Cell, SweepRun
from sdlab.sweeps.config import (
    IMAGE_METRICS,
    REFERENCE_MODES,
    SweepConfig,
    check_options,
    load_config,
    option_grid,
    options_dict,
    parse_size,
)

__all__ = ["expand"]

_IDENTITY: dict[tuple[Any, ...], tuple[str, str, str]] = {}


def _model_identity(model: str | None, device: str | None, dtype: str | None) -> tuple[str, str, str]:
    """(weights SHA-256, device, dtype) without loading the model where its files are local (cached per process)."""
    dev, dt = resolve_device(device, dtype)
    path = None
    if model is None or model == "embedded":
        path = Path(pipeline_dir())
    elif Path(model).expanduser().exists():
        path = Path(model).expanduser()
    stamp: tuple[Any, ...] = (model, str(dev), str(dt))
    if path is not None:
        st = path.stat()
        stamp += (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if stamp not in _IDENTITY:
        if path is None:  # a hub id: load it (the process keeps it for the run)
            sha = load(model, device=device, dtype=dtype).file_sha256
        else:
            sha = sha256_file(path) if path.is_file() else folder_sha256(path, None)
        _IDENTITY[stamp] = (sha, str(dev), str(dt).removeprefix("torch."))
    return _IDENTITY[stamp]


_ANY_RUN = SweepRun("", "", (0,), "Euler", "Automatic", 1, 1.0, (), None, "", None, "GPU", "cpu", "float32")


def _check_run(run: SweepRun, key: str, model: Any, checked: set[tuple[Any, ...]]) -> None:
    """A dry run of ``run``'s sampler on its schedule (:func:`sdlab.generation.check_run`), once per sampler,
    schedule, steps and options: an SdlabError naming ``key`` for what the sampler would refuse at run time."""
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
    try:
        device, dtype = resolve_device(c.device, c.dtype)
    except SdlabError as e:
        raise e.with_context(key="device") from e
    width, height = parse_size(c.size) or (None, None)
    if width is not None:  # before loading: a size that cannot be generated is refused at once
        limits.check_image(width, height, batch=len(c.seeds), device=device, key="size")
    try:
        sd = load(c.model, device=str(device), dtype=dtype)
    except SdlabError as e:
        raise e.with_context(key="model") from e
    if width is None:
        width, height = sd.default_size
        limits.check_image(width, height, batch=len(c.seeds), device=device, key="size")
    return sd


def _check_names(c: SweepConfig, model: Any) -> None:
    """Every sampler and schedule of the grid resolves (SdlabError naming the key otherwise)."""
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


def _check_reference(c: SweepConfig, model: Any) -> None:
    """A reference given as a table: its fields, a dry run of its sampler and its options."""
    try:
        ref = Reference.coerce(options_dict(c.reference))
    except SdlabError as e:
        raise SdlabError(e.message, key="reference", hint=e.hint) from e
    run = replace(_ANY_RUN, sampler=ref.sampler, schedule=ref.schedule, steps=ref.steps)
    _check_run(run, "reference", model, set())
    check_options(ref.sampler, dict(ref.options), "reference.sampler_options")


def _reference_run(c: SweepConfig, base: dict[str, Any]) -> tuple[SweepRun | None, str]:
    """The named reference run for a group (the "default" or a table); None for "highest" / "none"."""
    if c.reference in ("highest", "none"):
        return None, str(c.reference)
    ref = DEFAULT_REFERENCE if c.reference == "default" else Reference.coerce(options_dict(c.reference))
    run = SweepRun(**base, sampler=ref.sampler, schedule=ref.schedule, steps=ref.steps, sampler_options=ref.options)
    return run, ref.label


def _resolve_metrics(c: SweepConfig, override: Sequence[str] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    wanted = tuple(override) if override is not None else c.metrics
    if wanted is None:
        wanted = ("latent_rmse", "ssim", "psnr", default_perceptual())  # LPIPS, or its offline stand-in, named
    else:
        bad = [m for m in wanted if m not in ("latent_rmse", *IMAGE_METRICS)]
        if bad:
            raise SdlabError(f"unknown metric {bad[0]!r}", key="metrics", hint=closest(str(bad[0]), IMAGE_METRICS))
    for name in dict.fromkeys((*wanted, *c.step_image_metrics)):
        reason = None if name == "latent_rmse" else metric_unavailable(name)
        if reason:
            raise SdlabError(
                f"metric {name} is unavailable: {reason}",
                key="metrics",
                hint=f"install what it needs, or leave {name} out",
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
    options = {s: option_grid(c, s) for s in c.samplers}
    sha, device, dtype = _model_identity(c.model, c.device, c.dtype)
    if c.reference not in REFERENCE_MODES:
        _check_reference(c, sd)
    size = parse_size(c.size)
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
                runs = [
                    SweepRun(**base, sampler=sampler, schedule=schedule, steps=n, sampler_options=opts) for n in c.steps
                ]
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
