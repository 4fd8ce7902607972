"""The original single-file checkpoint layout (CompVis for SD 1.x/2.x, SGM for SDXL) and diffusers' names.

One rule in one direction: :func:`original_name` gives each diffusers weight its place in the original file;
writing (:func:`to_original`) and reading (:func:`from_original`) both follow it.

========================  ===========================================  ==========================================
component                 SD 1.x / 2.x file                            SDXL file
========================  ===========================================  ==========================================
UNet                      ``model.diffusion_model.*`` (input_blocks, middle_block, output_blocks, time_embed,
                          out; SDXL's size conditioning ``label_emb``)
VAE                       ``first_stage_model.*`` (encoder.down, decoder.up bottom-up, mid.attn_1 as 1x1 convs)
CLIP ViT-L/14             ``cond_stage_model.transformer.text_model.*``  ``conditioner.embedders.0.transformer.*``
OpenCLIP (H/14, bigG/14)  ``cond_stage_model.model.*`` (SD 2.x)          ``conditioner.embedders.1.model.*``
========================  ===========================================  ==========================================

OpenCLIP holds q, k and v as one ``attn.in_proj_weight`` (3 x width rows), its projection as ``x @ W`` (diffusers
``x @ W.T``), and SD 2.x's file has all 24 layers of ViT-H, of which diffusers keeps the 23 that SD 2.x reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sdlab.errors import SdlabError

__all__ = ["Place", "PREFIXES", "original_name", "to_original", "from_original", "component_places"]

UNET = "model.diffusion_model."
VAE = "first_stage_model."
PREFIXES = {
    "sd1": {"text_encoder": "cond_stage_model.transformer."},
    "sd2": {"text_encoder": "cond_stage_model.model."},
    "sdxl": {
        "text_encoder": "conditioner.embedders.0.transformer.",
        "text_encoder_2": "conditioner.embedders.1.model.",
    },
}
OPENCLIP = {("sd2", "text_encoder"), ("sdxl", "text_encoder_2")}


class Place(NamedTuple):
    """Where a diffusers weight lives in the original file: its key, a third of it (q/k/v) or a transpose."""

    key: str
    part: int | None = None  # 0, 1, 2: q, k, v rows of OpenCLIP's in_proj
    transpose: bool = False  # OpenCLIP's text_projection
    conv: bool = False  # the VAE's attention: 1x1 convolutions in the original


_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_OPENCLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def _rename(rest: str, names: dict[str, str]) -> str:
    for new, old in names.items():
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def _unet_name(key: str, layers: int, upsampler_slot: dict[int, int]) -> str:
    """A diffusers UNet key in ``openaimodel``'s numbering (each block's down/upsampler counts as a layer)."""
    per_block = layers + 1
    for new, old in _UNET_FIXED.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = 1 + int(m[1]) * per_block + int(m[3])
        return (
            f"input_blocks.{index}.0.{_rename(m[4], _RESNET)}"
            if m[2] == "resnets"
            else f"input_blocks.{index}.1.{m[4]}"
        )
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * per_block + layers}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_rename(m[2], _RESNET)}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = int(m[1]) * (layers + 1) + int(m[3])
        return (
            f"output_blocks.{index}.0.{_rename(m[4], _RESNET)}"
            if m[2] == "resnets"
            else f"output_blocks.{index}.1.{m[4]}"
        )
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        block = int(m[1])
        return f"output_blocks.{block * per_block + layers}.{upsampler_slot[block]}.conv.{m[2]}"
    raise SdlabError(f"no original-layout name for UNet key {key!r}", key=key)


def _vae_name(key: str, blocks: int) -> Place:
    """A diffusers AutoencoderKL key in the original ``encoder``/``decoder`` layout (decoder levels bottom-up)."""
    shortcut = {"conv_shortcut": "nin_shortcut"}
    for side in ("encoder", "decoder"):
        if key.startswith(f"{side}.conv_norm_out."):
            return Place(f"{side}.norm_out." + key.split(".", 2)[2])
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return Place(f"encoder.down.{m[1]}.block.{m[2]}.{_rename(m[3], shortcut)}")
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return Place(f"encoder.down.{m[1]}.downsample.conv.{m[2]}")
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return Place(f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}.{_rename(m[3], shortcut)}")
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return Place(f"decoder.up.{blocks - 1 - int(m[1])}.upsample.conv.{m[2]}")
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return Place(f"{m[1]}.mid.block_{int(m[2]) + 1}.{_rename(m[3], shortcut)}")
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
        name = _rename(m[2], _VAE_ATTENTION)
        return Place(f"{m[1]}.mid.attn_1.{name}", conv=name.endswith("weight") and not name.startswith("norm"))
    return Place(key)  # conv_in, conv_out, quant_conv, post_quant_conv keep their names


def _openclip_name(key: str) -> Place:
    """A transformers CLIP text-model key in OpenCLIP's names."""
    fixed = {
        "text_model.embeddings.token_embedding.weight": Place("token_embedding.weight"),
        "text_model.embeddings.position_embedding.weight": Place("positional_embedding"),
        "text_projection.weight": Place("text_projection", transpose=True),
    }
    if key in fixed:
        return fixed[key]
    if key.startswith("text_model.final_layer_norm."):
        return Place("ln_final." + key.rsplit(".", 1)[1])
    if m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
        return Place(f"transformer.resblocks.{m[1]}.attn.in_proj_{m[3]}", part="qkv".index(m[2]))
    if m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)", key):
        return Place(f"transformer.resblocks.{m[1]}.{_rename(m[2], _OPENCLIP_LAYER)}")
    raise SdlabError(f"no OpenCLIP name for text-encoder key {key!r}", key=key)


