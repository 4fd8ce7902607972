"""Measurements on real generations: how fast each sampler converges, whether a seed gives the same image, how
far ancestral and SDE samplers wander from their deterministic twins, how smooth the CFG and step sweeps are,
and what each sampler costs.

Every experiment returns an :class:`ExperimentResult`: a tidy long-format table (one row per image x step x
metric; ``step = -1`` is the final image), the images it made and notes (e.g. "LPIPS unavailable: ...").
Each row carries the full :class:`~sdlab.spec.RunSpec` of its image as columns (``sampler_options.*`` and
``versions.*`` flattened) and its ``spec_key``, so any number can be reproduced.

>>> import sdlab.experiments as X
>>> res = X.convergence(["Euler", "DPM++ 2M"], steps=(5, 10, 20), seeds=[0, 1])   # the embedded model
>>> res.table.query("comparison == 'reference' and metric == 'latent_rmse'")      # distance to the reference
>>> res.summary[["sampler", "metric", "b", "b_low", "b_high", "steps_to_converge"]]  # fitted exponent, CI

Distances: ``latent_rmse`` between final latents (latent units), SSIM, PSNR and LPIPS between decoded images in
[0, 1] (see :func:`sdlab.metrics.describe_metrics`). LPIPS needs its ImageNet backbone in the torch cache; when it
is missing the experiments go on without it and say so in ``notes``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

import sdlab.metrics as M
from sdlab.errors import SdlabError, closest
from sdlab.generation import GenerateResult, Trajectory, generate, load
from sdlab.spec import RunSpec

__all__ = [
    "ExperimentResult",
    "Reference",
    "DEFAULT_PROMPT",
    "DEFAULT_REFERENCE",
    "DEFAULT_PAIRS",
    "DEFAULT_THRESHOLD",
    "DISTANCES",
    "convergence",
    "stability",
    "ancestral_divergence",
    "predictability",
    "cost",
    "fit_power_law",
    "steps_to_converge",
    "step_deltas",
    "decode_latents",
    "spec_columns",
    "resolve_metrics",
]

DEFAULT_PROMPT = "a red circle above a blue square, sunset sky"  # a caption of the embedded model's training set
DISTANCES = ("latent_rmse", "ssim", "psnr", "lpips")  # every distance an experiment can report
DEFAULT_METRICS = DISTANCES  # LPIPS is dropped with a note when its backbone is not cached
SIMILARITIES = frozenset({"ssim", "psnr"})  # higher is closer; the others are distances (lower is closer)
# "converged" thresholds (sdlab's choice; change them per study): latent RMSE 0.05 is 5 % of the embedded model's
# final-latent spread (std ~1.0); 35 dB PSNR is an RMS pixel error of 1.8 % (~4.5 of 255 levels); SSIM 0.98 and
# LPIPS 0.02 are near-identical images side by side.
DEFAULT_THRESHOLD = {"latent_rmse": 0.05, "psnr": 35.0, "ssim": 0.98, "lpips": 0.02}
DEFAULT_PAIRS = (
    ("Euler a", "Euler"),
    ("DPM2 a", "DPM2"),
    ("DPM++ 2S a", "DPM++ 2M"),
    ("DPM++ SDE", "DPM++ 2M"),
    ("DPM++ 2M SDE", "DPM++ 2M"),
    ("DPM++ 3M SDE", "DPM++ 2M"),
)
"""Each stochastic sampler and the deterministic sampler it is an ancestral / SDE variant of (or closest to)."""

_FIRST_COLUMNS = (
    "experiment",
    "comparison",
    "variant",
    "against",
    "sampler",
    "schedule",
    "steps",
    "seed",
    "cfg",
    "step",
    "sigma",
    "metric",
    "value",
    "nfe",
    "seconds",
    "image",
)


@dataclass
class ExperimentResult:
    """A tidy long-format table, the images it measured (name -> (3, H, W) tensor in [0, 1]) and notes.

    ``summary`` holds per-sampler conclusions where an experiment draws them (fitted exponents, steps to
    converge, the largest jump of a sweep); it is empty otherwise.
    """

    table: pd.DataFrame
    images: dict[str, Any]
    notes: list[str]
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class Reference:
    """The run every result is measured against: a deterministic sampler at many steps, same prompt and seed."""

    sampler: str = "DPM++ 2M"
    schedule: str = "Karras"
    steps: int = 100  # DPM-Solver README: ~50 steps "absolutely converged"; here 40 steps are within 0.014 of it
    options: tuple[tuple[str, Any], ...] = ()  # sampler options (name, value), sorted

    @property
    def label(self) -> str:
        opts = "".join(f" {k}={v}" for k, v in self.options)
        return f"{self.sampler} / {self.schedule} / {self.steps} steps{opts}"

    @classmethod
    def coerce(cls, value: Reference | Mapping[str, Any] | None) -> Reference:
        """None -> :data:`DEFAULT_REFERENCE`; a mapping with sampler, schedule, steps, options -> a Reference."""
        if value is None:
            return DEFAULT_REFERENCE
        if isinstance(value, Reference):
            return value
        if not isinstance(value, Mapping):
            raise SdlabError(
                "reference must be a Reference or a mapping", type=type(value).__name__, hint=f"e.g. {_REF_HINT}"
            )
        unknown = sorted(set(value) - {"sampler", "schedule", "steps", "options", "sampler_options"})
        if unknown:
            raise SdlabError(
                f"unknown reference key(s) {', '.join(unknown)}",
                hint=closest(unknown[0], ("sampler", "schedule", "steps", "sampler_options")),
            )
        options = dict(value.get("options", value.get("sampler_options", {})) or {})
        ref = cls(
            sampler=value.get("sampler", DEFAULT_REFERENCE.sampler),
            schedule=value.get("schedule", "Automatic"),
            steps=value.get("steps", DEFAULT_REFERENCE.steps),
            options=tuple(sorted(options.items())),
        )
        if not isinstance(ref.sampler, str) or not isinstance(ref.schedule, str):
            raise SdlabError("reference sampler and schedule must be names", hint=f"e.g. {_REF_HINT}")
        if not isinstance(ref.steps, int) or isinstance(ref.steps, bool) or ref.steps < 1:
            raise SdlabError("reference steps must be an integer >= 1", steps=ref.steps, hint=f"e.g. {_REF_HINT}")
        return ref


DEFAULT_REFERENCE = Reference()
_REF_HINT = '{"sampler": "DPM++ 2M", "schedule": "Karras", "steps": 100}'


# ---------------------------------------------------------------------------------------------------------------
# shared pieces: metrics, columns, decoding, per-step deltas


def resolve_metrics(metrics: Sequence[str], notes: list[str], *, size: int | None = None) -> tuple[str, ...]:
    """The metrics that can be computed here, in order; LPIPS is dropped with a note when it is unavailable."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    out = []
    for name in metrics:
        if name not in DISTANCES:
            raise SdlabError(f"unknown metric {name!r}", metric=name, hint=closest(name, DISTANCES))
        if name == "lpips":
            reason = lpips_unavailable()
            if reason:
                notes.append(f"LPIPS unavailable: {reason}")
                continue
            if M._flag(M.RANDOM_BACKBONE_ENV):
                notes.append("LPIPS on a RANDOM seeded backbone (SDLAB_LPIPS_RANDOM_BACKBONE=1): plumbing only")
            if size is not None and size < M.LPIPS_MIN_SIZE:
                notes.append(f"images upsampled to {M.LPIPS_MIN_SIZE} px for LPIPS")
        if name not in out:
            out.append(name)
    return tuple(out)


