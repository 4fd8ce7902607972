"""Re-run an image: A1111's "read the PNG's parameters, run them again, change one thing", for sdlab.generate.

>>> kwargs = read_run("00042-3407.png")                 # a PNG from A1111 or sdlab, or an infotext string
>>> kwargs["sampler"], kwargs["schedule"], kwargs["seeds"]
('Euler a', 'Karras', [3407])
>>> result = rerun("00042-3407.png", model="v1-5-pruned-emaonly.safetensors", sampler="DPM++ 2M")

A PNG that sdlab wrote carries its full spec (the ``sdlab`` text chunk), which re-runs bit for bit on the same
model, device and dtype. Any other PNG or text is read as A1111 reads its infotext (:func:`sdlab.infotext.
parse_infotext`, :func:`sdlab.spec.from_a1111`). What would change the image but ``generate`` does not run (hires
fix, img2img, a refiner, LoRA tags, face restoration, extensions' fields, ...) raises :class:`SdlabError` naming
the field; ``ignore=`` drops named fields on purpose, to run without them.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sdlab.errors import SdlabError
from sdlab.generation import GenerateResult, generate
from sdlab.infotext import parse_infotext, read_png
from sdlab.spec import SDLAB_OPTIONS_KEY, RunSpec, from_a1111

__all__ = ["read_run", "rerun", "MAPPED_KEYS", "INFORMATION_KEYS"]

# A1111 keys that become generate's arguments (through from_a1111).
MAPPED_KEYS = frozenset(
    {
        *("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Clip skip", "ENSD", "RNG"),
        *("Schedule min sigma", "Schedule max sigma", "Schedule rho", "Discard penultimate sigma"),
        *("Variation seed", "Variation seed strength", "Seed resize from"),
        *("Eta", "Eta DDIM", "Sigma churn", "Sigma tmin", "Sigma tmax", "Sigma noise", SDLAB_OPTIONS_KEY),
    }
)
# Keys that describe but do not change the run (the model is passed as model=, not read from its name).
INFORMATION_KEYS = frozenset(
    {"Model hash", "Model", "Version", "User", "TI hashes", "Hashes", "Cache FP16 weight for LoRA", "VAE hash"}
)
# Keys whose value is harmless at A1111's default: (default values, what the feature is).
_AT_DEFAULT: dict[str, tuple[tuple[Any, ...], str]] = {
    "Beta schedule alpha": ((0.6,), "a Beta schedule alpha other than generate's 0.6"),
    "Beta schedule beta": ((0.6,), "a Beta schedule beta other than generate's 0.6"),
    "Tiling": ((False,), "tiling"),
    "SGM noise multiplier": ((False,), "the SGM noise multiplier"),
    "Token merging ratio": ((0, 0.0), "token merging"),
    "FP8 weight": (("Disable",), "fp8 weights"),
    "Emphasis": (("Original",), "an emphasis mode other than A1111's Original"),
    "NGMS": ((0, 0.0), "negative guidance minimum sigma"),
    "Pad conds": ((False, "False"), "padding the prompts' conditioning (pad_cond_uncond)"),
    "Pad conds v0": ((False, "False"), "padding the prompts' conditioning (pad_cond_uncond_v0)"),
    "Downcast alphas_cumprod": ((False, "False"), "downcasting alphas_cumprod"),
    "VAE": ((None,), "a separate VAE (pass a model that has it baked in, or ignore the field)"),
}
# Features with a key of their own (any value means the feature ran).
_FEATURES: dict[str, str] = {
    "Denoising strength": "hires fix or img2img",
    "Hires upscale": "hires fix",
    "Hires resize": "hires fix",
    "Hires steps": "hires fix",
    "Hires upscaler": "hires fix",
    "Hires sampler": "hires fix",
    "Hires schedule type": "hires fix",
    "Hires prompt": "hires fix",
    "Hires negative prompt": "hires fix",
    "Hires CFG Scale": "hires fix",
    "Hires checkpoint": "hires fix",
    "First pass size": "hires fix",
    "Token merging ratio hr": "hires fix",
    "Refiner": "the refiner switch",
    "Refiner switch at": "the refiner switch",
    "Image CFG scale": "img2img (instruct-pix2pix)",
    "Init image hash": "img2img",
    "Mask blur": "inpainting",
    "Inpaint area": "inpainting",
    "Masked content": "inpainting",
    "Conditional mask weight": "inpainting",
    "Noise multiplier": "img2img's noise multiplier",
    "Face restoration": "face restoration",
    "Lora hashes": "LoRA",
}
# Extra networks in the prompt: <lora:name:weight>, <lyco:...>, <hypernet:...>
_NETWORK_TAG = re.compile(r"<(lora|lyco|locon|loha|hypernet|embedding):[^>]*>", re.IGNORECASE)


def read_run(
    source: str | os.PathLike[str] | dict[str, Any], *, ignore: Iterable[str] = (), **overrides: Any
) -> dict[str, Any]:
    """The keyword arguments of :func:`sdlab.generate` that re-run ``source``; ``overrides`` replace any of them.

    ``source``: a PNG path (its ``sdlab`` spec if sdlab wrote it, else its A1111 ``parameters`` text), a text
    file or string holding an infotext, or the dict :func:`~sdlab.infotext.parse_infotext` returns. Prompts keep
    A1111's emphasis syntax, which generate reads as A1111 does. The model is not included: pass ``model=``.
    ``ignore`` names infotext fields to drop on purpose (e.g. an extension's ``"ADetailer model"``). Overriding
    the sampler drops the old sampler's options (eta, s_noise, ...) unless they are overridden too.
    """
    return _read(source, ignore, overrides)[0]


def rerun(
    source: str | os.PathLike[str] | dict[str, Any], *, ignore: Iterable[str] = (), **overrides: Any
) -> GenerateResult:
    """:func:`sdlab.generate` with :func:`read_run`'s arguments; ``model=`` is needed when the source names a model
    other than the embedded one (``model="embedded"`` runs it on the embedded model anyway)."""
    kwargs, named = _read(source, ignore, overrides)
    if overrides.get("model") is None and named not in (None, "embedded"):
        raise SdlabError(
            "the image was made with another model than the embedded one",
            model=named,
            hint="pass model= (CLI: --model) with that checkpoint, or model='embedded' to run it on the embedded model",
        )
    return generate(**kwargs)


def _read(source: Any, ignore: Iterable[str], overrides: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(generate's arguments, the model the source names or None)."""
    ignore = set(ignore)
    spec, params = _read_source(source)
    if spec is not None:
        kwargs, named = _from_spec(spec), spec.get("model")
    else:
        params = {k: v for k, v in params.items() if k not in ignore}
        _check_runnable(params)
        kwargs, named = from_a1111(params), params.get("Model")
    if "sampler" in overrides and overrides["sampler"] != kwargs["sampler"]:
        own = {n for n, p in inspect.signature(generate).parameters.items() if p.kind is not p.VAR_KEYWORD}
        kwargs = {k: v for k, v in kwargs.items() if k in own}  # the old sampler's options go with it
    return {**kwargs, **overrides}, (None if named is None else str(named))


# -- reading the source -------------------------------------------------------------------------------------------


def _read_source(source: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(sdlab spec or None, A1111 params) of a PNG path, an infotext or a params dict."""
    if isinstance(source, dict):
        if "sampler_key" in source and "seed" in source:  # a RunSpec dict (the PNG's sdlab chunk)
            return source, {}
        return None, dict(source)
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and len(source) < 4096 and Path(source).is_file()
    ):
        path = Path(source)
        if path.suffix.lower() != ".png":  # a text file holding an infotext
            try:
                return None, parse_infotext(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise SdlabError(f"cannot read the infotext file: {exc}", path=str(path)) from None
        infotext, spec = read_png(path)
        if spec is not None:
            return spec, {}
        if infotext is None:
            raise SdlabError(
                "the PNG has no parameters", path=str(path), hint="A1111 and sdlab write a 'parameters' text chunk"
            )
        return None, parse_infotext(infotext)
    if isinstance(source, str):
        return None, parse_infotext(source)
    raise SdlabError("read_run takes a PNG path, an infotext or a params dict", type=type(source).__name__)


def _from_spec(d: dict[str, Any]) -> dict[str, Any]:
    """generate's arguments from sdlab's own spec: exact, the sampler and schedule as the run named them."""
    try:
        spec = RunSpec.from_dict(d)
    except TypeError as exc:
        raise SdlabError(f"the PNG's sdlab spec is not one sdlab reads: {exc}") from None
    if not spec.add_noise or spec.start_step:
        field = "add_noise" if not spec.add_noise else "start_step"
        raise SdlabError(
            "the image continued given latents, which the PNG does not hold",
            field=field,
            hint="re-run it with latents= from the run that made them",
        )
    return {
        "prompt": spec.prompt,
        "negative_prompt": spec.negative_prompt,
        "sampler": spec.sampler,
        "schedule": spec.schedule,
        "steps": spec.steps,
        "cfg": spec.cfg,
        "seeds": [spec.seed],
        "size": (spec.width, spec.height),
        "clip_skip": spec.clip_skip,
        "rng": spec.rng,
        "ensd": spec.ensd,
        "sigma_min": spec.sigma_min,
        "sigma_max": spec.sigma_max,
        "rho": spec.rho,
        "end_step": spec.end_step,
        "return_leftover_noise": spec.return_leftover_noise,
        "subseeds": None if spec.subseed is None else [spec.subseed],
        "subseed_strength": spec.subseed_strength,
        "seed_resize_from": spec.seed_resize_from,
        "always_discard_penultimate": spec.always_discard_penultimate,
        **dict(spec.sampler_options),
    }


def _check_runnable(params: dict[str, Any]) -> None:
    """SdlabError naming the first field that would change the image and generate does not run."""
    hint = "re-run it in A1111, or pass ignore=[field] to run without it"
    for name in ("prompt", "negative_prompt"):
        if m := _NETWORK_TAG.search(params.get(name) or ""):
            raise SdlabError(
                f"sdlab.generate does not load extra networks ({m.group(1)} tags)",
                field=name,
                tag=m.group(0),
                hint="remove the tag (or merge the network into the checkpoint) to run without it",
            )
    for key, what in _FEATURES.items():
        if params.get(key) is not None:
            raise SdlabError(f"sdlab.generate does not run {what}", field=key, value=params[key], hint=hint)
    for key, (defaults, what) in _AT_DEFAULT.items():
        value = params.get(key)
        if value is None or value in defaults:
            continue
        raise SdlabError(f"sdlab.generate does not run {what}", field=key, value=value, hint=hint)
    known = MAPPED_KEYS | INFORMATION_KEYS | set(_AT_DEFAULT) | set(_FEATURES) | {"prompt", "negative_prompt"}
    for key in params:
        if key not in known:
            raise SdlabError(
                "an infotext field sdlab does not know (an extension's?) may change the image",
                field=key,
                value=params[key],
                hint=f"pass ignore=[{key!r}] (CLI: --ignore {key!r}) to run without it",
            )
