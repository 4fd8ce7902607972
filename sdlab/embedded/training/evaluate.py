"""How good the embedded model is: VAE fidelity, prompt adherence (with and without CFG), seed diversity.

>>> results = evaluate_model(n=200)      # about 2-3 minutes on 2 CPU cores
>>> print(format_table(results))

``generate_fn(prompts, seeds, sampler, schedule, steps, cfg) -> images`` in [0, 1], shape (B, 3, 64, 64),
with A1111's sampler names ("DPM++ 2M", "Euler") and schedule names ("Karras"). By default it is
``sdlab.generate`` on the shipped model; :func:`diffusers_generate_fn` builds one on diffusers' own pipeline.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sdlab.embedded import pipeline_dir
from sdlab.embedded.training.classifier import check_caption, load_classifier, predict
from sdlab.embedded.training.dataset import make_dataset
from sdlab.errors import SdlabError, closest
from sdlab.generation import generate

__all__ = [
    "GenerateFn", "diffusers_generate_fn", "vae_psnr", "evaluate_model", "format_table", "metrics_json",
    "sample_rows", "SAMPLE_COLUMNS",
]  # fmt: skip

GenerateFn = Callable[[list[str], list[int], str, str, int, float], Any]
MAIN = ("DPM++ 2M", "Karras", 20)  # sampler, schedule, steps of the adherence runs
DIVERSITY_PROMPT = "a red striped circle above a blue square, day sky, on grass"
TARGETS = {"vae_psnr_db": 28.0, "adherence": 0.85, "adherence_gap": 0.15, "diversity_ratio": 3.0}
# Whole-scene attributes, right at CFG 1 as at CFG 5 so far; ``*_objects`` adherence leaves them out to show the
# part of the CFG 5 / CFG 1 gap that guidance can move (reported beside the metric, which counts everything).
SCENE_ATTRIBUTES = ("sky", "ground")


def diffusers_generate_fn(folder: str | Path | None = None, *, batch_size: int = 16) -> GenerateFn:
    """A ``generate_fn`` on diffusers' ``StableDiffusionPipeline`` loaded from ``folder`` (default: shipped).

    Samplers: "DPM++ 2M" (``DPMSolverMultistepScheduler``) and "Euler" (``EulerDiscreteScheduler``);
    schedules "Karras" (``use_karras_sigmas=True``) or "Normal" (any case). Seed ``s`` draws its initial noise from
    ``torch.Generator().manual_seed(s)``.
    """
    import torch
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, StableDiffusionPipeline
    from diffusers.utils import logging

    logging.set_verbosity_error()
    pipe = StableDiffusionPipeline.from_pretrained(str(pipeline_dir(folder)), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    classes = {"DPM++ 2M": DPMSolverMultistepScheduler, "Euler": EulerDiscreteScheduler}

    def fn(prompts: list[str], seeds: list[int], sampler: str, schedule: str, steps: int, cfg: float) -> Any:
        if sampler not in classes:
            raise SdlabError(f"unknown sampler {sampler!r}", sampler=sampler, hint=closest(sampler, classes))
        if schedule.lower() not in ("karras", "normal"):
            raise SdlabError("schedule must be 'Karras' or 'Normal'", schedule=schedule)
        karras = schedule.lower() == "karras"
        pipe.scheduler = classes[sampler].from_config(pipe.scheduler.config, use_karras_sigmas=karras)
        out = []
        for i in range(0, len(prompts), batch_size):
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i : i + batch_size]]
            images = pipe(prompts[i : i + batch_size], num_inference_steps=steps, guidance_scale=cfg, height=64,
                          width=64, generator=gens, output_type="pt").images  # fmt: skip
            out.append(images.float().clamp(0, 1))
        return torch.cat(out)

    return fn


def _default_generate_fn(folder: str | Path | None = None) -> GenerateFn:
    """``sdlab.generate`` on the embedded model, or the pipeline in ``folder`` (one image per prompt and seed)."""
    model = None if folder is None else str(folder)  # sdlab.generate loads it once and caches it

    def fn(prompts: list[str], seeds: list[int], sampler: str, schedule: str, steps: int, cfg: float) -> Any:
        result = generate(
            list(prompts), sampler=sampler, schedule=schedule, steps=steps, cfg=cfg, seeds=list(seeds), model=model
        )
        return result.images

    return fn


def vae_psnr(n: int = 200, *, folder: str | Path | None = None, seed: int = 0) -> float:
    """Mean PSNR (dB, images in [0, 1]) of VAE reconstructions (posterior mean) of ``n`` held-out scenes."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(pipeline_dir(folder)), subfolder="vae", torch_dtype=torch.float32)
    images, _, _ = make_dataset(n, "heldout", seed)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    psnrs = []
    with torch.inference_mode():
        for i in range(0, n, 32):
            batch = x[i : i + 32]
            rec = vae.decode(vae.encode(batch * 2 - 1).latent_dist.mean).sample
            rec = ((rec + 1) / 2).clamp(0, 1)
            mse = ((rec - batch) ** 2).mean(dim=(1, 2, 3))
            psnrs.append(10 * torch.log10(1.0 / mse))
    return float(torch.cat(psnrs).mean())