def lpips_unavailable() -> str | None:
    """None when LPIPS can be computed here, else why not. Never downloads: the backbone must be cached."""
    if importlib.util.find_spec("lpips") is None:
        return 'the lpips package is not installed (pip install "sdlab[metrics]")'
    if not M._flag(M.RANDOM_BACKBONE_ENV) and not M.lpips_backbone_path("alex").exists():
        name, url = M.LPIPS_NETS["alex"]
        return f"its AlexNet backbone {name} is not cached in {M.lpips_backbone_path('alex').parent} (from {url})"
    try:
        blank = torch.zeros(1, 3, M.LPIPS_MIN_SIZE, M.LPIPS_MIN_SIZE)
        M.lpips(blank, blank)
    except SdlabError as e:
        return e.message
    return None


def _distances(
    lat_a: Tensor, lat_b: Tensor, img_a: Tensor | None, img_b: Tensor | None, metrics: Sequence[str]
) -> dict[str, Tensor]:
    """Each metric per item of two batches: latent RMSE on latents, the others on images in [0, 1]."""
    out: dict[str, Tensor] = {}
    if "latent_rmse" in metrics:
        out["latent_rmse"] = M.latent_rmse(lat_a, lat_b)
    image = [m for m in metrics if m != "latent_rmse"]
    if image and img_a is not None and img_b is not None:
        out.update(M.compare(img_a, img_b, metrics=image))
    return {k: v.double().cpu() for k, v in out.items()}


