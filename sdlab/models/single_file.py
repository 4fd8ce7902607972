"""Recognising an A1111 single file in its original key layout (CompVis / SGM) from its keys and shapes, and
building its pipeline offline with the configs sdlab carries (:mod:`.architectures`, :mod:`.layout`)."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.models import architectures, layout

__all__ = ["SingleFileArchitecture", "read_safetensors_header", "recognise_single_file", "load_original"]

_UNET = "model.diffusion_model."
_CLIP_L = "text_model.embeddings.token_embedding.weight"
_OPENCLIP = "token_embedding.weight"


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a ``.safetensors`` file, checked against the file's size (SdlabError if damaged)."""
    hint = "the file is truncated or corrupt: download it again"
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise SdlabError("not a safetensors file (too short)", file=str(path), hint=hint)
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise SdlabError(
                    "damaged safetensors header", file=str(path), header_bytes=n, file_bytes=size, hint=hint
                )
            header = json.loads(f.read(n))
    except SdlabError:
        raise
    except OSError as exc:
        raise SdlabError(f"cannot read {path.name}: {exc}", file=str(path)) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise SdlabError("damaged safetensors header", file=str(path), hint=hint) from exc
    try:
        entries = [v for k, v in header.items() if k != "__metadata__"]
        well_formed = all(isinstance(v["shape"], list) for v in entries)
        end = max((int(v["data_offsets"][1]) for v in entries), default=0)
    except (AttributeError, KeyError, TypeError, IndexError, ValueError) as exc:
        raise SdlabError("damaged safetensors header", file=str(path), hint=hint) from exc
    if not well_formed:
        raise SdlabError("damaged safetensors header", file=str(path), hint=hint)
    if 8 + n + end > size:
        raise SdlabError(
            "truncated safetensors file", file=str(path), expected_bytes=8 + n + end, file_bytes=size, hint=hint
        )
    return header


@dataclass(frozen=True)
class SingleFileArchitecture:
    """What the keys and shapes of a checkpoint say: kind and the widths to build its modules at."""

    kind: str  # "sd1" | "sd2" | "sdxl"
    unet_channels: int  # 320 at full size
    vae_channels: int  # 128 at full size
    text_hidden: dict[str, int]  # width of each text encoder: "clip-l", "openclip-h", "openclip-bigg"


def recognise_single_file(shapes: dict[str, Any], *, file: str = "") -> SingleFileArchitecture:
    """The architecture of an original-layout checkpoint from its keys and shapes (``{key: tensor or shape}``).

    SDXL base: SGM's ``conditioner.embedders.0`` (CLIP ViT-L) and ``.1`` (OpenCLIP bigG) with ``label_emb``;
    SD 2.x: ``cond_stage_model.model.*`` (OpenCLIP ViT-H); SD 1.x: ``cond_stage_model.transformer.*`` (CLIP
    ViT-L). Widths come from the first convolutions and the token embeddings. Inpainting (9 input channels),
    instruct-pix2pix (8), SDXL refiner and anything else are refused with :class:`SdlabError`.
    """

    def shape(key: str) -> tuple[int, ...] | None:
        value = shapes.get(key)
        return None if value is None else tuple(value.shape if hasattr(value, "shape") else value)

    conv_in = shape(_UNET + "input_blocks.0.0.weight")
    vae_in = shape("first_stage_model.encoder.conv_in.weight")
    if conv_in is None or vae_in is None:
        raise SdlabError(
            "the checkpoint has no UNet input convolution or no VAE",
            file=file,
            hint="pass a full checkpoint (UNet, VAE and text encoder), or config= for another layout",
        )
    if conv_in[1] != 4:
        what = {9: "an inpainting", 8: "an instruct-pix2pix"}.get(conv_in[1], "a non-text-to-image")
        raise SdlabError(
            f"this is {what} checkpoint ({conv_in[1]} UNet input channels)",
            file=file,
            hint="sdlab runs text-to-image checkpoints (4 input channels)",
        )
    unet, vae = conv_in[0], vae_in[0]
    sgm_l = shape("conditioner.embedders.0.transformer." + _CLIP_L)
    sgm_g = shape("conditioner.embedders.1.model." + _OPENCLIP)
    if sgm_l is not None and sgm_g is not None and shape(_UNET + "label_emb.0.0.weight") is not None:
        return SingleFileArchitecture("sdxl", unet, vae, {"clip-l": sgm_l[1], "openclip-bigg": sgm_g[1]})
    if shape("conditioner.embedders.0.model." + _OPENCLIP) is not None:
        raise SdlabError(
            "this is an SDXL refiner checkpoint", file=file, hint="sdlab runs SDXL base, SD 1.x and SD 2.x"
        )
    if (h := shape("cond_stage_model.model." + _OPENCLIP)) is not None:
        return SingleFileArchitecture("sd2", unet, vae, {"openclip-h": h[1]})
    if (l_ := shape("cond_stage_model.transformer." + _CLIP_L)) is not None:
        return SingleFileArchitecture("sd1", unet, vae, {"clip-l": l_[1]})
    raise SdlabError(
        "unrecognised checkpoint: no text encoder under cond_stage_model.* or conditioner.embedders.*",
        file=file,
        hint="sdlab recognises SD 1.x, SD 2.x and SDXL base; pass config= with a diffusers config otherwise",
    )


