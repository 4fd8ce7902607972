"""The one cached run-maker: :class:`Runner` makes runs with :func:`sdlab.generate` from shared settings and keeps
each one in a :class:`RunCache` (bounded, least recently used out first), so a run asked for twice is made once.

>>> runner = Runner(prompt="a red circle", seeds=[0, 1], cfg=5.0)       # the embedded model
>>> a = runner("Euler", "Automatic", 10)                                # a GenerateResult
>>> runner("Euler", "Automatic", 10) is a                               # made once
True
>>> runner("Euler", "Automatic", 10, trajectory=True).trajectories[0]   # with its per-step trajectory
>>> runner.per_seed("Euler", "Automatic", 10, seeds=[1, 2])             # seed 1 reused, seed 2 made

A :class:`RunCache` on its own keeps anything under any key, e.g. final latents and images under a spec's hash;
:func:`run_key` makes a key from everything that changes a run. :class:`RunSettings` are the runner's settings
that every experiment takes by keyword and passes on unchanged.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.generation import GenerateResult, generate, load, schedule_for

__all__ = ["RunCache", "Runner", "RunSettings", "run_key", "slice_result", "join_results", "DEFAULT_CACHE_SIZE"]

DEFAULT_CACHE_SIZE = 128
"""Runs a :class:`RunCache` keeps by default. More than any experiment's default grid asks for (ancestral
divergence, the largest, makes about 90 distinct runs), so no run of one is made twice; a bigger grid may make an
evicted run again (the same images, another time). On Stable Diffusion at 512 px each run of two seeds holds about
6 MB of images and latents (a few MB more per seed with a trajectory), so a full cache stays under about 2 GB."""


class RunCache:
    """Values by key, at most ``size`` of them: reading or writing a key makes it the most recently used, and
    the least recently used goes when there are more than ``size``.

    >>> cache = RunCache(2)
    >>> for key in ("a", "b", "a", "c"):              # "a" read again before "c" comes
    ...     _ = cache.get_or_make(key, lambda: key.upper())
    >>> "b" in cache, "a" in cache                    # the least recently used went
    (False, True)
    """

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise SdlabError("a run cache's size must be an integer >= 1", size=size)
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value kept under ``key`` (now the most recently used), else ``default``."""
        if key not in self._items:
            return default
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Hashable, value: Any) -> Any:
        """Keep ``value`` under ``key`` as the most recently used; returns ``value``."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value kept under ``key``, else ``make()`` kept there."""
        return self.get(key) if key in self._items else self.put(key, make())

    def clear(self) -> None:
        self._items.clear()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


def run_key(sampler: str, schedule: str, steps: int, **settings: Any) -> str:
    """A cache key for one run: sampler, schedule, steps and every other setting that changes it (prompt, seeds,
    CFG, RNG, dtype, batch size, sampler options, ...), each value by its ``repr``, settings in name order."""
    return repr((sampler, schedule, steps, sorted((name, repr(value)) for name, value in settings.items())))