def _plain(value: Any) -> Any:
    """Option values with one type per name across runs (ints as floats; bools and strings as they are)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)


def spec_columns(spec: RunSpec) -> dict[str, Any]:
    """The spec's fields as flat columns (``sampler_options.<name>``, ``versions.<package>``) plus ``spec_key``."""
    d = spec.to_dict()
    options, versions = d.pop("sampler_options"), d.pop("versions")
    for name, value in sorted(options.items()):
        d[f"sampler_options.{name}"] = _plain(value)
    for name, value in sorted(versions.items()):
        d[f"versions.{name}"] = value
    d["spec_key"] = spec.key()
    return d


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame, the experiment's own columns first, then the spec's."""
    frame = pd.DataFrame(rows)
    first = [c for c in _FIRST_COLUMNS if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


@torch.no_grad()
def decode_latents(model: Any, latents: Tensor, *, mode: str = "full", batch_size: int = 16) -> Tensor:
    """Latents (B, C, h, w) to images (B, 3, H, W) in [0, 1] on the CPU, ``batch_size`` at a time through the VAE.

    ``mode="tiny"`` goes through the model's tiny decoder (TAESD) instead, ``"preview"`` is A1111's cheap linear
    preview at latent resolution. A float32 VAE decodes in batches (the same arithmetic as ``model.decode``, which
    goes one image at a time); a half-precision VAE goes through ``model.decode`` for its NaN fallback.
    """
    if mode != "full":
        return model.decode_as(latents, mode).float().cpu()
    vae = model.pipe.vae
    if vae.dtype != torch.float32:
        return model.decode(latents)
    config = vae.config
    shift = config.get("shift_factor") or 0.0
    images = []
    for chunk in latents.split(batch_size):
        z = chunk.to(model.device, torch.float32) * (1.0 / config.scaling_factor) + shift
        image = vae.decode(z, return_dict=False)[0]
        images.append(((image.float() + 1) / 2).clamp(0, 1).cpu())
    return torch.cat(images)


def step_deltas(
    trajectory: Trajectory,
    final: Tensor,
    *,
    model: Any = None,
    image_metrics: Sequence[str] = (),
    decode: str = "full",
    decode_every: int = 1,
) -> list[dict[str, Any]]:
    """Per-step convergence within one run, as rows (step, to_step, sigma, comparison, metric, value, nfe, elapsed).

    The denoised (x0) prediction at step i is compared with the one at step i+1 (``comparison="next"``) and with
    the final latent (``"final"``): latent RMSE always, and ``image_metrics`` (ssim, psnr, lpips) on decoded
    predictions when given. ``model`` decodes them in batches; every step costs one VAE decode, so
    ``decode_every=k`` decodes only every k-th step and the last one ("next" then compares each decoded step with
    the next decoded one, see ``to_step``); ``decode="tiny"`` uses the tiny decoder (TAESD: close to the VAE at a
    few % of its cost) and ``"preview"`` A1111's cheap linear preview instead.
    ``nfe`` and ``elapsed`` (seconds, whole batch) are counted from the start of sampling up to that step.
    """
    if not isinstance(decode_every, int) or decode_every < 1:
        raise SdlabError("decode_every must be an integer >= 1", decode_every=decode_every)
    n = len(trajectory)
    if n == 0:
        return []
    den = trajectory.latents("denoised").float()
    fin = final.float().reshape(1, *den.shape[1:])
    every_step = list(range(n))
    # (comparison, metric) -> (steps, to_steps, values)
    found: dict[tuple[str, str], tuple[list[int], list[int], Tensor]] = {}
    if n > 1:
        found["next", "latent_rmse"] = (every_step[:-1], every_step[1:], M.latent_rmse(den[:-1], den[1:]))
    found["final", "latent_rmse"] = (every_step, [-1] * n, M.latent_rmse(den, fin.expand_as(den)))
    if image_metrics:
        if model is None:
            raise SdlabError("per-step image metrics need the model to decode", hint="pass model=")
        picked = sorted({*range(0, n, decode_every), n - 1})
        images = decode_latents(model, torch.cat([den[picked], fin]), mode=decode)
        steps, last = images[:-1], images[-1:]
        if len(steps) > 1:
            for metric, values in M.compare(steps[:-1], steps[1:], metrics=image_metrics).items():
                found["next", metric] = (picked[:-1], picked[1:], values)
        for metric, values in M.compare(steps, last.expand_as(steps), metrics=image_metrics).items():
            found["final", metric] = (picked, [-1] * len(picked), values)
    sigmas, nfes, times = trajectory.column("sigma"), trajectory.column("nfe"), trajectory.column("time")
    rows = []
    for (comparison, metric), (steps_from, steps_to, values) in found.items():
        for i, j, v in zip(steps_from, steps_to, values.tolist(), strict=True):
            rows.append(
                {
                    "comparison": comparison,
                    "step": i,
                    "to_step": j,
                    "sigma": sigmas[i],
                    "metric": metric,
                    "value": float(v),
                    "nfe": int(nfes[i]),
                    "elapsed": float(times[i]),
                }
            )
    return rows


class _Runner:
    """Runs :func:`generate` for one experiment: shared settings, each distinct run once, a progress bar."""

    def __init__(
        self,
        *,
        prompt: str,
        negative_prompt: str,
        seeds: Sequence[int],
        cfg: float,
        model: Any,
        size: Any,
        rng: str,
        progress: bool,
        total: int | None = None,
    ) -> None:
        if not isinstance(prompt, str):
            raise SdlabError("prompt must be a string", type=type(prompt).__name__)
        self.seeds = _seeds(seeds)
        self.common = {"prompt": prompt, "negative_prompt": negative_prompt, "size": size}
        self.cfg, self.rng, self.model = cfg, rng, model
        self.sd = load(model)
        self.cache: dict[str, GenerateResult] = {}
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
        seeds: Sequence[int] | None = None,
        cfg: float | None = None,
        rng: str | None = None,
        dtype: str | None = None,
        latents: Tensor | None = None,
        batch_size: int | None = None,
        fresh: bool = False,
        **options: Any,
    ) -> GenerateResult:
        seeds = list(self.seeds if seeds is None else seeds)
        cfg = self.cfg if cfg is None else cfg
        rng = self.rng if rng is None else rng
        key = repr((sampler, schedule, steps, seeds, cfg, rng, dtype, batch_size, sorted(options.items())))
        cacheable = latents is None and not fresh
        for k in (key + "+traj", key if not trajectory else None):
            if cacheable and k in self.cache:
                return self.cache[k]
        kwargs = dict(
            self.common, sampler=sampler, schedule=schedule, steps=steps, seeds=seeds, cfg=cfg, rng=rng,
            trajectory=trajectory, latents=latents, batch_size=batch_size, **options,
        )  # fmt: skip
        with self._precision(dtype) as model:
            result = generate(model=model, **kwargs)
        if cacheable:
            self.cache[key + ("+traj" if trajectory else "")] = result
        if self.bar is not None:
            self.bar.update(1)
        return result

    @contextlib.contextmanager
    def _precision(self, dtype: str | None) -> Iterator[Any]:
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
        if self.bar is not None:
            self.bar.close()


def _seeds(seeds: Sequence[int] | int) -> list[int]:
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise SdlabError("seeds must be a non-empty list of ints", seeds=seeds, hint="e.g. seeds=[0, 1]")
    return [int(s) for s in seeds]


def _names(values: Sequence[str] | str, what: str) -> list[str]:
    values = [values] if isinstance(values, str) else list(values)
    if not values or not all(isinstance(v, str) for v in values):
        raise SdlabError(f"{what} must be a non-empty list of names", **{what: values})
    return values


def _step_counts(values: Sequence[int] | int, what: str = "steps") -> list[int]:
    values = [values] if isinstance(values, int) else list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise SdlabError(f"{what} must be a non-empty list of integers >= 1", **{what: values}, hint="e.g. (5, 10, 20)")
    return sorted({int(v) for v in values})


def _image_name(spec: RunSpec, *extra: str) -> str:
    """A readable name that tells apart every image an experiment keeps: sampler, schedule, steps, CFG, the
    sampler options given (eta, s_noise, ...), ``extra`` and the seed."""
    options = [f"{k}={_plain(v)}" for k, v in sorted(dict(spec.sampler_options).items())]
    parts = [spec.sampler, spec.schedule_resolved, f"steps={spec.steps}", f"cfg={spec.cfg:g}", *options, *extra]
    return "/".join([*parts, f"seed={spec.seed}"])


def _keep_images(result: GenerateResult, images: dict[str, Any], *extra: str) -> list[str]:
    """Keep ``result``'s images under their names; return the names."""
    names = [_image_name(spec, *extra) for spec in result.specs]
    for k, name in enumerate(names):
        images[name] = result.images[k]
    return names


