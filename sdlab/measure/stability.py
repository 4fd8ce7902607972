"""Stability: does one spec give the same image? The same run again, in a batch, with another noise source, at
another dtype and from slightly perturbed initial noise, each against the base run.

>>> from sdlab.measure import stability
>>> res = stability(steps=10, reruns=2)                                           # the embedded model
>>> res.table.pivot_table("value", ["comparison", "variant"], "metric")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.generation import GenerateResult, init_noise_scale
from sdlab.measure.common import (
    DEFAULT_METRICS,
    DEFAULT_PROMPT,
    ExperimentResult,
    check_step_counts,
    distances,
    image_name,
    metric_rows,
    start_runs,
    tidy,
    unique,
)
from sdlab.measure.runs import Runner, RunSettings, slice_result
from sdlab.samplers import resolve_sampler

__all__ = ["stability"]


def stability(
    prompt: str = DEFAULT_PROMPT,
    *,
    sampler: str = "DPM++ 2M",
    schedule: str = "Automatic",
    steps: int = 20,
    cfg: float = 5.0,
    seed: int = 0,
    reruns: int = 3,
    batch_sizes: Sequence[int] = (1, 4),
    rng_sources: Sequence[str] = ("GPU", "CPU", "NV"),
    dtypes: Sequence[str] = ("float32", "bfloat16", "float16"),
    perturbation: float = 1e-3,
    metrics: Sequence[str] = DEFAULT_METRICS,
    **options: Any,
) -> ExperimentResult:
    """Does one spec give the same image? Each variant vs the base run (batch size 1, the run settings' ``rng``,
    model dtype).

    Comparisons: ``rerun`` (the same spec ``reruns`` more times: bit-identical?), ``batch`` (the seed at the first
    and last position of a batch of each size > 1, other seeds beside it), ``rng_source`` (A1111's GPU / CPU /
    NV noise), ``dtype`` (the weights at another dtype; for a model object, autocast; skipped with a note where
    the device cannot), ``perturbation`` (the initial noise plus ``perturbation`` times independent unit noise).
    Metrics: ``identical`` (1 when latents and images are bit-identical), ``max_abs`` (image, [0, 1] units),
    ``max_abs_latent``, and the distances in ``metrics``. ``options``: the run settings
    (:class:`~sdlab.measure.runs.RunSettings`: negative_prompt, model, size, rng, progress) and sampler options.
    """
    notes: list[str] = []
    if not isinstance(reruns, int) or reruns < 0:
        raise SdlabError("reruns must be an integer >= 0", reruns=reruns)
    batches = [b for b in check_step_counts(batch_sizes, "batch_sizes") if b > 1]
    settings, sampler_options = RunSettings.split(options)
    runner, metrics = start_runs(metrics, notes, settings, prompt=prompt, seeds=[seed], cfg=cfg)
    rows: list[dict[str, Any]] = []
    images: dict[str, Any] = {}

    def run(**kw: Any) -> GenerateResult:
        return runner(sampler, schedule, steps, fresh=True, **sampler_options, **kw)

    with runner:
        base = run()
        base_key = base.specs[0].key()
        base_name = image_name(base.specs[0], "base")
        images[base_name] = base.images[0]
        variants = _variants(
            run, runner, base, seed=seed, reruns=reruns, batches=batches, rng=settings.rng, rng_sources=rng_sources,
            dtypes=dtypes, perturbation=perturbation, notes=notes,
        )  # fmt: skip
        for res, index, comparison, variant, name, extra in variants:
            one = slice_result(res, index)
            rows += metric_rows(
                one, _stability_values(one, base, metrics), experiment="stability", comparison=comparison,
                variant=variant, against="base run", against_keys=[base_key], against_images=[base_name],
                images=images, name_extra=[name], **extra,
            )  # fmt: skip
    return ExperimentResult(tidy(rows), images, unique(notes))


def _variants(
    run: Callable[..., GenerateResult],
    runner: Runner,
    base: GenerateResult,
    *,
    seed: int,
    reruns: int,
    batches: Sequence[int],
    rng: str,
    rng_sources: Sequence[str],
    dtypes: Sequence[str],
    perturbation: float,
    notes: list[str],
) -> Iterator[tuple[GenerateResult, int, str, str, str, dict[str, Any]]]:
    """Each variant of the base run, made when asked for: (result, index of the seed's image in it, comparison,
    variant, image name suffix, extra columns). Dtypes the device cannot run are skipped with a note."""
    for r in range(1, reruns + 1):
        yield run(), 0, "rerun", f"rerun {r}", f"rerun{r}", {}
    filler = [(seed + i) % 2**32 for i in range(1, max(batches, default=1))]
    for b in batches:
        for position in (0, b - 1):
            seeds = filler[: b - 1]
            seeds.insert(position, seed)
            res = run(seeds=seeds, batch_size=b)
            yield res, position, "batch", f"batch_size={b} position={position}", f"batch{b}pos{position}", {}
    for source in rng_sources:
        if source != rng:
            yield run(rng=source), 0, "rng_source", f"rng={source}", f"rng{source}", {}
    base_dtype = str(runner.sd.dtype).removeprefix("torch.")
    for dtype in dtypes:
        if dtype == base_dtype:
            continue
        how = "weights" if runner.model is None or isinstance(runner.model, str) else "autocast"
        try:
            res = run(dtype=dtype)
        except (SdlabError, RuntimeError, TypeError, NotImplementedError) as e:
            notes.append(f"dtype {dtype} skipped on {runner.sd.device.type}: {type(e).__name__}: {e}")
            continue
        yield res, 0, "dtype", f"dtype={dtype} ({how})", dtype, {}
    if perturbation:
        delta = _perturbation(base, runner.sd, float(perturbation), seed)
        variant = f"initial noise + {perturbation:g} x unit noise"
        extra = {"initial_rmse": float(delta.pow(2).mean().sqrt())}
        yield run(latents=delta), 0, "perturbation", variant, "perturbed", extra


def _stability_values(one: GenerateResult, base: GenerateResult, metrics: Sequence[str]) -> dict[str, Tensor]:
    same = torch.equal(one.latents, base.latents) and torch.equal(one.images, base.images)
    values = {
        "identical": torch.tensor([float(same)], dtype=torch.float64),
        "max_abs": (one.images - base.images).abs().flatten(1).amax(1).double(),
        "max_abs_latent": (one.latents.float() - base.latents.float()).abs().flatten(1).amax(1).double(),
    }
    values.update(distances(one.latents, base.latents, one.images, base.images, metrics))
    return values


def _perturbation(base: GenerateResult, sd: Any, size: float, seed: int) -> Tensor:
    """``size`` times unit noise (its own generator) at the scale of the initial noise, as ``latents=``."""
    scale = init_noise_scale(resolve_sampler(base.specs[0].sampler), base.sigmas).float()
    gen = torch.Generator("cpu").manual_seed(seed + 1)
    return size * scale * torch.randn(tuple(base.latents.shape), generator=gen)
