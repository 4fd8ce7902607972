"""The Ray executor: a sweep's cells (:mod:`sdlab.sweeps.cells`) run by long-lived actors that keep their model.

>>> from sdlab.sweeps import run_sweep
>>> run_sweep("data/sweeps/smoke.toml", "runs/smoke", executor="ray")                  # a local Ray instance
>>> run_sweep("sweep.toml", "runs/big", executor="ray", address="auto")                # the running cluster

CLI: ``sdlab sweep CONFIG.toml --out DIR --ray [ADDRESS]``. Ray is an optional extra (``pip install
"sdlab[ray]"``); nothing here imports it until a Ray sweep starts.

How the work is shared:

- **Workers.** One actor per GPU (``num_gpus=1``) when the cells run on CUDA, else one per CPU slot (``num_cpus``
  = ``cpus_per_worker``, torch using that many threads); ``workers`` caps the count. An actor loads a model once
  and keeps it (and the reference runs it made or was sent) for every cell that uses it.
- **Order.** Cells arrive grouped by model; a free worker takes the next cell of the model it already holds, else
  the next cell. A cell measured against a reference run made in this sweep waits until that run is done; its
  final latents and images then travel to the worker with the cell instead of being made again. Each worker has
  at most ``depth`` cells queued, so it never waits for the driver.
- **One writer.** Workers only return rows and images; the driver (:func:`sdlab.sweeps.run_sweep`) writes the
  results store. A worker process that dies is restarted by Ray and its cells are retried (``retries`` times);
  a driver that dies takes its actors with it, and running the same command again resumes from the store.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from sdlab.errors import SdlabError
from sdlab.sweeps.cells import (
    Cell,
    CellResult,
    SweepRun,
    load_model_for,
    model_key,
    recall_reference,
    remember_reference,
    run_cell_timed,
)

__all__ = ["map_ray", "check_ray", "require_ray", "CellWorker"]

INSTALL_HINT = 'pip install "sdlab[ray]" (or use environment.yml, which includes it)'


def check_ray() -> None:
    """An SdlabError saying how to install Ray when it is missing (without importing it)."""
    if importlib.util.find_spec("ray") is None:
        raise SdlabError("the 'ray' executor needs Ray, which is not installed", hint=INSTALL_HINT)


def require_ray() -> Any:
    """The ``ray`` module, or an SdlabError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise SdlabError("the 'ray' executor needs Ray, which is not installed", hint=INSTALL_HINT) from e
    return ray