def _unet_context(unet: Any) -> Callable[[str], str]:
    config = unet.config
    slot = {i: 2 if "CrossAttn" in t else 1 for i, t in enumerate(config.up_block_types)}
    layers = int(config.layers_per_block)
    return lambda key: _unet_name(key, layers, slot)


def original_name(kind: str, component: str, module: Any) -> Callable[[str], Place]:
    """For the diffusers ``component`` ("unet", "vae", "text_encoder", "text_encoder_2") of a ``kind`` model:
    a function from each of its state-dict keys to its :class:`Place` in the original file."""
    if component == "unet":
        name = _unet_context(module)
        return lambda key: Place(UNET + name(key))
    if component == "vae":
        blocks = len(module.config.block_out_channels)
        return lambda key: (lambda p: p._replace(key=VAE + p.key))(_vae_name(key, blocks))
    prefix = PREFIXES[kind][component]
    if (kind, component) in OPENCLIP:
        return lambda key: (lambda p: p._replace(key=prefix + p.key))(_openclip_name(_text_key(key)))
    return lambda key: Place(prefix + _text_key(key))  # CLIP ViT-L keeps transformers' names under its prefix


def _text_key(key: str) -> str:
    """A text-encoder key as ``text_model.*`` (transformers 5's CLIPTextModel drops that prefix)."""
    return key if key.startswith(("text_model.", "text_projection.")) else "text_model." + key


def component_places(kind: str, components: dict[str, Any]) -> dict[str, dict[str, Place]]:
    """``{component: {diffusers key: Place}}`` for every weight of the pipeline's modules."""
    out: dict[str, dict[str, Place]] = {}
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = components.get(name)
        if module is None:
            continue
        place = original_name(kind, name, module)
        out[name] = {key: place(key) for key in module.state_dict()}
    return out


def _kind_of(pipe: Any) -> str:
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    return "sd2" if pipe.text_encoder.config.hidden_act == "gelu" else "sd1"


