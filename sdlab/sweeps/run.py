"""Running a sweep: :func:`run_sweep` checks the grid, skips what the store holds, maps the rest over an executor
(this process, or Ray actors) and commits each cell as it arrives; :func:`summarize` and :func:`worker_table` read
the outcome.

>>> from sdlab.sweeps import run_sweep, summarize
>>> table = run_sweep("data/sweeps/smoke.toml", "runs/smoke")        # or a dict / SweepConfig
>>> table.query("comparison == 'reference'").pivot_table("value", ["sampler", "steps"], "metric")
>>> # the same tidy table, images beside it: pandas.read_parquet("runs/smoke/results.parquet")

An executor is a function ``(cells, stats) -> iterator of (cell, CellResult)`` that runs each cell with
:func:`sdlab.sweeps.cells.run_cell_timed` and appends its stats row: :func:`map_local` here, or
:func:`sdlab.sweeps.ray.map_ray`. Only :func:`run_sweep` writes, through :class:`~sdlab.sweeps.store.ResultsStore`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from sdlab.errors import SdlabError
from sdlab.sweeps.cells import Cell, CellResult, model_key, run_cell_timed
from sdlab.sweeps.config import SweepConfig, load_config
from sdlab.sweeps.grid import expand
from sdlab.sweeps.plan import check_volume, count_images, describe_plan
from sdlab.sweeps.ray import check_ray, map_ray
from sdlab.sweeps.store import ResultsStore

__all__ = ["run_sweep", "summarize", "worker_table", "map_local", "EXECUTORS"]

EXECUTORS = ("local", "ray")  # "ray": sdlab.sweeps.ray maps the same cells over actors of a Ray cluster


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
    actors of a Ray cluster (:func:`sdlab.sweeps.ray.map_ray`): ``address`` None starts a local Ray instance (or
    joins ``RAY_ADDRESS``), "auto" joins the running cluster, "host:port" or "ray://host:port" a given one;
    ``workers`` caps the number of actors (default: one per GPU, or per CPU for CPU models). Both give the same
    rows and images (CPU float32, same torch thread count). The table's ``attrs["workers"]`` holds
    :func:`worker_table`'s records for the cells run now (also printed at the end when ``progress``), and
    ``attrs["startup_seconds"]`` the time spent starting Ray and its actors and stopping them.
    """
    _check_executor(executor, address, workers)
    c = load_config(config)
    cells = expand(c, metrics=metrics)
    check_volume(cells)
    store = _open_store(out_dir, fsync=fsync, verify=verify, progress=progress)
    todo = _model_order([cell for cell in cells if not store.has(cell.key(), verify=True)])
    if progress:
        print(describe_plan(cells, todo, estimate=executor == "local"), file=sys.stderr)
    stats: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    if executor == "ray":
        mapped = map_ray(todo, stats, address=address, workers=workers, info=info)
    else:
        mapped = map_local(todo, stats)
    _commit(store, mapped, todo, label=c.name, progress=progress)
    per_worker = worker_table(stats)
    if progress and stats:
        print(per_worker.to_string(index=False, float_format=lambda v: f"{v:.3g}"), file=sys.stderr)
    table = pd.read_parquet(store.compact())
    table = table[table["cell_key"].isin({cell.key() for cell in cells})].reset_index(drop=True)
    table.attrs["workers"] = per_worker.to_dict("records")  # plain records: pandas compares attrs when combining
    table.attrs["startup_seconds"] = info.get("startup_seconds", 0.0) + info.get("shutdown_seconds", 0.0)
    return table


def _check_executor(executor: str, address: str | None, workers: int | None) -> None:
    """A known executor with settings it takes, and Ray installed for "ray": a clear error before any work."""
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
        check_ray()


def _open_store(out_dir: str | Path, *, fsync: bool, verify: bool, progress: bool) -> ResultsStore:
    """The results store in ``out_dir``, its bad cells removed first when ``verify``."""
    store = ResultsStore(out_dir, fsync=fsync)
    if verify:
        bad = store.verify()
        if progress:
            print(f"verified {out_dir}: {len(bad)} bad cell(s) removed, to be recomputed", file=sys.stderr)
    return store


def _commit(
    store: ResultsStore, mapped: Iterator[tuple[Cell, CellResult]], todo: Sequence[Cell], *, label: str, progress: bool
) -> None:
    """Put each cell into the store as the executor yields it (with a progress bar), then close the executor."""
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="cell", desc=label)
    images_done, images_total = 0, count_images(todo)
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


def _cell_meta(cell: Cell) -> dict[str, Any]:
    d = asdict(cell)
    d["key"] = cell.key()
    return json.loads(json.dumps(d, default=str))


def map_local(cells: Sequence[Cell], stats: list[dict[str, Any]]) -> Iterator[tuple[Cell, CellResult]]:
    """The local executor: run cells one after another in this process, yielding each as it finishes."""
    for cell in cells:
        result, stat = run_cell_timed(cell)
        stats.append({"worker": "local", **stat})
        yield cell, result


def _model_order(cells: Sequence[Cell]) -> list[Cell]:
    """Cells grouped by model (first appearance order kept), so a worker rarely switches model."""
    first: dict[tuple[Any, ...], int] = {}
    for cell in cells:
        first.setdefault(model_key(cell), len(first))
    return sorted(cells, key=lambda cell: first[model_key(cell)])


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