def _check_widths(arch: SingleFileArchitecture, vocab: int, file: str) -> None:
    """SdlabError unless the widths are those of a published architecture or one narrowed as sdlab narrows it."""
    bad = {}
    if arch.unet_channels % 32 or arch.vae_channels % 32:
        bad = {"unet_channels": arch.unet_channels, "vae_channels": arch.vae_channels}
    if any(h % 64 for h in arch.text_hidden.values()) or vocab != architectures.VOCAB_SIZE:
        bad = {**bad, "text_widths": arch.text_hidden, "vocabulary": vocab}
    if bad:
        raise SdlabError(
            f"the checkpoint's widths are not those of {arch.kind.upper()} (nor of one narrowed as sdlab narrows it)",
            file=file,
            **bad,
            hint="pass config= with the diffusers config of this checkpoint",
        )


def _safetensors_metadata(path: Path) -> dict[str, str]:
    if path.suffix.lower() != ".safetensors":
        return {}
    meta = read_safetensors_header(path).get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _declared_prediction(path: Path, shapes: dict[str, Any]) -> str | None:
    """The prediction type a file declares: a ``.yaml`` beside it (A1111), a ``v_pred`` key, or its metadata."""
    for yaml in (path.with_suffix(".yaml"), path.with_suffix(".yml")):
        if yaml.is_file():  # A1111 reads the original config beside the file first: parameterization "v"
            text = yaml.read_text(encoding="utf-8", errors="replace")
            return "v_prediction" if re.search(r"parameterization:\s*[\"']?v[\"']?\s*$", text, re.M) else "epsilon"
    if "v_pred" in shapes:  # the marker key of SDXL v-prediction fine-tunes
        return "v_prediction"
    declared = _safetensors_metadata(path).get("modelspec.prediction_type", "").lower()
    if declared in ("v", "v_prediction", "v-prediction"):
        return "v_prediction"
    if declared in ("epsilon", "eps"):
        return "epsilon"
    return None


@torch.no_grad()
def _probe_v_prediction(unet: Any) -> bool:
    """A1111's test for an SD 2.x file without a config: whether the UNet predicts v rather than noise.

    At the last training timestep (999) the input is nearly all noise, so a noise-predicting UNet given a flat
    0.5 latent returns about the same latent, while a v-predicting one returns about minus the clean image. A1111
    feeds an all-0.5 8x8 latent and an all-0.5 two-token context, in float32 on the CPU, and reads v when the
    mean of (output - input) is below -1.
    """
    param = next(unet.parameters())
    x = torch.full((1, 4, 8, 8), 0.5, device=param.device, dtype=param.dtype)
    context = torch.full((1, 2, unet.config.cross_attention_dim), 0.5, device=param.device, dtype=param.dtype)
    t = torch.tensor([999], device=param.device)
    out = unet(x, t, encoder_hidden_states=context, return_dict=False)[0]
    return float((out.float() - x.float()).mean()) < -1


def load_original(path: Path, shapes: dict[str, Tensor], *, dtype: torch.dtype) -> Any:
    """A pipeline from an original-layout file, built from sdlab's configs: no hub, no config folder."""
    from safetensors import SafetensorError, safe_open

    arch = recognise_single_file(shapes, file=str(path))
    vocab = next(v.shape[0] for k, v in shapes.items() if k.endswith(("." + _CLIP_L, "." + _OPENCLIP)))
    _check_widths(arch, vocab, str(path))
    declared = _declared_prediction(path, shapes)
    sample_size = {"sd1": 64, "sd2": 96 if declared == "v_prediction" else 64, "sdxl": 128}[arch.kind]
    components = architectures.build_components(
        arch.kind,
        declared or "epsilon",
        unet_channels=arch.unet_channels,
        vae_channels=arch.vae_channels,
        text_hidden=arch.text_hidden,
        sample_size=sample_size,
        device="meta",
        warn_tokenizer=True,
    )
    try:
        if path.suffix.lower() == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                layout.from_original(arch.kind, components, f.get_tensor, f.keys(), dtype)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            layout.from_original(arch.kind, components, state.__getitem__, state.keys(), dtype)
    except (OSError, RuntimeError, SafetensorError) as exc:
        raise SdlabError(f"could not read the checkpoint: {exc}", file=str(path)) from exc
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name in components:
            components[name].eval().requires_grad_(False)
    prediction = declared
    if prediction is None:
        v = arch.kind == "sd2" and _probe_v_prediction(components["unet"])
        prediction = "v_prediction" if v else "epsilon"
        if v:
            components["unet"].register_to_config(sample_size=96)  # SD 2.x v models are the 768 px ones
    if prediction != "epsilon":
        name, config = architectures.scheduler_config(arch.kind, prediction)
        components["scheduler"] = type(components["scheduler"]).from_config(config)
    return architectures.assemble(components)