def _metric_rows(
    result: GenerateResult,
    values: dict[str, Tensor],
    *,
    experiment: str,
    comparison: str,
    variant: str = "",
    against: str = "",
    against_keys: Sequence[str] | None = None,
    against_images: Sequence[str] | None = None,
    images: dict[str, Any] | None = None,
    name_extra: Sequence[str] = (),
    **extra: Any,
) -> list[dict[str, Any]]:
    """One row per image x metric of ``result`` at the final step, spec columns included; images kept by name."""
    rows = []
    per_image = result.seconds / max(1, len(result.specs))
    for k, spec in enumerate(result.specs):
        name = _image_name(spec, *name_extra)
        if images is not None and len(result.images):
            images[name] = result.images[k]
        base = {
            "experiment": experiment,
            "comparison": comparison,
            "variant": variant,
            "against": against,
            "step": -1,
            "sigma": float("nan"),
            "nfe": int(result.nfe),
            "seconds": per_image,
            "image": name,
            **extra,
            **spec_columns(spec),
        }
        if against_keys is not None:
            base["against_key"] = against_keys[k]
        if against_images is not None:
            base["against_image"] = against_images[k]
        for metric, tensor in values.items():
            rows.append({**base, "metric": metric, "value": float(tensor[k])})
    return rows


# ---------------------------------------------------------------------------------------------------------------
# convergence


def convergence(
    samplers: Sequence[str] | str,
    steps: Sequence[int] = (5, 10, 20, 40),
    *,
    prompt: str = DEFAULT_PROMPT,
    seeds: Sequence[int] = (0, 1),
    schedule: str = "Automatic",
    cfg: float = 5.0,
    reference: Reference | Mapping[str, Any] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    threshold: float | Mapping[str, float] | None = None,
    step_image_metrics: Sequence[str] = (),
    step_decode: str = "full",
    step_decode_every: int = 1,
    negative_prompt: str = "",
    model: Any = None,
    size: Any = None,
    rng: str = "GPU",
    progress: bool = False,
    **sampler_options: Any,
) -> ExperimentResult:
    """Step sweeps per sampler: each final result's distance to a reference, within-run per-step deltas, the
    steps needed to converge and a fitted power law of error vs steps.

    The reference (default :data:`DEFAULT_REFERENCE`, DPM++ 2M Karras at 100 steps) runs from the same prompt,
    seeds and CFG. Rows: ``comparison="reference"`` (step -1, every metric), ``"next"`` / ``"final"`` (per step:
    the denoised prediction vs the next one and vs the final latent; latent RMSE, plus ``step_image_metrics`` on
    decoded predictions; :func:`step_deltas` explains ``step_decode`` and ``step_decode_every``). ``summary``:
    :func:`fit_power_law` and :func:`steps_to_converge` per sampler and metric.
    """
    samplers, steps = _names(samplers, "samplers"), _step_counts(steps)
    ref = Reference.coerce(reference)
    notes: list[str] = []
    runner = _Runner(
        prompt=prompt, negative_prompt=negative_prompt, seeds=seeds, cfg=cfg, model=model, size=size, rng=rng,
        progress=progress, total=1 + len(samplers) * len(steps),
    )  # fmt: skip
    side = min(runner.sd.default_size) if size is None else None
    metrics = resolve_metrics(metrics, notes, size=side)
    step_image_metrics = tuple(m for m in resolve_metrics(step_image_metrics, notes) if m != "latent_rmse")
    notes.append(f"reference: {ref.label}, same prompt, seeds and CFG")
    try:
        ref_result = runner(ref.sampler, ref.schedule, ref.steps, **dict(ref.options))
        ref_keys = [s.key() for s in ref_result.specs]
        images: dict[str, Any] = {}
        ref_names = [f"reference/seed={spec.seed}" for spec in ref_result.specs]
        images.update(zip(ref_names, ref_result.images, strict=True))
        rows: list[dict[str, Any]] = []
        for sampler in samplers:
            for n in steps:
                res = runner(sampler, schedule, n, trajectory=True, **sampler_options)
                values = _distances(res.latents, ref_result.latents, res.images, ref_result.images, metrics)
                rows += _metric_rows(
                    res, values, experiment="convergence", comparison="reference", against=ref.label,
                    against_keys=ref_keys, against_images=ref_names, images=images, reference_steps=ref.steps,
                )  # fmt: skip
                per_image = res.seconds / len(res.specs)
                for k, spec in enumerate(res.specs):
                    cols = spec_columns(spec)
                    for row in step_deltas(
                        res.trajectories[k], res.latents[k], model=runner.sd, image_metrics=step_image_metrics,
                        decode=step_decode, decode_every=step_decode_every,
                    ):  # fmt: skip
                        rows.append(
                            {
                                "experiment": "convergence",
                                "variant": "",
                                "against": "this run's " + ("next step" if row["comparison"] == "next" else "final"),
                                "image": _image_name(spec),
                                **row,
                                "seconds": per_image,
                                "reference_steps": ref.steps,
                                **cols,
                            }
                        )
    finally:
        runner.close()
    table = _frame(rows)
    summary = _convergence_summary(table, threshold, metrics)
    return ExperimentResult(table, images, _unique(notes), summary)