class CellWorker:
    """What one Ray actor runs: cells, one at a time, with its models and reference runs cached in its process."""

    def __init__(self, index: int, threads: int | None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.name = f"w{index}@{socket.gethostname()}"
        self.load_seconds = 0.0  # spent in prepare(), reported with the next cell

    def ready(self) -> int:
        """The actor's process id (once the actor is up)."""
        return os.getpid()

    def prepare(self, run: SweepRun) -> None:
        """Load ``run``'s model ahead of the cells (while a reference run this worker waits for is made)."""
        self.load_seconds += load_model_for(run)

    def run(
        self, cell: Cell, want_final: bool, primes: Sequence[SweepRun], *finals: Any
    ) -> tuple[CellResult, dict, Any]:
        """Run ``cell`` after caching the reference runs ``primes`` (with their ``finals``: latents, images).

        Returns the cell's result, its stats row and, when ``want_final``, the run's final latents and images
        (the cell is a reference for others)."""
        for run, final in zip(primes, finals, strict=True):
            remember_reference(run, *final)
        result, stat = run_cell_timed(cell)
        stat["seconds"] += self.load_seconds
        stat["load_seconds"] += self.load_seconds
        self.load_seconds = 0.0
        final = recall_reference(cell.run) if want_final else None
        return result, {"worker": self.name, "pid": os.getpid(), **stat}, final


def _connect(ray: Any, address: str | None) -> bool:
    """Start or join Ray; True when this call did it (so the caller shuts it down again)."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"log_to_driver": False}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        options["include_dashboard"] = False  # a fresh local instance: no dashboard to start
    try:
        ray.init(address=address, **options)
    except Exception as e:  # Ray raises ConnectionError, ValueError, RuntimeError... for a bad or absent cluster
        raise SdlabError(
            f"could not start or join Ray: {e}",
            address=address,
            hint="address=None starts a local instance; 'auto' needs a running cluster (`ray start --head`); "
            "else give the head's 'host:6379' or 'ray://host:10001'",
        ) from e
    return True


def _worker_options(cells: Sequence[Cell], ray: Any, workers: int | None, cpus_per_worker: int) -> tuple[int, dict]:
    """How many actors and with which resources: a GPU each for CUDA cells, else ``cpus_per_worker`` CPUs."""
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise SdlabError("workers must be a positive integer", workers=workers, hint="e.g. workers=2, or None")
    if not isinstance(cpus_per_worker, int) or cpus_per_worker < 1:
        raise SdlabError("cpus_per_worker must be a positive integer", cpus_per_worker=cpus_per_worker)
    resources = ray.cluster_resources()
    gpu = any(cell.run.device.startswith("cuda") for cell in cells)
    if gpu:
        slots = int(resources.get("GPU", 0))
        if slots == 0:
            raise SdlabError(
                "the sweep runs on CUDA but the Ray cluster has no GPU",
                cluster=dict(resources),
                hint="join a cluster with GPU nodes, or set device = 'cpu' in the sweep file",
            )
        options = {"num_gpus": 1, "num_cpus": 1}
    else:
        slots = int(resources.get("CPU", 0)) // cpus_per_worker
        if slots == 0:
            raise SdlabError(
                "the Ray cluster has no free CPU slot for a worker",
                cluster=dict(resources),
                cpus_per_worker=cpus_per_worker,
                hint="lower cpus_per_worker or add nodes",
            )
        options = {"num_cpus": cpus_per_worker}
    n = min(slots, len(cells), workers or slots)
    return n, options


def map_ray(
    cells: Sequence[Cell],
    stats: list[dict[str, Any]],
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: int = 1,
    depth: int = 2,
    retries: int = 3,
    info: dict[str, Any] | None = None,
) -> Iterator[tuple[Cell, CellResult]]:
    """Run ``cells`` on Ray actors, yielding ``(cell, result)`` as each finishes (any order); append each cell's
    stats row (worker, seconds, load_seconds, images, pid) to ``stats``. ``info`` receives ``startup_seconds``
    (importing Ray, starting or joining it and starting the actors), ``shutdown_seconds`` (stopping them) and
    ``workers``. Closing the generator stops the actors, and Ray itself
    when this call started it."""
    if not cells:
        return
    info = {} if info is None else info
    start = time.perf_counter()
    ray = require_ray()
    started = _connect(ray, address)
    actors: list[Any] = []
    try:
        n, options = _worker_options(cells, ray, workers, cpus_per_worker)
        remote = ray.remote(CellWorker).options(max_restarts=retries, max_task_retries=retries, **options)
        threads = options.get("num_cpus") if "num_gpus" not in options else None
        actors = [remote.remote(i, threads) for i in range(n)]
        ray.get([a.ready.remote() for a in actors])
        info["startup_seconds"] = time.perf_counter() - start
        info["workers"] = n
        for actor in actors:  # every worker loads the first model now, even one that must wait for a reference run
            actor.prepare.remote(cells[0].run)
        yield from _dispatch(ray, cells, actors, stats, depth)
    finally:
        stop = time.perf_counter()
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
        info["shutdown_seconds"] = time.perf_counter() - stop


def _dispatch(
    ray: Any, cells: Sequence[Cell], actors: list[Any], stats: list[dict[str, Any]], depth: int
) -> Iterator[tuple[Cell, CellResult]]:
    pending = list(cells)
    wanted = {c.reference.key() for c in cells if c.reference is not None and c.reference != c.run}
    producing = {c.run.key() for c in cells if c.run.key() in wanted}  # reference runs this sweep makes
    finals: dict[str, Any] = {}  # run key -> object ref of its (latents, images)
    runs: dict[str, SweepRun] = {}
    holds: list[set[str]] = [set() for _ in actors]  # reference runs each actor has cached
    model: list[Any] = [None] * len(actors)
    queued = [0] * len(actors)
    inflight: dict[Any, tuple[int, Cell]] = {}

    def ready(cell: Cell) -> bool:
        ref = cell.reference
        return ref is None or ref == cell.run or ref.key() not in producing or ref.key() in finals

    def take(i: int) -> Cell | None:
        candidates = [k for k, cell in enumerate(pending) if ready(cell)]
        if not candidates:
            return None
        same = [k for k in candidates if model_key(pending[k]) == model[i]]
        return pending.pop((same or candidates)[0])

    def submit(i: int, cell: Cell) -> None:
        primes, refs = [], []
        ref = cell.reference
        if ref is not None and ref != cell.run and ref.key() in finals and ref.key() not in holds[i]:
            primes.append(runs[ref.key()])
            refs.append(finals[ref.key()])
            holds[i].add(ref.key())
        want_final = cell.run.key() in producing
        if want_final:
            holds[i].add(cell.run.key())
        model[i] = model_key(cell)
        queued[i] += 1
        inflight[actors[i].run.remote(cell, want_final, primes, *refs)] = (i, cell)

    def fill() -> None:
        for i in sorted(range(len(actors)), key=lambda i: queued[i]):
            while queued[i] < depth:
                cell = take(i)
                if cell is None:
                    return
                submit(i, cell)

    fill()
    while inflight:
        done, _ = ray.wait(list(inflight), num_returns=1)
        i, cell = inflight.pop(done[0])
        queued[i] -= 1
        try:
            result, stat, final = ray.get(done[0])
        except ray.exceptions.RayActorError as e:
            raise SdlabError(
                "a Ray worker died and its restarts ran out",
                sampler=cell.run.sampler, steps=cell.run.steps, seeds=list(cell.run.seeds), worker=i,
                hint="see the worker's log under /tmp/ray/session_latest/logs; out of memory? fewer workers",
            ) from e  # fmt: skip
        if final is not None:
            finals[cell.run.key()] = ray.put(final)
            runs[cell.run.key()] = cell.run
        stats.append(stat)
        yield cell, result
        fill()
    if pending:  # cannot happen: every reference run is a cell of the sweep
        raise SdlabError("cells were left waiting for a reference run", left=len(pending))