class Runner:
    """Makes runs with :func:`sdlab.generate` from shared settings (prompt, seeds, CFG, model, size, RNG), each
    distinct run once, with an optional progress bar (``total`` runs).

    Runs are kept in ``cache`` (default: a new :class:`RunCache` of :data:`DEFAULT_CACHE_SIZE`), which runners
    may share: the key holds every setting, the model by its name (a model object by its identity, so a shared
    cache must not outlive the model objects it was filled with) and device. A runner is a context manager that
    closes its progress bar.
    """

    def __init__(
        self,
        *,
        prompt: str,
        negative_prompt: str = "",
        seeds: Sequence[int] | int = (0,),
        cfg: float = 5.0,
        model: Any = None,
        size: Any = None,
        rng: str = "GPU",
        device: str | None = None,
        cache: RunCache | None = None,
        progress: bool = False,
        total: int | None = None,
    ) -> None:
        if not isinstance(prompt, str):
            raise SdlabError("prompt must be a string", type=type(prompt).__name__)
        self.seeds = _seeds(seeds)
        self.common = {"prompt": prompt, "negative_prompt": negative_prompt, "size": size}
        self.cfg, self.rng, self.model = cfg, rng, model
        self.sd = load(model, device=device)
        self.cache = RunCache() if cache is None else cache
        self._model_key = model if model is None or isinstance(model, (str, Path)) else f"object {id(self.sd)}"
        self._device = str(self.sd.device)
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="run", desc="experiment")

    def __call__(
        self,
        sampler: str,
        schedule: str,
        steps: int,
        *,
        trajectory: bool = False,
        trajectory_dtype: str | None = None,
        seeds: Sequence[int] | None = None,
        cfg: float | None = None,
        rng: str | None = None,
        dtype: str | None = None,
        latents: Tensor | None = None,
        batch_size: int | None = None,
        fresh: bool = False,
        **options: Any,
    ) -> GenerateResult:
        """The run (``sampler``, ``schedule``, ``steps``, the runner's settings where an argument is None, sampler
        ``options``): kept, else made and kept. A run made with its trajectory also serves the same run asked
        without. ``fresh=True`` makes it again and keeps nothing (reruns, timing); so do given ``latents``.
        ``dtype``: the weights at that dtype (a model object: autocast), see :meth:`precision`;
        ``trajectory_dtype``: the dtype the trajectory keeps (None: float32; "float16" halves its memory)."""
        seeds = list(self.seeds if seeds is None else seeds)
        cfg = self.cfg if cfg is None else cfg
        rng = self.rng if rng is None else rng
        key = self._key(
            sampler, schedule, steps, options, seeds=seeds, cfg=cfg, rng=rng, dtype=dtype, batch_size=batch_size
        )
        cacheable = latents is None and not fresh
        traj_key = key + "+traj" + ("" if trajectory_dtype is None else f"[{trajectory_dtype}]")
        for k in (traj_key if trajectory else key + "+traj", key if not trajectory else None):
            if cacheable and k in self.cache:
                return self.cache.get(k)
        kwargs = dict(
            self.common, sampler=sampler, schedule=schedule, steps=steps, seeds=seeds, cfg=cfg, rng=rng,
            trajectory=trajectory, trajectory_dtype=trajectory_dtype, latents=latents, batch_size=batch_size,
            **options,
        )  # fmt: skip
        with self.precision(dtype) as model:
            result = generate(model=model, **kwargs)
        if cacheable:
            self.cache.put(traj_key if trajectory else key, result)
        if self.bar is not None:
            self.bar.update(1)
        return result

    def per_seed(
        self,
        sampler: str,
        schedule: str,
        steps: int,
        *,
        seeds: Sequence[int] | None = None,
        fresh: bool = False,
        **options: Any,
    ) -> GenerateResult:
        """The run for ``seeds`` (default the runner's) with each seed's image kept on its own: the seeds not kept
        yet are made together in one batch, so a later call with other seeds reuses the ones in common. Runs whose
        schedules resolve to the same one ("Automatic" and its choice) share images (the specs keep the name
        asked first). One result, :func:`join_results` of the seeds' own; no trajectories. ``fresh=True``: all
        seeds made again in one batch, nothing kept."""
        seeds = list(self.seeds if seeds is None else seeds)
        if fresh:
            return self(sampler, schedule, steps, seeds=seeds, fresh=True, **options)
        resolved = schedule_for(sampler, schedule, int(steps), self.sd)[1].lower()
        key = self._key(sampler, resolved, int(steps), options, cfg=self.cfg, rng=self.rng, per_seed=True)
        missing = [s for s in dict.fromkeys(seeds) if (key, s) not in self.cache]
        if missing:
            made = self(sampler, schedule, steps, seeds=missing, fresh=True, **options)
            for k, seed in enumerate(missing):
                self.cache.put((key, seed), slice_result(made, k, seconds=made.seconds / len(missing)))
        return join_results([self.cache.get((key, s)) for s in seeds])

    def _key(self, sampler: str, schedule: str, steps: int, options: dict[str, Any], **settings: Any) -> str:
        """:func:`run_key` of a run with this runner's model, prompts and size; the sampler options apart, so
        that none can take the name of a setting."""
        key = run_key(sampler, schedule, steps, model=self._model_key, device=self._device, **self.common, **settings)
        return key + repr(sorted((name, repr(value)) for name, value in options.items()))

    @contextlib.contextmanager
    def precision(self, dtype: str | None) -> Iterator[Any]:
        """The model to run: the loaded one; for another dtype the same weights loaded at that dtype (a hub id,
        folder or the embedded model) or, for a model object, autocast at that dtype."""
        if dtype is None or dtype == str(self.sd.dtype).removeprefix("torch."):
            yield self.sd
        elif self.model is None or isinstance(self.model, str):
            yield load(self.model, device=str(self.sd.device), dtype=dtype)
        else:
            with torch.autocast(self.sd.device.type, dtype=getattr(torch, dtype)):
                yield self.sd

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class RunSettings:
    """The :class:`Runner` settings every experiment takes by keyword and passes on unchanged (the prompt, seeds
    and CFG each experiment names itself, with defaults of its own).

    >>> settings, sampler_options = RunSettings.split({"model": tiny, "size": (64, 64), "eta": 0.5})
    >>> settings.runner(prompt="a red circle", seeds=[0], cfg=5.0)      # a Runner on ``tiny`` at 64 x 64
    """

    negative_prompt: str = ""
    model: Any = None  # None: the embedded model; a hub id, folder, checkpoint file or a loaded model
    size: Any = None  # None: the model's default size
    rng: str = "GPU"  # A1111's noise source: "GPU", "CPU" or "NV"
    progress: bool = False  # a progress bar over the runs

    @classmethod
    def split(cls, kwargs: Mapping[str, Any], *, sampler_options: bool = True) -> tuple[RunSettings, dict[str, Any]]:
        """An experiment's keyword arguments as its run settings and the rest, its sampler options (an error
        for any name left over where the experiment takes no sampler options)."""
        names = [f.name for f in fields(cls)]
        rest = {k: v for k, v in kwargs.items() if k not in names}
        if rest and not sampler_options:
            name = next(iter(rest))
            raise SdlabError(f"unknown setting {name!r}", hint=closest(name, names))
        return cls(**{k: v for k, v in kwargs.items() if k in names}), rest

    def runner(self, **settings: Any) -> Runner:
        """A :class:`Runner` with these settings and ``settings`` (prompt, seeds, cfg, total, ...)."""
        return Runner(**{f.name: getattr(self, f.name) for f in fields(self)}, **settings)