def _convergence_summary(
    table: pd.DataFrame, threshold: float | Mapping[str, float] | None, metrics: Sequence[str]
) -> pd.DataFrame:
    by = ["sampler", "schedule_resolved", "metric"]
    conv = steps_to_converge(table, threshold)
    fits = [fit_power_law(table, metric=m) for m in metrics if m not in SIMILARITIES]
    fits = [f for f in fits if len(f)]
    if not fits:
        return conv
    fit = pd.concat(fits, ignore_index=True)
    return fit.merge(conv, on=by, how="outer") if len(conv) else fit


def _reference_rows(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = table[(table["comparison"] == "reference") & (table["step"] == -1) & (table["metric"] == metric)]
    if "against_key" in rows.columns:
        rows = rows[rows["spec_key"] != rows["against_key"]]  # the reference measured against itself
    return rows


def steps_to_converge(
    table: pd.DataFrame,
    threshold: float | Mapping[str, float] | None = None,
    *,
    by: Sequence[str] = ("sampler", "schedule_resolved"),
) -> pd.DataFrame:
    """The first step count from which the distance to the reference stays within ``threshold``, per group.

    ``threshold``: one number (latent RMSE) or ``{metric: value}`` (default :data:`DEFAULT_THRESHOLD`); distances
    must stay <= it, similarities (ssim, psnr) >= it. Per seed first, then the worst seed: ``steps_to_converge``
    is NaN when some seed is not converged at the largest step count measured.
    """
    if threshold is None:
        threshold = DEFAULT_THRESHOLD
    elif not isinstance(threshold, Mapping):
        threshold = {"latent_rmse": float(threshold)}
    out = []
    for metric, limit in threshold.items():
        rows = _reference_rows(table, metric)
        for group, frame in rows.groupby(list(by), dropna=False):
            per_seed = []
            for _, seed_rows in frame.groupby("seed"):
                curve = seed_rows.groupby("steps")["value"].mean().sort_index()
                ok = curve >= limit if metric in SIMILARITIES else curve <= limit
                bad = [s for s, good in ok.items() if not good]
                later = [s for s in curve.index if not bad or s > max(bad)]
                per_seed.append(min(later) if later else math.nan)
            worst = math.nan if any(math.isnan(s) for s in per_seed) else max(per_seed)
            out.append(
                {
                    **dict(zip(by, group, strict=True)),
                    "metric": metric,
                    "threshold": float(limit),
                    "steps_to_converge": worst,
                    "seeds_converged": int(sum(not math.isnan(s) for s in per_seed)),
                    "seeds": len(per_seed),
                }
            )
    return pd.DataFrame(out)


def fit_power_law(
    table: pd.DataFrame,
    *,
    metric: str = "latent_rmse",
    method: str = "loglog",
    confidence: float = 0.95,
    by: Sequence[str] = ("sampler", "schedule_resolved"),
) -> pd.DataFrame:
    """Exponent b of distance-to-reference vs steps, ``d ~ a * steps**b``, with a ``confidence`` interval.

    ``method="loglog"``: least squares of log d on log steps with one intercept per image (prompt x seed), so b
    comes from how each image's distance falls, not from the spread between images (the reference's own run and
    zero distances left out); the CI is Student's t on the slope's standard error. ``method="gaessler"``:
    ``d = a * (steps**b - steps_ref**b)`` (J. Gaessler's stable-diffusion-insights, for a reference that is the
    same sampler at ``steps_ref``), fitted by nonlinear least squares. Published SD 1.x values (Gaessler, mean
    red pixel value vs a 1000-step reference): Euler -0.82, Heun -1.19, DPM2 -1.64, LMS -1.33.
    """
    if method not in ("loglog", "gaessler"):
        raise SdlabError("unknown fit method", method=method, hint="use 'loglog' or 'gaessler'")
    if metric in SIMILARITIES:
        raise SdlabError("fit a distance, not a similarity", metric=metric, hint="latent_rmse or lpips")
    rows = _reference_rows(table, metric)
    rows = rows[np.isfinite(rows["value"]) & (rows["value"] > 0)]
    out = []
    for group, frame in rows.groupby(list(by), dropna=False):
        x, y = frame["steps"].to_numpy(float), frame["value"].to_numpy(float)
        ids = [c for c in ("prompt", "seed") if c in frame.columns]
        image = frame[ids].astype(str).agg("|".join, axis=1).to_numpy() if ids else np.zeros(len(frame), dtype=int)
        fit = {"a": math.nan, "b": math.nan, "b_low": math.nan, "b_high": math.nan, "r2": math.nan}
        if len(np.unique(x)) >= 2:
            fit = _fit_loglog(x, y, image, confidence)
            if method == "gaessler":
                fit = _fit_gaessler(x, y, frame, fit, confidence)
        out.append(
            {
                **dict(zip(by, group, strict=True)),
                "metric": metric,
                "method": method,
                **fit,
                "n": len(x),
                "steps_min": int(x.min()),
                "steps_max": int(x.max()),
            }
        )
    return pd.DataFrame(out)


def _fit_loglog(x: np.ndarray, y: np.ndarray, image: np.ndarray, confidence: float) -> dict[str, float]:
    """Slope of log y on log x with one intercept per image (prompt x seed): each image's own offset is not noise.

    ``a`` is the geometric mean of the images' prefactors; ``r2`` the share of within-image variance explained.
    """
    from scipy import stats

    lx, ly = np.log(x), np.log(y)
    dx, dy = lx.copy(), ly.copy()
    for g in np.unique(image):
        m = image == g
        dx[m] -= lx[m].mean()
        dy[m] -= ly[m].mean()
    sxx = float((dx**2).sum())
    b = float((dx * dy).sum()) / sxx
    log_a = float(np.mean([ly[image == g].mean() - b * lx[image == g].mean() for g in np.unique(image)]))
    resid = dy - b * dx
    ssr, ss_tot = float((resid**2).sum()), float((dy**2).sum())
    r2 = 1 - ssr / ss_tot if ss_tot > 0 else math.nan
    dof = len(x) - len(np.unique(image)) - 1
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * math.sqrt(ssr / dof / sxx) if dof > 0 else math.nan
    return {"a": math.exp(log_a), "b": b, "b_low": b - half, "b_high": b + half, "r2": r2}


def _fit_gaessler(
    x: np.ndarray, y: np.ndarray, frame: pd.DataFrame, start: dict[str, float], confidence: float
) -> dict[str, float]:
    from scipy import optimize, stats

    if "reference_steps" not in frame or frame["reference_steps"].nunique() != 1:
        raise SdlabError("the gaessler fit needs one reference step count per group (a convergence table)")
    x_ref = float(frame["reference_steps"].iloc[0])

    def model(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return a * (x**b - x_ref**b)

    try:
        (a, b), cov = optimize.curve_fit(model, x, y, p0=(start["a"], start["b"]), maxfev=10_000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return {**start, "b": math.nan, "b_low": math.nan, "b_high": math.nan}
    n = len(x)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * math.sqrt(cov[1, 1]) if n > 2 else math.nan
    resid = y - model(x, a, b)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else math.nan
    return {"a": float(a), "b": float(b), "b_low": b - half, "b_high": b + half, "r2": r2}


# ---------------------------------------------------------------------------------------------------------------
# stability


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
    negative_prompt: str = "",
    model: Any = None,
    size: Any = None,
    rng: str = "GPU",
    progress: bool = False,
    **sampler_options: Any,
) -> ExperimentResult:
    """Does one spec give the same image? Each variant vs the base run (batch size 1, ``rng``, model dtype).

    Comparisons: ``rerun`` (the same spec ``reruns`` more times: bit-identical?), ``batch`` (the seed at the first
    and last position of a batch of each size > 1, other seeds beside it), ``rng_source`` (A1111's GPU / CPU /
    NV noise), ``dtype`` (the weights at another dtype; for a model object, autocast; skipped with a note where
    the device cannot), ``perturbation`` (the initial noise plus ``perturbation`` times independent unit noise).
    Metrics: ``identical`` (1 when latents and images are bit-identical), ``max_abs`` (image, [0, 1] units),
    ``max_abs_latent``, and the distances in ``metrics``.
    """
    notes: list[str] = []
    if not isinstance(reruns, int) or reruns < 0:
        raise SdlabError("reruns must be an integer >= 0", reruns=reruns)
    batches = [b for b in _step_counts(batch_sizes, "batch_sizes") if b > 1]
    runner = _Runner(
        prompt=prompt, negative_prompt=negative_prompt, seeds=[seed], cfg=cfg, model=model, size=size, rng=rng,
        progress=progress,
    )  # fmt: skip
    side = min(runner.sd.default_size) if size is None else None
    metrics = resolve_metrics(metrics, notes, size=side)
    base_dtype = str(runner.sd.dtype).removeprefix("torch.")
    rows: list[dict[str, Any]] = []
    images: dict[str, Any] = {}

    def run(**kw: Any) -> GenerateResult:
        return runner(sampler, schedule, steps, fresh=True, **sampler_options, **kw)

    base = run()
    base_key = base.specs[0].key()
    base_name = _image_name(base.specs[0], "base")
    images[base_name] = base.images[0]

    def measure(res: GenerateResult, index: int, comparison: str, variant: str, name: str, **extra: Any) -> None:
        one = _slice_result(res, index)
        values = _stability_values(one, base, metrics)
        rows.extend(
            _metric_rows(
                one, values, experiment="stability", comparison=comparison, variant=variant,
                against="base run", against_keys=[base_key], against_images=[base_name], images=images,
                name_extra=[name], **extra,
            )
        )  # fmt: skip

    try:
        for r in range(1, reruns + 1):
            measure(run(), 0, "rerun", f"rerun {r}", f"rerun{r}")
        filler = [(seed + i) % 2**32 for i in range(1, max(batches, default=1))]
        for b in batches:
            for position in (0, b - 1):
                seeds = filler[: b - 1]
                seeds.insert(position, seed)
                res = run(seeds=seeds, batch_size=b)
                measure(res, position, "batch", f"batch_size={b} position={position}", f"batch{b}pos{position}")
        for source in rng_sources:
            if source != rng:
                measure(run(rng=source), 0, "rng_source", f"rng={source}", f"rng{source}")
        for dtype in dtypes:
            if dtype == base_dtype:
                continue
            how = "weights" if model is None or isinstance(model, str) else "autocast"
            try:
                res = run(dtype=dtype)
            except (SdlabError, RuntimeError, TypeError, NotImplementedError) as e:
                notes.append(f"dtype {dtype} skipped on {runner.sd.device.type}: {type(e).__name__}: {e}")
                continue
            measure(res, 0, "dtype", f"dtype={dtype} ({how})", dtype)
        if perturbation:
            delta = _perturbation(base, runner.sd, float(perturbation), seed)
            res = run(latents=delta)
            variant = f"initial noise + {perturbation:g} x unit noise"
            measure(res, 0, "perturbation", variant, "perturbed", initial_rmse=float(delta.pow(2).mean().sqrt()))
    finally:
        runner.close()
    return ExperimentResult(_frame(rows), images, _unique(notes))


def _slice_result(res: GenerateResult, index: int) -> GenerateResult:
    """The ``index``-th image of a result as a result of its own (batch-level nfe and time kept)."""
    sl = slice(index, index + 1)
    trajs = None if res.trajectories is None else res.trajectories[sl]
    return GenerateResult(res.images[sl], res.latents[sl], res.specs[sl], trajs, res.nfe, res.seconds, res.sigmas)


def _stability_values(one: GenerateResult, base: GenerateResult, metrics: Sequence[str]) -> dict[str, Tensor]:
    same = torch.equal(one.latents, base.latents) and torch.equal(one.images, base.images)
    values = {
        "identical": torch.tensor([float(same)], dtype=torch.float64),
        "max_abs": (one.images - base.images).abs().flatten(1).amax(1).double(),
        "max_abs_latent": (one.latents.float() - base.latents.float()).abs().flatten(1).amax(1).double(),
    }
    values.update(_distances(one.latents, base.latents, one.images, base.images, metrics))
    return values


def _perturbation(base: GenerateResult, sd: Any, size: float, seed: int) -> Tensor:
    """``size`` times unit noise (its own generator) at the scale of the initial noise, as ``latents=``."""
    from sdlab.generation import init_noise_scale
    from sdlab.samplers import resolve_sampler

    scale = init_noise_scale(resolve_sampler(base.specs[0].sampler), base.sigmas).float()
    gen = torch.Generator("cpu").manual_seed(seed + 1)
    return size * scale * torch.randn(tuple(base.latents.shape), generator=gen)


# ---------------------------------------------------------------------------------------------------------------
# ancestral divergence


def ancestral_divergence(
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    steps: Sequence[int] = (10, 20, 40),
    eta: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    *,
    eta_steps: int | None = None,
    prompt: str = DEFAULT_PROMPT,
    seeds: Sequence[int] = (0, 1),
    schedule: str = "Automatic",
    cfg: float = 5.0,
    metrics: Sequence[str] = DEFAULT_METRICS,
    negative_prompt: str = "",
    model: Any = None,
    size: Any = None,
    rng: str = "GPU",
    progress: bool = False,
) -> ExperimentResult:
    """How far each ancestral / SDE sampler lands from its deterministic twin, and whether it settles.

    For each pair (stochastic, deterministic) and step count N, both on one schedule ("Automatic" takes the
    stochastic sampler's): ``vs_deterministic`` (the two at N steps), ``n_to_n+1`` (each sampler at N vs N+1
    steps: a converging sampler's change shrinks with N, an ancestral one's does not), and ``eta`` (the
    stochastic sampler at each eta vs the twin, at ``eta_steps``, default the largest N; eta 0 removes the
    noise). Samplers without an eta option skip the eta sweep with a note.
    """
    from sdlab.generation import schedule_for
    from sdlab.samplers import resolve_sampler, sampler_options

    steps = _step_counts(steps)
    eta_steps = max(steps) if eta_steps is None else eta_steps
    pairs = [tuple(p) for p in pairs]
    if not pairs or any(len(p) != 2 or not all(isinstance(n, str) for n in p) for p in pairs):
        raise SdlabError("pairs must be (stochastic, deterministic) sampler names", pairs=pairs)
    notes: list[str] = []
    runner = _Runner(
        prompt=prompt, negative_prompt=negative_prompt, seeds=seeds, cfg=cfg, model=model, size=size, rng=rng,
        progress=progress, total=len(pairs) * (4 * len(steps) + len(eta)),
    )  # fmt: skip
    side = min(runner.sd.default_size) if size is None else None
    metrics = resolve_metrics(metrics, notes, size=side)
    rows: list[dict[str, Any]] = []
    images: dict[str, Any] = {}

    def compare(a: GenerateResult, b: GenerateResult, comparison: str, pair: str, **extra: Any) -> None:
        values = _distances(a.latents, b.latents, a.images, b.images, metrics)
        against = f"{b.specs[0].sampler} at {b.specs[0].steps} steps"
        rows.extend(
            _metric_rows(
                a, values, experiment="ancestral_divergence", comparison=comparison, against=against,
                against_keys=[s.key() for s in b.specs], against_images=_keep_images(b, images), images=images,
                pair=pair, **extra,
            )
        )  # fmt: skip

    try:
        for stochastic, deterministic in pairs:
            pair = f"{stochastic} vs {deterministic}"
            sched = schedule
            if schedule.lower() == "automatic":
                sched = schedule_for(stochastic, "Automatic", max(steps), runner.sd)[1]
            for n in steps:
                s_n, d_n = runner(stochastic, sched, n), runner(deterministic, sched, n)
                s_next, d_next = runner(stochastic, sched, n + 1), runner(deterministic, sched, n + 1)
                compare(s_n, d_n, "vs_deterministic", pair, eta=_eta(s_n))
                compare(s_n, s_next, "n_to_n+1", pair, eta=_eta(s_n))
                compare(d_n, d_next, "n_to_n+1", pair, eta=math.nan)
            if not eta:
                continue
            if "eta" not in sampler_options(resolve_sampler(stochastic).info.fn):
                notes.append(f"{stochastic} has no eta option: no eta sweep")
                continue
            twin = runner(deterministic, sched, eta_steps)
            for e in eta:
                res = runner(stochastic, sched, eta_steps, eta=float(e))
                compare(res, twin, "eta", pair, eta=float(e))
    finally:
        runner.close()
    return ExperimentResult(_frame(rows), images, notes)


def _unique(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))


def _eta(result: GenerateResult) -> float:
    value = dict(result.specs[0].sampler_options).get("eta")
    return math.nan if value is None else float(value)


# ---------------------------------------------------------------------------------------------------------------
# predictability


def predictability(
    sampler: str = "DPM++ 2M",
    cfgs: Sequence[float] = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0),
    steps: Sequence[int] = (10, 12, 14, 16, 18, 20, 25, 30),
    *,
    cfg: float = 5.0,
    at_steps: int = 20,
    prompt: str = DEFAULT_PROMPT,
    seeds: Sequence[int] = (0, 1),
    schedule: str = "Automatic",
    metrics: Sequence[str] = DEFAULT_METRICS,
    negative_prompt: str = "",
    model: Any = None,
    size: Any = None,
    rng: str = "GPU",
    progress: bool = False,
    **sampler_options: Any,
) -> ExperimentResult:
    """How smoothly the image changes along a CFG sweep (at ``at_steps``) and a step sweep (at ``cfg``).

    Rows compare neighbouring settings (``comparison="cfg"`` / ``"steps"``, columns ``setting_from`` and
    ``setting_to``). ``summary``: per sweep and metric, the largest jump (mean over seeds) and where it is.
    """
    if not cfgs or any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in cfgs):
        raise SdlabError("cfgs must be a non-empty list of numbers", cfgs=cfgs, hint="e.g. (3, 5, 7)")
    cfgs = sorted({float(c) for c in cfgs})
    steps = _step_counts(steps)
    notes: list[str] = []
    runner = _Runner(
        prompt=prompt, negative_prompt=negative_prompt, seeds=seeds, cfg=cfg, model=model, size=size, rng=rng,
        progress=progress, total=len(cfgs) + len(steps),
    )  # fmt: skip
    side = min(runner.sd.default_size) if size is None else None
    metrics = resolve_metrics(metrics, notes, size=side)
    rows: list[dict[str, Any]] = []
    images: dict[str, Any] = {}
    try:
        sweeps = {
            "cfg": [(c, runner(sampler, schedule, at_steps, cfg=c, **sampler_options)) for c in cfgs],
            "steps": [(float(n), runner(sampler, schedule, n, **sampler_options)) for n in steps],
        }
        for comparison, runs in sweeps.items():
            for (a_value, a), (b_value, b) in zip(runs, runs[1:], strict=False):
                values = _distances(a.latents, b.latents, a.images, b.images, metrics)
                rows += _metric_rows(
                    a, values, experiment="predictability", comparison=comparison,
                    variant=f"{comparison} {a_value:g} -> {b_value:g}",
                    against=f"{comparison} = {b_value:g}", against_keys=[s.key() for s in b.specs],
                    against_images=_keep_images(b, images), images=images, setting_from=a_value, setting_to=b_value,
                )  # fmt: skip
    finally:
        runner.close()
    table = _frame(rows)
    return ExperimentResult(table, images, notes, _largest_jumps(table))


