"""What every experiment family shares: the result type, the reference run, the distances and how they are chosen,
the spec as table columns, and the rows, image names and input checks the families build their tables from.

Rows are long format (one per image x step x metric; ``step = -1`` is the final image), each with the experiment's
own columns first and then the image's full :class:`~sdlab.spec.RunSpec` (:func:`spec_columns`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.generation import GenerateResult
from sdlab.measure.metrics import (
    HIGHER_IS_CLOSER,
    LPIPS_MIN_SIZE,
    PERCEPTUAL_FALLBACKS,
    compare,
    default_perceptual,
    latent_rmse,
    lpips_random_backbone,
    lpips_unavailable,
    metric_unavailable,
)
from sdlab.measure.runs import Runner, RunSettings
from sdlab.spec import RunSpec

__all__ = [
    "ExperimentResult",
    "Reference",
    "DEFAULT_PROMPT",
    "DEFAULT_REFERENCE",
    "DISTANCES",
    "DEFAULT_METRICS",
    "SIMILARITIES",
    "resolve_metrics",
    "distances",
    "spec_columns",
    "start_runs",
    "tidy",
    "image_name",
    "keep_images",
    "metric_rows",
    "versus",
    "check_names",
    "check_step_counts",
    "unique",
]

DEFAULT_PROMPT = "a red circle above a blue square, sunset sky"  # a caption of the embedded model's training set
DISTANCES = ("latent_rmse", "ssim", "psnr", "lpips", *PERCEPTUAL_FALLBACKS)  # every metric an experiment can report
# LPIPS is replaced, with a note, by its offline stand-in (default_perceptual) when its backbone cannot be had
DEFAULT_METRICS = ("latent_rmse", "ssim", "psnr", "lpips")
SIMILARITIES = HIGHER_IS_CLOSER  # higher is closer; the others are distances (lower is closer)

FIRST_COLUMNS = (
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
"""The experiments' own columns, in this order, before the spec's."""


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
# distances


def resolve_metrics(metrics: Sequence[str], notes: list[str], *, size: int | None = None) -> tuple[str, ...]:
    """The metrics that can be computed here, in order; where LPIPS cannot run, its offline stand-in
    (:func:`~sdlab.measure.metrics.default_perceptual`) takes its place, with a note naming both."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    out = []
    for name in metrics:
        if name not in DISTANCES:
            raise SdlabError(f"unknown metric {name!r}", metric=name, hint=closest(name, DISTANCES))
        if name == "lpips":
            reason = lpips_unavailable()
            if reason:
                name = default_perceptual()
                notes.append(f"LPIPS unavailable: {reason}; {name} reported instead")
            elif lpips_random_backbone():
                notes.append("LPIPS on a RANDOM seeded backbone (SDLAB_LPIPS_RANDOM_BACKBONE=1): plumbing only")
            if name == "lpips" and size is not None and size < LPIPS_MIN_SIZE:
                notes.append(f"images upsampled to {LPIPS_MIN_SIZE} px for LPIPS")
        elif name in PERCEPTUAL_FALLBACKS and (reason := metric_unavailable(name)):
            raise SdlabError(
                f"metric {name} is unavailable: {reason}", metric=name, hint=f"install it or leave {name} out"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def distances(
    lat_a: Tensor, lat_b: Tensor, img_a: Tensor | None, img_b: Tensor | None, metrics: Sequence[str]
) -> dict[str, Tensor]:
    """Each metric per item of two batches (float64 on the CPU): latent RMSE on latents, the others on images in
    [0, 1] (left out when either image batch is None)."""
    out: dict[str, Tensor] = {}
    if "latent_rmse" in metrics:
        out["latent_rmse"] = latent_rmse(lat_a, lat_b)
    image = [m for m in metrics if m != "latent_rmse"]
    if image and img_a is not None and img_b is not None:
        out.update(compare(img_a, img_b, metrics=image))
    return {k: v.double().cpu() for k, v in out.items()}


def start_runs(
    metrics: Sequence[str], notes: list[str], settings: RunSettings, **runner_settings: Any
) -> tuple[Runner, tuple[str, ...]]:
    """An experiment's :class:`~sdlab.measure.runs.Runner` (its run ``settings`` and ``runner_settings``: prompt,
    seeds, cfg, total) and the metrics it can report (:func:`resolve_metrics`, told the model's image side when
    the size is its default)."""
    runner = settings.runner(**runner_settings)
    side = min(runner.sd.default_size) if settings.size is None else None
    return runner, resolve_metrics(metrics, notes, size=side)


# ---------------------------------------------------------------------------------------------------------------
# rows and columns


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


def tidy(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame, the experiment's own columns first (:data:`FIRST_COLUMNS`), then the spec's."""
    frame = pd.DataFrame(rows)
    first = [c for c in FIRST_COLUMNS if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def image_name(spec: RunSpec, *extra: str) -> str:
    """A readable name that tells apart every image an experiment keeps: sampler, schedule, steps, CFG, the
    sampler options given (eta, s_noise, ...), ``extra`` and the seed."""
    options = [f"{k}={_plain(v)}" for k, v in sorted(dict(spec.sampler_options).items())]
    parts = [spec.sampler, spec.schedule_resolved, f"steps={spec.steps}", f"cfg={spec.cfg:g}", *options, *extra]
    return "/".join([*parts, f"seed={spec.seed}"])


def keep_images(result: GenerateResult, images: dict[str, Any], *extra: str) -> list[str]:
    """Keep ``result``'s images under their names; return the names."""
    names = [image_name(spec, *extra) for spec in result.specs]
    for k, name in enumerate(names):
        images[name] = result.images[k]
    return names


def metric_rows(
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
        name = image_name(spec, *name_extra)
        if images is not None and len(result.images):
            images[name] = result.images[k]
        base = {
            "experiment": experiment,
            "comparison": comparison,
            "variant": variant,
            "against": against,
            "step": -1,
            "sigma": float("nan"),
            "nfe": None if result.nfe is None else int(result.nfe),  # None: the denoiser keeps no count
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


def versus(
    a: GenerateResult, b: GenerateResult, metrics: Sequence[str], images: dict[str, Any], **columns: Any
) -> list[dict[str, Any]]:
    """:func:`metric_rows` of ``a``'s :func:`distances` to ``b``, image by image; both runs' images kept in
    ``images`` (``b``'s first), ``b``'s spec keys and image names in ``against_key`` and ``against_image``."""
    values = distances(a.latents, b.latents, a.images, b.images, metrics)
    against_images = keep_images(b, images)
    return metric_rows(
        a, values, against_keys=[s.key() for s in b.specs], against_images=against_images, images=images, **columns
    )


# ---------------------------------------------------------------------------------------------------------------
# input checks


def check_names(values: Sequence[str] | str, what: str) -> list[str]:
    """One name or a non-empty list of names, as a list."""
    values = [values] if isinstance(values, str) else list(values)
    if not values or not all(isinstance(v, str) for v in values):
        raise SdlabError(f"{what} must be a non-empty list of names", **{what: values})
    return values


def check_step_counts(values: Sequence[int] | int, what: str = "steps") -> list[int]:
    """One count or a non-empty list of integers >= 1, as a sorted list without repeats."""
    values = [values] if isinstance(values, int) else list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise SdlabError(f"{what} must be a non-empty list of integers >= 1", **{what: values}, hint="e.g. (5, 10, 20)")
    return sorted({int(v) for v in values})


def unique(notes: list[str]) -> list[str]:
    """The notes without repeats, in order."""
    return list(dict.fromkeys(notes))