def _adherence(checks: list[dict[str, list[bool]]], skip: tuple[str, ...] = ()) -> tuple[float, dict[str, float]]:
    """Overall fraction of passed checks and the fraction per kind of attribute (kinds in ``skip`` left out)."""
    kinds = [k for k in checks[0] if k not in skip]
    per = {k: [ok for c in checks for ok in c[k]] for k in kinds}
    overall = [ok for oks in per.values() for ok in oks]
    return float(np.mean(overall)), {k: float(np.mean(v)) for k, v in per.items() if v}


def _score(results: dict[str, Any], key: str, checks: list[dict[str, list[bool]]]) -> None:
    """``results[key]``, ``key_by_attribute`` and ``key_objects`` (without ``SCENE_ATTRIBUTES``) from ``checks``."""
    results[key], results[key + "_by_attribute"] = _adherence(checks)
    results[key + "_objects"] = _adherence(checks, skip=SCENE_ATTRIBUTES)[0]


def _mean_pairwise(images: Any) -> float:
    """Mean RMS distance (pixels in [0, 1]) over all pairs of images."""
    x = images.reshape(len(images), -1).double()
    d = [float(((x[i] - x[j]) ** 2).mean().sqrt()) for i, j in itertools.combinations(range(len(x)), 2)]
    return float(np.mean(d))


