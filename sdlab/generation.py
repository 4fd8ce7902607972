"""Text to image with any sampler and schedule, A1111's way, with the full trajectory when asked.

>>> import sdlab
>>> result = sdlab.generate("a red circle above a blue square, sunset sky", sampler="Euler a", steps=20,
...                         seeds=[1, 2])                           # the embedded model by default
>>> result.images.shape                                             # (batch, 3, H, W) in [0, 1]
torch.Size([2, 3, 64, 64])

Every argument is checked before any model work; :func:`check_run` dry-runs a sampler on its schedule.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sdlab import limits
from sdlab.errors import SdlabError
from sdlab.infotext import format_infotext, write_new_png
from sdlab.inputs import listed, parse_size, per_image, seed_list, whole
from sdlab.models import load_model
from sdlab.models.denoisers import LCMEpsDenoiser, training_sigmas
from sdlab.models.loading import SDModel, resolve_device
from sdlab.noise import rng as rng_mod
from sdlab.samplers import sample
from sdlab.samplers.catalogue import ResolvedSampler, resolve_sampler
from sdlab.samplers.diffusers_engine import scheduler_sigmas
from sdlab.schedules import get_sigmas
from sdlab.schedules.timesteps import TIMESTEP_SIGMAS
from sdlab.spec import RunSpec

__all__ = [
    "generate",
    "load",
    "is_loaded",
    "unload_models",
    "schedule_for",
    "check_run",
    "parse_size",
    "init_noise_scale",
    "GenerateResult",
    "Trajectory",
    "trajectory_storage",
]

MAX_STEPS = 1000
MODEL_CACHE_SIZE = 2  # loaded models kept per process (least recently used first out); unload_models() frees all
_MODELS: OrderedDict[tuple[str, str, str], Any] = OrderedDict()


# what generate() uses of a model object (an SDModel, or anything with the same interface)
MODEL_INTERFACE = ("device", "dtype", "model_id", "model_hash", "default_size", "latent_shape", "encode_prompt",
                   "denoiser", "decode")  # fmt: skip


def load(model: Any = None, *, device: str | None = None, dtype: Any = None) -> Any:
    """The model for ``model`` (None = the embedded one; a hub id, folder or file; or an SDModel), cached.

    A model object is returned as it is; ``device`` and ``dtype``, when given, must be the ones it is loaded on.
    """
    if model is not None and not isinstance(model, (str, Path)):
        _check_model_object(model, device, dtype)
        return model
    key = _model_key(model, device, dtype)
    if key not in _MODELS:
        loaded = load_model(model, device=device, dtype=dtype)
        while len(_MODELS) >= MODEL_CACHE_SIZE:
            _MODELS.popitem(last=False)
            _free_memory()
        _MODELS[key] = loaded
    _MODELS.move_to_end(key)
    return _MODELS[key]


def is_loaded(model: str | Path | None = None, *, device: str | None = None, dtype: Any = None) -> bool:
    """Whether :func:`load` holds this model already (so the next call costs nothing)."""
    return _model_key(model, device, dtype) in _MODELS


def unload_models() -> int:
    """Drop every model :func:`load` holds (and free their GPU memory); returns how many were dropped."""
    count = len(_MODELS)
    _MODELS.clear()
    _free_memory()
    return count


def _model_key(model: str | Path | None, device: str | None, dtype: Any) -> tuple[str, str, str]:
    """One key per model, device and dtype as they resolve: None and "embedded", device None and "cpu" alike."""

    dev, dt = resolve_device(device, dtype)
    name = "embedded" if model is None or str(model) == "embedded" else str(Path(str(model)).expanduser())
    return name, str(dev), str(dt)


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _check_model_object(model: Any, device: Any, dtype: Any) -> None:

    if not isinstance(model, SDModel):  # duck typing: hasattr on an SDModel would hash its weights
        missing = [name for name in MODEL_INTERFACE if not hasattr(model, name)]
        if missing:
            raise SdlabError(
                "model must be None (the embedded model), a hub id, a folder or file path, or a loaded model",
                model=type(model).__name__,
                missing=missing,
                hint="pass a path or hub id, load one with sdlab.load_model(...), or wrap a diffusers pipeline "
                "with sdlab.models.wrap_pipeline(pipe)",
            )
    if device is None and dtype is None:
        return
    have = torch.device(model.device)
    want, want_dtype = resolve_device(have if device is None else device, dtype)
    if device is not None and (want.type != have.type or want.index not in (None, have.index or 0)):
        raise SdlabError(
            f"the model is loaded on {have}, not on {want}",
            device=str(device),
            model_device=str(have),
            hint="leave device out for a loaded model, or load it on that device",
        )
    if dtype is not None and want_dtype != model.dtype:
        raise SdlabError(
            f"the model is loaded in {str(model.dtype).removeprefix('torch.')}, "
            f"not in {str(want_dtype).removeprefix('torch.')}",
            dtype=str(dtype),
            hint="leave dtype out for a loaded model, or load it at that dtype",
        )


def schedule_for(
    sampler: str | ResolvedSampler,
    schedule: str,
    steps: int,
    model: Any = None,
    *,
    always_discard_penultimate: bool = False,
    **schedule_options: Any,
) -> tuple[Tensor, str]:
    """The sigmas A1111 (or ComfyUI) would run ``sampler`` on, and the name of the schedule it resolved to.

    "Automatic" takes the schedule the name carries ("DPM++ 2M Karras"), else the sampler's A1111 default; A1111's
    DDIM, PLMS and UniPC then run on their own fixed timesteps (given here as the matching sigmas).
    ``schedule_options`` go to :func:`sdlab.schedules.get_sigmas` (sigma_min, sigma_max, rho, dtype, ...), for a
    diffusers scheduler to its sigmas (the scheduler's own options).
    """

    resolved = resolve_sampler(sampler)
    info = resolved.info
    name = schedule
    if resolved.lcm_denoiser:
        model = _LCMTable.of(model)
    if resolved.front_end == "diffusers":  # the scheduler's own timesteps
        kwargs = {k: v for k, v in schedule_options.items() if k != "generator"}
        return scheduler_sigmas(resolved.options["scheduler_class"], steps, model, **kwargs), "diffusers"
    if schedule.lower() == "automatic":
        if resolved.schedule:
            name = resolved.schedule
        elif resolved.own_timesteps:
            return TIMESTEP_SIGMAS[info.key](model, steps), f"{info.key} timesteps"
        else:
            name = info.default_schedule
    discard = resolved.discard_penultimate or always_discard_penultimate
    return get_sigmas(name, steps, model, discard_penultimate=discard, **schedule_options), name


def check_run(sampler: str | ResolvedSampler, schedule: str, steps: int, model: Any, **sampler_options: Any) -> Tensor:
    """The sigmas ``sampler`` would run on, after a dry run on them: ``model``'s own sigma table with a stand-in
    network that predicts zero noise, on a one-pixel latent, with zero fresh noise (no random numbers drawn).

    Whatever the sampler itself refuses (too few steps for its order, sigmas it cannot step between, options that
    clash with the schedule, a NaN) raises its SdlabError here, before any model work: a sweep calls this for every
    run of its grid before it writes anything.
    """
    resolved = resolve_sampler(sampler)
    sigmas, _ = schedule_for(resolved, schedule, steps, model)
    if resolved.front_end == "diffusers" or not hasattr(model, "inner_denoiser"):
        return sigmas  # a diffusers scheduler checks its own steps; a bare denoiser has no table to stand in for

    dry = _DryDenoiser(model.inner_denoiser(lcm=resolved.lcm_denoiser))
    channels = model.latent_shape(8, 8)[0]
    x = torch.ones(1, channels, 1, 1) * init_noise_scale(resolved, sigmas)
    sample(dry, x, sigmas, resolved, noise_sampler=lambda sigma, sigma_next: torch.zeros_like(x), **sampler_options)
    return sigmas


class _DryDenoiser:
    """A model's denoiser (its sigma table, t <-> sigma) whose network predicts zero noise: for :func:`check_run`."""

    def __init__(self, inner: Any) -> None:
        inner.inner_model = lambda x, t, **cond: torch.zeros_like(x)
        self.inner = inner
        self.last_uncond_denoised: Tensor | None = None

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        denoised = self.inner(x, sigma)
        self.last_uncond_denoised = denoised  # what the CFG++ samplers read
        return denoised

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass(frozen=True)
class _LCMTable:
    """What A1111's schedules see under its "LCM" sampler: the 50 LCM sigmas of the model's training table."""

    sigmas: Tensor
    is_sdxl: bool = False

    @classmethod
    def of(cls, model: Any) -> _LCMTable:

        if model is None:  # SD 1.x
            table = training_sigmas({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012})
        elif getattr(model, "sigmas", None) is not None:
            table = torch.as_tensor(model.sigmas).detach().cpu().float()
        else:
            raise SdlabError(
                "A1111's LCM sampler needs the model's discrete training sigma table",
                sampler="LCM",
                model=type(model).__name__,
                hint="give a model with .sigmas, or use ComfyUI's 'lcm' on a continuous model",
            )
        return cls(LCMEpsDenoiser(None, table).sigmas, bool(getattr(model, "is_sdxl", False)))


@dataclass
class Trajectory:
    """One image's path through sampling: per step i, sigma, the latent x, the denoised prediction, NFE, time.

    Latents and predictions sit on the CPU (float32, or :func:`generate`'s ``trajectory_dtype``); decoded images
    only when asked (``keep=True``), in ``images[(which, mode)][step]``: 50 SDXL steps hold 25 MiB, not 600 MiB.
    """

    steps: list[dict[str, Any]] = field(default_factory=list)
    images: dict[tuple[str, str], dict[int, Tensor]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.steps)

    def column(self, key: str) -> list[Any]:
        return [s[key] for s in self.steps]

    def latents(self, which: str = "denoised") -> Tensor:
        """Stacked latents (steps, C, h, w): ``which`` is "denoised" (the x0 prediction) or "x"."""
        return torch.stack(self.column(which))

    def decode(self, model: Any, *, which: str = "denoised", mode: str = "full", keep: bool = False) -> Tensor:
        """Images (steps, 3, H, W) in [0, 1]: ``mode`` "full" (the VAE), "tiny" (TAESD) or "preview" (linear).
        All at once (:meth:`decoded`: one at a time); the kept ones if every step is kept; ``keep=True`` keeps."""
        kept = self.images.get((which, mode), {})
        if len(self) and all(i in kept for i in range(len(self))):
            return torch.stack([kept[i] for i in range(len(self))])
        images = model.decode_as(self.latents(which), mode)
        if keep:
            self.keep(which, mode, range(len(self)), images)
        return images

    def decoded(self, model: Any, *, which: str = "denoised", mode: str = "full") -> Iterator[tuple[int, Tensor]]:
        """(step, image (3, H, W) in [0, 1]) step by step, each decoded when reached (or as kept), none kept."""
        kept = self.images.get((which, mode), {})
        for i, step in enumerate(self.steps):
            yield i, kept[i] if i in kept else model.decode_as(step[which][None], mode)[0]

    def keep(self, which: str, mode: str, steps: Iterable[int], images: Tensor) -> None:
        """Keep decoded ``images`` (one per step in ``steps``) under (which, mode)."""
        self.images.setdefault((which, mode), {}).update(zip(steps, images, strict=True))

    def nbytes(self) -> int:
        """Bytes of the tensors held (latents, predictions, kept images), each storage once."""
        tensors = [v for s in self.steps for v in s.values() if isinstance(v, Tensor)]
        tensors += [image for kept in self.images.values() for image in kept.values()]
        return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


@dataclass
class GenerateResult:
    """Images in [0, 1] (batch, 3, H, W, float32 on the CPU), final latents, one spec per image, trajectories."""

    images: Tensor
    latents: Tensor
    specs: list[RunSpec]
    trajectories: list[Trajectory] | None
    nfe: int | None  # model evaluations in all; None (unknown) when the denoiser keeps no count
    seconds: float
    sigmas: Tensor

    def pil(self) -> list[Any]:
        """The images as PIL images."""
        from PIL import Image

        arr = (self.images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(a) for a in arr]

    def save(self, out_dir: str | Path, *, prefix: str = "") -> list[Path]:
        """Write one PNG per image with A1111's ``parameters`` infotext and sdlab's full spec; returns the paths,
        one per image, all different.

        Names are ``{prefix}{seed}-{spec key[:12]}.png``. Nothing is ever overwritten: where that name is taken,
        by an image saved earlier in this call (the same seed and settings twice) or by an earlier save with
        different bytes (equal specs can hold different images: given ``latents``, nondeterministic kernels),
        the image goes to ``...-2.png``, ``...-3.png`` and so on. A file with exactly the same bytes (the same
        run saved again) is left as it is and its path returned, so saving twice is idempotent.

        Each file is written to a temporary name beside it and then linked into place, so a failure leaves
        either the complete file or nothing; files finished before a failure stay. An OSError (a read-only
        folder, a file where the folder should be, a full disk) is raised as an SdlabError naming the path.
        """

        paths: list[Path] = []
        for img, spec in zip(self.pil(), self.specs, strict=True):
            stem = f"{prefix}{spec.seed}-{spec.key()[:12]}"
            paths.append(
                write_new_png(out_dir, stem, img, format_infotext(spec.to_a1111()), spec.to_dict(), taken=paths)
            )
        return paths


def _check(steps: int, cfg: float, seeds: Sequence[int], sampler: str) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise SdlabError("steps must be an integer >= 1", sampler=sampler, steps=steps, hint="e.g. steps=20")
    if steps > MAX_STEPS:
        raise SdlabError(f"steps > {MAX_STEPS} is not supported", sampler=sampler, steps=steps)
    if isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not math.isfinite(cfg):
        raise SdlabError("CFG scale must be a finite number", sampler=sampler, cfg=cfg, hint="e.g. cfg=7")
    if len(seeds) == 0:
        raise SdlabError("give at least one seed", sampler=sampler, hint="e.g. seeds=[0]")


def generate(
    prompt: str | Sequence[str],
    *,
    negative_prompt: str | Sequence[str] = "",
    sampler: str = "DPM++ 2M",
    schedule: str = "Automatic",
    steps: int = 20,
    cfg: float = 7.0,
    seeds: Sequence[int] | int = (0,),
    size: tuple[int, int] | str | None = None,
    model: Any = None,
    trajectory: bool = False,
    trajectory_dtype: Any = None,
    batch_size: int | None = None,
    rng: str = "GPU",
    ensd: int = 0,
    subseeds: Sequence[int] | int | None = None,
    subseed_strength: float = 0.0,
    seed_resize_from: tuple[int, int] | None = None,
    clip_skip: int = 1,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float | None = None,
    always_discard_penultimate: bool = False,
    start_step: int = 0,
    end_step: int | None = None,
    add_noise: bool = True,
    return_leftover_noise: bool = False,
    latents: Tensor | None = None,
    device: str | None = None,
    dtype: Any = None,
    decode: bool = True,
    progress: bool = False,
    **sampler_options: Any,
) -> GenerateResult:
    """Generate one image per seed with A1111's semantics; the embedded model when ``model`` is None.

    ``sampler`` and ``schedule`` take A1111 names ("DPM++ 2M Karras", "Euler a"), ComfyUI names ("dpmpp_2m" with
    schedule "karras") or old ``k_`` forms. Each image has its own generator (``rng``: "GPU", "CPU" or "NV"), so
    its noise never changes with batch size or position; ``subseeds`` (one per seed) and ``subseed_strength`` are
    A1111's variation seed and strength, ``seed_resize_from=(W, H)`` its "resize seed from". KSamplerAdvanced-style
    handoff: ``start_step``/``end_step`` slice the schedule, ``add_noise=False`` continues ``latents`` as they are,
    ``return_leftover_noise=True`` stops at the slice's last sigma instead of denoising to 0. Extra keyword
    arguments go to the sampler (eta, ...).
    ``trajectory=True`` records each image's per-step latents, denoised predictions, NFE and wall time on the CPU
    at ``trajectory_dtype`` (None: float32; "float16" halves them), no decoded image. ``batch_size``: at once.
    Every argument is checked before any model work (what needs the model right after loading it, sizes against
    :func:`sdlab.limits.check_image` before any allocation): a bad one raises an SdlabError naming the setting.
    """
    a = _check_arguments(
        prompt, negative_prompt, sampler, schedule, steps, cfg, seeds, size, rng, ensd, clip_skip, start_step,
        end_step, batch_size, latents, device, dtype, trajectory=trajectory, decode=decode, add_noise=add_noise,
        progress=progress, return_leftover_noise=return_leftover_noise,
        always_discard_penultimate=always_discard_penultimate,
    )  # fmt: skip
    variation = _check_variation(a, subseeds, subseed_strength, seed_resize_from, rng)
    keep_dtype = trajectory_storage(trajectory_dtype, sampler=a.resolved.label)
    resolved, seeds, ensd, clip_skip = a.resolved, a.seeds, a.ensd, a.clip_skip
    add_noise, return_leftover_noise = bool(add_noise), bool(return_leftover_noise)
    sd = load(model, device=device, dtype=dtype)
    width, height = _check_for_model(sd, a.size, clip_skip, latents, len(seeds), resolved.label)
    diffusers = resolved.front_end == "diffusers"  # the scheduler's own options; no sigma range or rho of ours
    schedule_options = sampler_options if diffusers else {"sigma_min": sigma_min, "sigma_max": sigma_max, "rho": rho}
    sigmas, schedule_resolved = schedule_for(
        resolved, schedule, steps, sd, always_discard_penultimate=always_discard_penultimate, **schedule_options
    )
    sigmas = _slice(sigmas, a.start_step, a.end_step, return_leftover_noise, resolved.label)
    common = dict(
        sampler=str(sampler), sampler_key=resolved.info.key, schedule=schedule, schedule_resolved=schedule_resolved,
        steps=steps, cfg=float(cfg), width=width, height=height, model=sd.model_id, model_hash=sd.model_hash,
        clip_skip=clip_skip, rng=rng, ensd=ensd, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho,
        start_step=a.start_step, end_step=a.end_step, add_noise=add_noise, return_leftover_noise=return_leftover_noise,
        sampler_options=tuple(sorted({**resolved.options, **sampler_options}.items())), device=str(sd.device),
        dtype=str(sd.dtype).removeprefix("torch."), subseed_strength=variation.strength,
        seed_resize_from=variation.resize_from, always_discard_penultimate=bool(always_discard_penultimate),
    )  # fmt: skip
    subs = variation.subseeds or [None] * len(seeds)
    pairs = zip(a.prompts, a.negatives, seeds, subs, strict=True)
    specs = [RunSpec(prompt=p, seed=s, negative_prompt=n, subseed=u, **common) for p, n, s, u in pairs]
    t0 = time.perf_counter()
    run = dict(cfg=cfg, width=width, height=height, rng=rng, ensd=ensd, clip_skip=clip_skip, add_noise=add_noise,
               trajectory=keep_dtype if trajectory else None, options=sampler_options, variation=variation)  # fmt: skip
    inputs = _PerImage(seeds, a.prompts, a.negatives, latents, variation.subseeds)
    images, finals, trajs, nfe = _sample_batches(
        sd, resolved, sigmas, inputs, a.batch_size or len(seeds), run,
        decode=decode, leftover=return_leftover_noise, progress=progress,
    )  # fmt: skip
    imgs, lat = (torch.cat(images) if images else torch.empty(0)), torch.cat(finals)
    return GenerateResult(imgs, lat, specs, trajs if trajectory else None, nfe, time.perf_counter() - t0, sigmas)


@dataclass(frozen=True)
class _Arguments:
    """generate()'s arguments as checked and normalised before any model work."""

    resolved: ResolvedSampler
    seeds: list[int]
    ensd: int
    prompts: list[str]
    negatives: list[str]
    size: tuple[int, int] | None
    clip_skip: int
    start_step: int
    end_step: int | None
    batch_size: int | None


def _check_arguments(
    prompt: Any, negative_prompt: Any, sampler: Any, schedule: Any, steps: Any, cfg: Any, seeds: Any, size: Any,
    rng: Any, ensd: Any, clip_skip: Any, start_step: Any, end_step: Any, batch_size: Any, latents: Any,
    device: Any, dtype: Any, **flags: Any,
) -> _Arguments:  # fmt: skip
    """The cheap checks, before any model work: each bad argument raises one SdlabError naming it."""

    seeds = seed_list(seeds)
    _check(steps, cfg, seeds, sampler)
    resolved = resolve_sampler(sampler)
    label = resolved.label
    checked = rng_mod.ImageRNG((1,), seeds, source=rng, ensd=ensd)  # its seed, RNG source and ENSD checks
    if not isinstance(schedule, str):
        raise SdlabError("schedule must be a name", schedule=schedule, hint='e.g. "Automatic" or "Karras"')
    _check_flags(label, **flags)
    _check_latents(latents, bool(flags["add_noise"]))
    if device is not None or dtype is not None:
        resolve_device(device, dtype)  # unusable devices ("meta", CUDA without CUDA, ...) and unknown dtypes
    return _Arguments(
        resolved=resolved,
        seeds=checked.seeds,
        ensd=checked.ensd,
        prompts=per_image(prompt, checked.seeds, "prompt"),
        negatives=per_image(negative_prompt, checked.seeds, "negative_prompt"),
        size=parse_size(size, sampler=label),
        clip_skip=whole("clip_skip", clip_skip, 1, label, hint="1 = the last CLIP layer, 2 = skip one"),
        start_step=whole("start_step", start_step, 0, label, hint="0 starts at the first step"),
        end_step=None if end_step is None else whole("end_step", end_step, 1, label, hint="None runs to the end"),
        batch_size=None if batch_size is None else whole("batch_size", batch_size, 1, label, hint="None = all"),
    )


def _check_flags(sampler: str, **flags: Any) -> None:
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            hint = f"pass {name}=True or {name}=False"
            raise SdlabError(f"{name} must be True or False", sampler=sampler, **{name: value}, hint=hint)


def _check_latents(latents: Any, add_noise: bool) -> None:
    if latents is not None and (not isinstance(latents, Tensor) or not latents.is_floating_point()):
        raise SdlabError(
            "latents must be a float tensor (batch, C, h, w)",
            latents=type(latents).__name__ if not isinstance(latents, Tensor) else str(latents.dtype),
            hint="pass the .latents of an earlier run (torch.from_numpy(...) for an array)",
        )
    if not add_noise and latents is None:
        raise SdlabError("add_noise=False continues given latents", hint="pass latents= from an earlier run")


def _check_for_model(
    sd: Any, size: tuple[int, int] | None, clip_skip: int, latents: Tensor | None, n: int, sampler: str
) -> tuple[int, int]:
    """The checks that need the model, before any work on it; the size to generate at."""

    width, height = size or tuple(sd.default_size)
    shape = sd.latent_shape(width, height)
    _check_clip_skip_layers(sd, clip_skip, sampler)
    if latents is not None and tuple(latents.shape) != (n, *shape):
        raise SdlabError(
            "latents must have one (C, h, w) latent per seed, of the model's shape for the size",
            latents=tuple(latents.shape),
            expected=(n, *shape),
            size=f"{width}x{height}",
            hint="pass the .latents of an earlier run with the same seeds and size",
        )
    limits.check_image(width, height, batch=1, device=sd.device, sampler=sampler)  # the VAE decodes one at a time
    return width, height


@dataclass(frozen=True)
class _Variation:
    """A1111's variation seeds (one per image, or None) and strength, and its "resize seed from" (W, H) or None."""

    subseeds: list[int] | None = None
    strength: float = 0.0
    resize_from: tuple[int, int] | None = None


def _check_variation(a: _Arguments, subseeds: Any, strength: Any, resize_from: Any, rng: str) -> _Variation:
    """The variation settings, checked by the image RNG that will use them (one subseed per seed, strength in
    [0, 1], a resize of at least 8 px); a diffusers scheduler draws its own noise and takes none of them."""
    subs = None if subseeds is None else seed_list(subseeds)
    resize = None if resize_from is None else (listed(resize_from) or resize_from)
    try:
        checked = rng_mod.ImageRNG((4, 8, 8), a.seeds, source=rng, subseeds=subs, subseed_strength=strength,
                                   seed_resize_from=resize)  # fmt: skip
    except SdlabError as e:
        raise e.with_context(sampler=a.resolved.label) from e
    variation = _Variation(checked.subseeds, checked.subseed_strength, checked.seed_resize_from)
    if a.resolved.front_end == "diffusers" and (variation.strength or variation.resize_from is not None):
        raise SdlabError(
            "a diffusers scheduler draws its own noise: no variation seed or seed resize", sampler=a.resolved.label,
            hint="use the A1111 or ComfyUI name of the sampler, or subseed_strength=0 and seed_resize_from=None",
        )  # fmt: skip
    return variation


@dataclass(frozen=True)
class _PerImage:
    """Each image's own inputs, in batch order: its seed, prompt, negative prompt, starting latent (or None) and
    variation seed (or None)."""

    seeds: list[int]
    prompts: list[str]
    negatives: list[str]
    latents: Tensor | None
    subseeds: list[int] | None = None

    def batches(self, size: int) -> Iterator[_PerImage]:
        """The images ``size`` at a time, in order."""
        for b in range(0, len(self.seeds), size):
            sl = slice(b, b + size)
            latents = None if self.latents is None else self.latents[sl]
            subseeds = None if self.subseeds is None else self.subseeds[sl]
            yield _PerImage(self.seeds[sl], self.prompts[sl], self.negatives[sl], latents, subseeds)


def _sample_batches(
    sd: Any,
    resolved: ResolvedSampler,
    sigmas: Tensor,
    inputs: _PerImage,
    batch_size: int,
    run: dict[str, Any],
    *,
    decode: bool,
    leftover: bool,
    progress: bool,
) -> tuple[list[Tensor], list[Tensor], list[Trajectory], int | None]:
    """Sample ``batch_size`` images at a time: decoded images, final latents, trajectories and the NFE (or None)."""
    images, finals, trajs = [], [], []
    nfe: int | None = 0
    bar = _progress(len(inputs.seeds), progress, resolved.label)
    for batch in inputs.batches(batch_size):
        x, denoised_last, batch_trajs, batch_nfe = _run_batch(sd, resolved, sigmas, batch, **run)
        finals.append(x.float().cpu())
        nfe = None if nfe is None or batch_nfe is None else nfe + batch_nfe  # unknown stays unknown
        if decode:
            images.append(sd.decode(denoised_last if leftover else x))
        trajs.extend(batch_trajs)
        bar.update(len(batch.seeds))
    bar.close()
    return images, finals, trajs, nfe


def _run_batch(
    sd: Any,
    resolved: ResolvedSampler,
    sigmas: Tensor,
    batch: _PerImage,
    *,
    cfg: float,
    width: int,
    height: int,
    rng: str,
    ensd: int,
    clip_skip: int,
    add_noise: bool,
    trajectory: torch.dtype | None,
    options: dict[str, Any],
    variation: _Variation,
) -> tuple[Tensor, Tensor, list[Trajectory], int | None]:
    """Sample one batch: the final latents, the last denoised prediction, trajectories and the NFE (or None)."""
    seeds, latents = batch.seeds, batch.latents
    shape = sd.latent_shape(width, height)
    options = dict(options)
    if resolved.front_end == "diffusers":  # diffusers' way: one CPU generator per image, initial noise then steps
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        noise = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(sd.device)
        options["generator"] = gens
    else:
        image_rng = rng_mod.ImageRNG(
            shape, seeds, source=rng, device=sd.device, ensd=ensd, subseeds=batch.subseeds,
            subseed_strength=variation.strength, seed_resize_from=variation.resize_from,
        )  # fmt: skip
        noise = image_rng.first().to(device=sd.device, dtype=torch.float32)
    base = torch.zeros_like(noise) if latents is None else latents.to(device=sd.device, dtype=torch.float32)
    x = base + noise * init_noise_scale(resolved, sigmas).to(noise) if add_noise else base
    cond = sd.encode_prompt(batch.prompts, batch.negatives, clip_skip=clip_skip, size=(width, height))
    if resolved.cfg_divisor != 1:
        cfg = cfg / resolved.cfg_divisor  # A1111's DDIM CFG++ reads the CFG scale divided by 12.5 (7 -> 0.56)
    denoiser = sd.denoiser(cond, cfg, lcm=resolved.lcm_denoiser)
    if resolved.front_end == "diffusers":
        noise_sampler = None
    elif resolved.info.brownian:
        noise_sampler = rng_mod.brownian_noise_sampler(x, sigmas, seeds, source=rng)  # A1111: no ENSD here
    else:
        noise_sampler = rng_mod.image_noise_sampler(image_rng)

    trajs = [Trajectory() for _ in seeds]
    last: dict[str, Tensor] = {}
    t0 = time.perf_counter()

    def record(info: dict[str, Any]) -> None:
        last["denoised"] = info["denoised"]
        if trajectory is None:
            return
        now, nfe = time.perf_counter() - t0, evaluations(denoiser)
        xs, ds = _per_image_on_cpu(info["x"], trajectory), _per_image_on_cpu(info["denoised"], trajectory)
        sigma_hat = info.get("sigma_hat", info["sigma"])
        for k, tr in enumerate(trajs):
            tr.steps.append(
                {
                    "i": int(info["i"]),
                    "sigma": _scalar(info["sigma"]),
                    "sigma_hat": _scalar(sigma_hat),
                    "x": xs[k],
                    "denoised": ds[k],
                    "nfe": nfe,
                    "time": now,
                }
            )

    out = sample(denoiser, x, sigmas.to(sd.device), resolved, callback=record, noise_sampler=noise_sampler, **options)
    out = _final_latent(resolved, sigmas, out)
    return out, last.get("denoised", out), trajs, evaluations(denoiser)


def trajectory_storage(dtype: Any, *, sampler: str | None = None) -> torch.dtype:
    """The dtype a trajectory keeps latents and predictions at: ``dtype`` (None: float32), a float dtype."""
    name = "float32" if dtype is None else str(dtype).removeprefix("torch.")
    if name not in ("float32", "float16", "bfloat16", "float64"):
        hint = 'None (float32, as sampled) or "float16" (half the memory, about 3 significant digits)'
        raise SdlabError("trajectory_dtype must be a float dtype", sampler=sampler, trajectory_dtype=dtype, hint=hint)
    return getattr(torch, name)


def _per_image_on_cpu(batch: Tensor, dtype: torch.dtype) -> list[Tensor]:
    """Each image of ``batch`` on the CPU at ``dtype`` (cast on the device: less to copy), each in storage of its
    own so that one image's trajectory never holds the whole batch."""
    batch = batch.detach().to(dtype).cpu()
    return [batch[0]] if len(batch) == 1 else [image.clone() for image in batch]


def evaluations(denoiser: Any) -> int | None:
    """The model evaluations ``denoiser`` counted so far (its ``nfe``); None (unknown) when it keeps no count."""
    nfe = getattr(denoiser, "nfe", None)
    return None if nfe is None else int(nfe)


def init_noise_scale(resolved: ResolvedSampler, sigmas: Tensor) -> Tensor:
    """sigma_0, except that A1111 hands DDIM, PLMS and UniPC unit noise as the VP latent: sqrt(1 + sigma_0^2)."""
    if resolved.own_timesteps:
        return (1 + sigmas[0] ** 2).sqrt()
    return sigmas[0]


def _final_latent(resolved: ResolvedSampler, sigmas: Tensor, x: Tensor) -> Tensor:
    """What A1111 decodes: the timestep samplers end at the first training sigma, in VP scaling."""
    if resolved.own_timesteps and float(sigmas[-1]) > 0:
        return x / (1 + sigmas[-1].to(x) ** 2).sqrt()
    return x


def _scalar(v: Any) -> float:
    return float(v.flatten()[0]) if isinstance(v, Tensor) else float(v)


def _slice(sigmas: Tensor, start: int, end: int | None, leftover: bool, sampler: str) -> Tensor:
    """ComfyUI KSamplerAdvanced's start/end steps; without leftover noise the last sigma is forced to 0."""
    n = len(sigmas) - 1
    if end is not None:
        if not 0 < end <= n:
            raise SdlabError("end_step out of range", sampler=sampler, end_step=end, steps=n)
        sigmas = sigmas[: end + 1].clone()
        if not leftover:
            sigmas[-1] = 0
    elif leftover:
        raise SdlabError("return_leftover_noise needs end_step", sampler=sampler, hint="pass end_step=k")
    if start:
        if not 0 <= start < len(sigmas) - 1:
            raise SdlabError("start_step out of range", sampler=sampler, start_step=start, steps=n)
        sigmas = sigmas[start:]
    return sigmas


def _check_clip_skip_layers(sd: Any, clip_skip: int, sampler: str) -> None:
    """SD 1.x: CLIP skip cannot exceed the text encoder's layers (A1111 ignores it for other models)."""
    if getattr(sd, "kind", None) != "sd1":
        return
    config = getattr(getattr(getattr(sd, "pipe", None), "text_encoder", None), "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    if isinstance(layers, int) and clip_skip > layers:
        raise SdlabError(
            "clip_skip exceeds the text encoder's layers",
            sampler=sampler,
            clip_skip=clip_skip,
            layers=layers,
            hint=f"use 1 .. {layers} (1 = the last layer; A1111's usual values are 1 and 2)",
        )


class _NoBar:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def _progress(total: int, enabled: bool, label: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="img")