def to_original(pipe: Any, *, seed: int = 0, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """The pipeline's weights under the original file's keys, with what real files hold beyond them.

    ``dtype`` casts floating-point weights as they are gathered (one copy, in that dtype); without it each
    weight is a copy in its own dtype.

    Beyond diffusers' weights: CLIP's ``position_ids``; OpenCLIP's ``logit_scale``; and SD 2.x's 24th ViT-H
    layer and ``text_projection``, which SD 2.x never reads (random, seeded by ``seed``).
    """
    kind = _kind_of(pipe)
    components = {n: getattr(pipe, n, None) for n in ("unet", "vae", "text_encoder", "text_encoder_2")}
    out: dict[str, Tensor] = {}
    thirds: dict[str, list[Tensor | None]] = {}
    for name, places in component_places(kind, components).items():
        state = components[name].state_dict()
        for key, place in places.items():
            value = state[key].detach()
            if place.transpose:
                value = value.t()
            if place.conv:
                value = value[:, :, None, None]
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            if place.part is None:
                out[place.key] = value.contiguous().clone() if value.data_ptr() == state[key].data_ptr() else value
            else:
                thirds.setdefault(place.key, [None, None, None])[place.part] = value
    for key, parts in thirds.items():
        out[key] = torch.cat(parts)  # type: ignore[arg-type]
    _add_extras(kind, components, out, seed)
    if dtype is not None:
        out = {k: v.to(dtype) if v.is_floating_point() else v for k, v in out.items()}
    return out


def _add_extras(kind: str, components: dict[str, Any], out: dict[str, Tensor], seed: int) -> None:
    """What the original files hold that diffusers does not load."""
    if kind in ("sd1", "sdxl"):
        out[PREFIXES[kind]["text_encoder"] + "text_model.embeddings.position_ids"] = torch.arange(77)[None]
    for k, component in OPENCLIP:
        if k != kind:
            continue
        prefix = PREFIXES[kind][component]
        out[prefix + "logit_scale"] = torch.tensor(4.6052)  # log(100), CLIP's trained temperature
        if kind != "sd2":
            continue
        encoder = components[component]
        layers, width = encoder.config.num_hidden_layers, encoder.config.hidden_size
        generator = torch.Generator().manual_seed(seed)
        source = f"{prefix}transformer.resblocks.{layers - 1}."
        for key in [k for k in out if k.startswith(source)]:
            value = out[key]
            new = f"{prefix}transformer.resblocks.{layers}." + key[len(source) :]
            if value.is_meta:  # shapes only (a model built on "meta")
                out[new] = torch.empty_like(value)
                continue
            noise = torch.randn(value.shape, generator=generator, dtype=torch.float32).to(value.dtype)
            out[new] = value + 0.01 * noise
        projection = torch.randn(width, width, generator=generator) * width**-0.5
        out[prefix + "text_projection"] = projection.to(encoder.device)


def from_original(
    kind: str, components: dict[str, Any], read: Callable[[str], Tensor], keys: Iterable[str], dtype: torch.dtype
) -> None:
    """Fill the modules of ``components`` (built on any device, "meta" included) from an original-layout file.

    ``read(key)`` returns one tensor of the file, ``keys`` are the file's keys. Tensors are cast to ``dtype`` and
    assigned (no second copy). A weight the file lacks or holds in another shape raises :class:`SdlabError`.
    """
    available = set(keys)
    for name, places in component_places(kind, components).items():
        module = components[name]
        target = module.state_dict()
        state: dict[str, Tensor] = {}
        for key, place in places.items():
            if place.key not in available:
                raise SdlabError(
                    "the checkpoint lacks a weight of its architecture",
                    key=place.key,
                    component=name,
                    hint="the file is incomplete or of another architecture (pass config= for a diffusers config)",
                )
            value = read(place.key)
            if place.part is not None:
                value = value.chunk(3)[place.part]
            if place.transpose:
                value = value.t()
            if place.conv and value.ndim == 4:
                value = value[:, :, 0, 0]
            if tuple(value.shape) != tuple(target[key].shape):
                raise SdlabError(
                    "a checkpoint weight has another shape than its architecture",
                    key=place.key,
                    shape=tuple(value.shape),
                    expected=tuple(target[key].shape),
                    hint="pass config= with the diffusers config of this checkpoint",
                )
            state[key] = value.to(dtype).contiguous()
        module.load_state_dict(state, strict=True, assign=True)
        _materialise_buffers(module)


def _materialise_buffers(module: torch.nn.Module) -> None:
    """Non-persistent buffers left on "meta" (CLIP's position_ids) made real on the CPU."""
    for sub in module.modules():
        for name, buffer in list(sub.named_buffers(recurse=False)):
            if buffer.device.type != "meta":
                continue
            if name == "position_ids":
                sub.register_buffer(name, torch.arange(buffer.shape[-1]).expand(buffer.shape), persistent=False)
            else:
                raise SdlabError("a buffer was left unset when loading", buffer=f"{type(sub).__name__}.{name}")