def evaluate_model(
    n: int = 200,
    *,
    generate_fn: GenerateFn | None = None,
    seed: int = 0,
    progress: bool = True,
    diversity_seeds: int = 16,
    diversity_steps: int = 100,
    folder: str | Path | None = None,
) -> dict[str, Any]:
    """Measure the embedded model; keys ``vae_psnr_db``, ``adherence``, ``adherence_cfg1``, ``diversity_ratio``.

    * ``vae_psnr_db``: VAE reconstruction PSNR on ``n`` held-out scenes.
    * ``adherence``: fraction of the attributes ``n`` held-out captions prompt (sky, ground, count, each
      colour-kind object, named textures and sizes, relation) that the classifier finds in the images,
      DPM++ 2M Karras, 20 steps, CFG 5; ``adherence_cfg1`` the same at CFG 1; ``adherence_real`` on the
      real held-out scenes (the classifier's ceiling); ``*_by_attribute`` the fractions per kind;
      ``*_objects`` the same without the whole-scene attributes sky and ground (``SCENE_ATTRIBUTES``).
    * ``diversity_ratio``: 16 seeds of one prompt at Euler, 100 steps: mean distance between seeds divided by
      the mean distance between Euler and DPM++ 2M (both Karras, 100 steps, CFG 5) on the same seed.

    ``folder``: a mini-sd pipeline folder to measure instead of the shipped one (its VAE and, without
    ``generate_fn``, its generations; the classifier is always the shipped one). ``samples`` holds the first 16
    captions and their images at CFG 5 and CFG 1 (for a look: :func:`sample_rows`).
    """
    import torch
    from tqdm.auto import tqdm

    gen = generate_fn or _default_generate_fn(folder)
    clf = load_classifier()
    images, captions, attrs = make_dataset(n, "heldout", seed)
    seeds = [seed * 100_000 + i for i in range(n)]
    sampler, schedule, steps = MAIN
    batch = 16
    results: dict[str, Any] = {"n": n, "seed": seed, "vae_psnr_db": vae_psnr(n, seed=seed, folder=folder)}
    real = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    pred = predict(clf, real)
    _score(results, "adherence_real", [check_caption(pred, i, a) for i, a in enumerate(attrs)])
    bar = tqdm(total=2 * math.ceil(n / batch) + 3, desc="evaluate", disable=not progress)
    samples = {}
    for cfg, key in ((5.0, "adherence"), (1.0, "adherence_cfg1")):
        out = []
        for i in range(0, n, batch):
            out.append(gen(captions[i : i + batch], seeds[i : i + batch], sampler, schedule, steps, cfg))
            bar.update(1)
        samples[key] = torch.cat(out).float()
        pred = predict(clf, samples[key])
        _score(results, key, [check_caption(pred, i, a) for i, a in enumerate(attrs)])
    div_seeds = [seed * 100_000 + 50_000 + i for i in range(diversity_seeds)]
    prompts = [DIVERSITY_PROMPT] * diversity_seeds
    euler = gen(prompts, div_seeds, "Euler", "Karras", diversity_steps, 5.0).float()
    bar.update(1)
    dpm = gen(prompts, div_seeds, "DPM++ 2M", "Karras", diversity_steps, 5.0).float()
    bar.update(2)
    bar.close()
    between_seeds = _mean_pairwise(euler)
    between_samplers = float(((euler - dpm) ** 2).flatten(1).mean(1).sqrt().mean())
    results |= {
        "diversity_ratio": between_seeds / max(between_samplers, 1e-12),
        "distance_between_seeds": between_seeds,
        "distance_between_samplers": between_samplers,
    }
    results["samples"] = {"captions": captions[:16]} | {k: v[:16] for k, v in samples.items()}
    return results


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table of the headline metrics against their targets."""
    gap = results["adherence"] - results["adherence_cfg1"]
    gap_objects = results["adherence_objects"] - results["adherence_cfg1_objects"]
    rows = [
        ("VAE PSNR (held-out scenes)", f"{results['vae_psnr_db']:.2f} dB", ">= 28 dB",
         results["vae_psnr_db"] >= TARGETS["vae_psnr_db"]),
        ("adherence, DPM++ 2M Karras 20 steps, CFG 5", f"{results['adherence']:.1%}", ">= 85 %",
         results["adherence"] >= TARGETS["adherence"]),
        ("adherence, same at CFG 1", f"{results['adherence_cfg1']:.1%}", "15 points lower",
         gap >= TARGETS["adherence_gap"]),
        ("  the same gap without sky and ground (objects only)", f"{100 * gap_objects:.1f} pts", "(for reference)",
         None),
        ("adherence of the real scenes (classifier ceiling)", f"{results['adherence_real']:.1%}", "", None),
        ("diversity ratio (seeds / samplers at 100 steps)", f"{results['diversity_ratio']:.2f}", ">= 3",
         results["diversity_ratio"] >= TARGETS["diversity_ratio"]),
    ]  # fmt: skip
    lines = [f"{'metric':<52} {'value':>9}  {'target':<16} ok", "-" * 84]
    for name, value, target, ok in rows:
        lines.append(f"{name:<52} {value:>9}  {target:<16} {'' if ok is None else ('yes' if ok else 'NO')}")
    lines.append("adherence by attribute (CFG 5 / CFG 1 / real):")
    for k, v in results["adherence_by_attribute"].items():
        c1 = results["adherence_cfg1_by_attribute"].get(k, float("nan"))
        r = results["adherence_real_by_attribute"].get(k, float("nan"))
        lines.append(f"  {k:<12} {v:6.1%} / {c1:6.1%} / {r:6.1%}")
    return "\n".join(lines)


def metrics_json(results: dict[str, Any]) -> dict[str, Any]:
    """The numbers of :func:`evaluate_model` (everything but the sample images), ready for ``json.dumps``."""
    return {k: v for k, v in results.items() if k != "samples"}


SAMPLE_COLUMNS = ("CFG 5", "CFG 1")  # the columns of :func:`sample_rows`


def sample_rows(results: dict[str, Any], n: int = 12) -> tuple[list[list[Any]], list[str]]:
    """The first ``n`` held-out captions' images at CFG 5 and CFG 1 (one row each, columns
    :data:`SAMPLE_COLUMNS`) and the captions, ready for :func:`sdlab.viz.image_grid` (``sdlab eval-model --grid``).
    """
    s = results["samples"]
    n = min(n, len(s["captions"]))
    return [[s["adherence"][i], s["adherence_cfg1"][i]] for i in range(n)], list(s["captions"][:n])