def _largest_jumps(table: pd.DataFrame) -> pd.DataFrame:
    """Per sweep and metric: the neighbouring pair of settings whose images differ most (mean over seeds)."""
    out = []
    if table.empty:
        return pd.DataFrame(out)
    for (comparison, metric), frame in table.groupby(["comparison", "metric"]):
        means = frame.groupby(["setting_from", "setting_to"])["value"].mean()
        means = means[np.isfinite(means)] if metric in SIMILARITIES else means
        if means.empty:
            continue
        where = means.idxmin() if metric in SIMILARITIES else means.idxmax()
        out.append(
            {
                "sweep": comparison,
                "metric": metric,
                "largest_jump": float(means[where]),
                "from": where[0],
                "to": where[1],
                "median_jump": float(means.median()),
            }
        )
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------------------------
# cost


def cost(
    samplers: Sequence[str] | str,
    steps: Sequence[int] = (10, 20),
    *,
    prompt: str = DEFAULT_PROMPT,
    seeds: Sequence[int] = (0,),
    schedule: str = "Automatic",
    cfg: float = 5.0,
    repeats: int = 1,
    negative_prompt: str = "",
    model: Any = None,
    size: Any = None,
    rng: str = "GPU",
    progress: bool = False,
    **sampler_options: Any,
) -> ExperimentResult:
    """Model evaluations and wall time per image for every sampler and step count (best of ``repeats``).

    Metrics: ``nfe`` (model evaluations per image; each is one batched UNet call, CFG included),
    ``nfe_per_step``, ``seconds_per_image`` (sampling plus VAE decode) and ``ms_per_nfe``. One warm-up run
    comes first, so the model load and first-call costs are not counted.
    """
    samplers, steps = _names(samplers, "samplers"), _step_counts(steps)
    if not isinstance(repeats, int) or repeats < 1:
        raise SdlabError("repeats must be an integer >= 1", repeats=repeats)
    runner = _Runner(
        prompt=prompt, negative_prompt=negative_prompt, seeds=seeds, cfg=cfg, model=model, size=size, rng=rng,
        progress=progress, total=1 + len(samplers) * len(steps) * repeats,
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    images: dict[str, Any] = {}
    notes = [f"device {runner.sd.device}, dtype {runner.sd.dtype}, {torch.get_num_threads()} CPU threads"]
    try:
        runner(samplers[0], schedule, 1, fresh=True, **sampler_options)  # warm-up
        for sampler in samplers:
            for n in steps:
                best = min(
                    (runner(sampler, schedule, n, fresh=True, **sampler_options) for _ in range(repeats)),
                    key=lambda r: r.seconds,
                )
                per_image = best.seconds / len(best.specs)
                values = {
                    "nfe": float(best.nfe),
                    "nfe_per_step": best.nfe / n,
                    "seconds_per_image": per_image,
                    "ms_per_nfe": 1000 * per_image / max(1, best.nfe),
                }
                tensors = {k: torch.full((len(best.specs),), v, dtype=torch.float64) for k, v in values.items()}
                rows += _metric_rows(best, tensors, experiment="cost", comparison="cost", images=images)
    finally:
        runner.close()
    return ExperimentResult(_frame(rows), images, notes)