def slice_result(result: GenerateResult, index: int, *, seconds: float | None = None) -> GenerateResult:
    """The ``index``-th image of a result as a result of its own (the batch's nfe kept; its seconds too unless
    ``seconds`` is given)."""
    sl = slice(index, index + 1)
    trajs = None if result.trajectories is None else result.trajectories[sl]
    seconds = result.seconds if seconds is None else seconds
    return GenerateResult(
        result.images[sl], result.latents[sl], result.specs[sl], trajs, result.nfe, seconds, result.sigmas
    )


def join_results(results: Sequence[GenerateResult]) -> GenerateResult:
    """Results of the same run for other seeds as one: images, latents, specs and trajectories in order; ``nfe``
    the largest (each result's counts one image's evaluations), ``seconds`` the sum, the first one's sigmas."""
    if not results:
        raise SdlabError("nothing to join: no results")
    trajs = None if any(r.trajectories is None for r in results) else [t for r in results for t in r.trajectories]
    return GenerateResult(
        torch.cat([r.images for r in results]),
        torch.cat([r.latents for r in results]),
        [spec for r in results for spec in r.specs],
        trajs,
        None if any(r.nfe is None for r in results) else max(r.nfe for r in results),
        sum(r.seconds for r in results),
        results[0].sigmas,
    )


def _seeds(seeds: Sequence[int] | int) -> list[int]:
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise SdlabError("seeds must be a non-empty list of ints", seeds=seeds, hint="e.g. seeds=[0, 1]")
    return [int(s) for s in seeds]
