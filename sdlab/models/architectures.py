"""Stable Diffusion 1.5, 2.1-v and SDXL base 1.0 built in code from their published numbers, random weights.

No hub: the UNet, VAE and text-encoder configs are written here from the published hyper-parameters, the CLIP
tokenizer from a CLIP vocabulary found on this machine (else a byte-level stand-in of the same size). A model with
random weights has exactly the cost and memory of the real one; ``width`` narrows every channel count for fast
tests while keeping every layer, so the key structure of the files is the real one.

>>> pipe = build_pipeline("sd15", width=0.1, seed=0)         # channels 32/64/128/128 instead of 320/640/1280/1280
>>> write_single_file(pipe, "sd15-narrow.safetensors")       # the CompVis layout, fp16, as A1111 users hold it
>>> write_folder(pipe, "sd15-narrow")                        # a diffusers folder

=========  ==========================================  ====================  =========================
name       UNet (channels, heads, transformer depth)   text encoder(s)       latent, native size
=========  ==========================================  ====================  =========================
sd15       320/640/1280/1280, 8 heads, depth 1, 768    CLIP ViT-L/14         4 x 64 x 64, 512 px, eps
sd21-v     same, 64-dim heads, linear proj., 1024      OpenCLIP ViT-H/14     4 x 96 x 96, 768 px, v
sdxl-base  320/640/1280, 64-dim heads, depth 0/2/10    CLIP-L + OpenCLIP     4 x 128 x 128, 1024 px, eps
           2048, size conditioning (2816)              bigG/14 (pooled)
=========  ==========================================  ====================  =========================
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sdlab.errors import SdlabError, closest
from sdlab.models import layout

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "architecture",
    "unet_config",
    "vae_config",
    "text_encoder_config",
    "scheduler_config",
    "clip_tokenizer",
    "build_pipeline",
    "build_components",
    "assemble",
    "write_folder",
    "write_single_file",
]

VOCAB_SIZE = 49408  # CLIP's BPE vocabulary: 256 bytes, 256 bytes + "</w>", 48,894 merges, BOS, EOS
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_MERGES = VOCAB_SIZE - 2 * 256 - 2


@dataclass(frozen=True)
class Architecture:
    """One published model: its kind, prediction type, native latent side and text encoders."""

    name: str
    kind: str  # "sd1" | "sd2" | "sdxl" (SDModel.kind)
    prediction_type: str  # "epsilon" | "v_prediction"
    sample_size: int  # the UNet's native latent side (pixels / 8)
    unet_channels: int  # the first UNet block's channels at full width
    text_encoders: tuple[str, ...]  # "clip-l", "openclip-h", "openclip-bigg"


ARCHITECTURES: dict[str, Architecture] = {
    "sd15": Architecture("sd15", "sd1", "epsilon", 64, 320, ("clip-l",)),
    "sd21-v": Architecture("sd21-v", "sd2", "v_prediction", 96, 320, ("openclip-h",)),
    "sd21-base": Architecture("sd21-base", "sd2", "epsilon", 64, 320, ("openclip-h",)),
    "sdxl-base": Architecture("sdxl-base", "sdxl", "epsilon", 128, 320, ("clip-l", "openclip-bigg")),
}
# text encoders as transformers holds them: hidden size, layers, activation, pad token, projection
_TEXT = {
    "clip-l": (768, 12, "quick_gelu", EOS),
    "openclip-h": (1024, 23, "gelu", "!"),  # 24 in the file; SD 2.x reads the penultimate, so diffusers keeps 23
    "openclip-bigg": (1280, 32, "gelu", "!"),
}


def architecture(name: str) -> Architecture:
    """The :class:`Architecture` called ``name`` ("sd15", "sd21-v", "sd21-base" or "sdxl-base")."""
    if name not in ARCHITECTURES:
        raise SdlabError(f"unknown architecture {name!r}", architecture=name, hint=closest(name, ARCHITECTURES))
    return ARCHITECTURES[name]


def _scaled(channels: int, width: float, step: int) -> int:
    """``channels * width`` rounded to a multiple of ``step`` (at least ``step``)."""
    return max(step, round(channels * width / step) * step)


# --- configs -------------------------------------------------------------------------------------------------


def unet_config(
    kind: str, channels: int = 320, *, context: int | None = None, pooled: int = 1280, sample_size: int | None = None
) -> dict[str, Any]:
    """The diffusers ``UNet2DConditionModel`` config of ``kind`` with ``channels`` in its first block (320 full).

    ``context`` is the text encoders' width (768, 1024, 768 + 1280 at full size), ``pooled`` SDXL's pooled
    text embedding width (bigG's 1280).

    SD 1.x: 8 heads everywhere (diffusers' ``attention_head_dim`` holds the head count); SD 2.x and SDXL: heads of
    64 channels (one at least at narrow widths). SDXL: no attention in the first block, depths 2 and 10 below.
    """
    if channels % 32:
        raise SdlabError("UNet channels must be a multiple of 32 (group norm)", channels=channels)
    common = {
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "act_fn": "silu",
        "center_input_sample": False,
        "downsample_padding": 1,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-5,
    }
    if kind == "sdxl":
        blocks = [channels, channels * 2, channels * 4]
        return {
            **common,
            "sample_size": sample_size or 128,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "block_out_channels": blocks,
            "attention_head_dim": [max(1, c // 64) for c in blocks],
            "transformer_layers_per_block": [1, 2, 10],
            "cross_attention_dim": context or 2048,
            "use_linear_projection": True,
            "upcast_attention": False,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 6 * 256 + pooled,  # 6 size embeddings + bigG's pooled (2816)
        }
    blocks = [channels, channels * 2, channels * 4, channels * 4]
    config = {
        **common,
        "sample_size": sample_size or 64,
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        "block_out_channels": blocks,
    }
    if kind == "sd1":
        return {**config, "attention_head_dim": 8, "cross_attention_dim": context or 768}
    if kind == "sd2":
        return {
            **config,
            "attention_head_dim": [max(1, c // 64) for c in blocks],
            "cross_attention_dim": context or 1024,
            "use_linear_projection": True,
            "upcast_attention": True,  # SD 2.1's attention softmax in fp32
        }
    raise SdlabError(f"unknown model kind {kind!r}", kind=kind, hint="one of sd1, sd2, sdxl")


def vae_config(kind: str, channels: int = 128) -> dict[str, Any]:
    """The diffusers ``AutoencoderKL`` config (``channels`` in the first block: 128 full; 4 latent channels)."""
    if channels % 32:
        raise SdlabError("VAE channels must be a multiple of 32 (group norm)", channels=channels)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [channels, channels * 2, channels * 4, channels * 4],
        "layers_per_block": 2,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "act_fn": "silu",
        "sample_size": {"sd1": 512, "sd2": 768, "sdxl": 1024}[kind],
        "scaling_factor": 0.13025 if kind == "sdxl" else 0.18215,
        "force_upcast": kind == "sdxl",  # SDXL's VAE overflows in fp16
    }


def text_encoder_config(which: str, hidden: int | None = None, layers: int | None = None) -> dict[str, Any]:
    """A transformers ``CLIPTextConfig`` (as a dict) of "clip-l", "openclip-h" or "openclip-bigg".

    ``hidden`` narrows the width (a multiple of 64: heads of 64 channels); ``layers`` overrides the depth.
    """
    if which not in _TEXT:
        raise SdlabError(f"unknown text encoder {which!r}", encoder=which, hint=closest(which, _TEXT))
    full, depth, act, pad = _TEXT[which]
    hidden = hidden or full
    if hidden % 64:
        raise SdlabError("text encoder width must be a multiple of 64", encoder=which, hidden=hidden)
    return {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": layers or depth,
        "num_attention_heads": hidden // 64,
        "max_position_embeddings": 77,
        "hidden_act": act,
        "layer_norm_eps": 1e-5,
        "projection_dim": hidden,
        "bos_token_id": VOCAB_SIZE - 2,
        "eos_token_id": 2,  # as the published configs: the pooled token is the argmax id (EOS), as OpenCLIP does
        "pad_token_id": VOCAB_SIZE - 1 if pad == EOS else 0,
    }


def scheduler_config(kind: str, prediction_type: str = "epsilon") -> tuple[str, dict[str, Any]]:
    """(diffusers scheduler class name, config): the published training schedule (scaled linear, 1000 steps)."""
    common = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
    if kind == "sd1":
        return "PNDMScheduler", {**common, "skip_prk_steps": True, "set_alpha_to_one": False, "steps_offset": 1}
    if kind == "sd2":
        options = {"clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}
        return "DDIMScheduler", {**common, **options, "prediction_type": prediction_type}
    return "EulerDiscreteScheduler", {**common, "steps_offset": 1, "prediction_type": prediction_type}


# --- the CLIP tokenizer --------------------------------------------------------------------------------------


def _byte_symbols() -> list[str]:
    """The printable stand-ins CLIP's byte-level BPE uses for the 256 byte values, in its vocabulary order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in keep]  # mapped to 256, 257, ... in byte order
    codes = keep + [256 + i for i in range(len(rest))]
    return [chr(c) for c in codes]


def _vocab_files() -> tuple[Path, Path] | None:
    """vocab.json and merges.txt of CLIP ViT-L/14's tokenizer in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = []
    for name in ("vocab.json", "merges.txt"):
        path = try_to_load_from_cache("openai/clip-vit-large-patch14", name)
        if not isinstance(path, str):
            return None
        found.append(Path(path))
    return found[0], found[1]


def _open_clip_merges() -> list[str] | None:
    """CLIP's merges from the BPE file OpenCLIP ships, when ``open_clip_torch`` is installed (not imported)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        return None
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    return lines[1 : 1 + _MERGES]


@functools.cache
def _vocabulary() -> tuple[str, str, str]:
    """(vocab.json text, merges.txt text, where it came from); a byte-level stand-in when no CLIP vocabulary."""
    files = _vocab_files()
    if files is not None:
        return files[0].read_text(encoding="utf-8"), files[1].read_text(encoding="utf-8"), "hub cache"
    symbols = _byte_symbols()
    tokens = [*symbols, *(s + "</w>" for s in symbols)]
    merges = _open_clip_merges()
    if merges is not None:
        tokens += ["".join(m.split()) for m in merges]
        source = "open_clip"
    else:  # no merges: every character is one token; unused slots keep the vocabulary's size and ids
        merges = []
        tokens += [f"<|sdlab_unused_{i}|>" for i in range(_MERGES)]
        source = "byte-level stand-in"
    tokens += [BOS, EOS]
    vocab = json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False)
    return vocab, "".join(f"{line}\n" for line in ["#version: 0.2", *merges]), source


def clip_tokenizer(*, pad_token: str = EOS, warn: bool = False) -> Any:
    """CLIP's tokenizer (49,408 ids, 77 tokens): SD 1.x and SDXL's first pads with EOS, OpenCLIP's with "!".

    The vocabulary comes from the local Hugging Face cache (openai/clip-vit-large-patch14) or from an installed
    ``open_clip_torch``; without either, a byte-level stand-in with the same ids for bytes, BOS and EOS, which
    reads prompts one character per token (``warn=True`` says so: fine for random weights, not for real ones).
    """
    from transformers import CLIPTokenizer

    vocab, merges, source = _vocabulary()
    if warn and source == "byte-level stand-in":
        warnings.warn(
            "no CLIP vocabulary on this machine: prompts are read one character per token, not as CLIP reads "
            "them (pip install open_clip_torch, or cache openai/clip-vit-large-patch14's tokenizer)",
            stacklevel=2,
        )
    with tempfile.TemporaryDirectory(prefix="sdlab-clip-") as folder:
        Path(folder, "vocab.json").write_text(vocab, encoding="utf-8")
        Path(folder, "merges.txt").write_text(merges, encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, pad_token=pad_token, model_max_length=77)


# --- building ------------------------------------------------------------------------------------------------


def build_components(
    kind: str,
    prediction_type: str,
    *,
    unet_channels: int,
    vae_channels: int,
    text_hidden: dict[str, int],
    sample_size: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    warn_tokenizer: bool = False,
) -> dict[str, Any]:
    """The pipeline's components (modules built on ``device``, "meta" for no memory), keyed as diffusers names them."""
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    encoders = ("clip-l", "openclip-bigg") if kind == "sdxl" else ("openclip-h",) if kind == "sd2" else ("clip-l",)
    out: dict[str, Any] = {}
    widths = [text_hidden.get(w) or _TEXT[w][0] for w in encoders]
    unet = unet_config(kind, unet_channels, context=sum(widths), pooled=widths[-1], sample_size=sample_size)
    with torch.device(device):
        out["unet"] = UNet2DConditionModel(**unet)
        out["vae"] = AutoencoderKL(**vae_config(kind, vae_channels))
        for i, which in enumerate(encoders):
            suffix = "" if i == 0 else f"_{i + 1}"
            config = CLIPTextConfig(**text_encoder_config(which, text_hidden.get(which)))
            cls = CLIPTextModelWithProjection if which == "openclip-bigg" else CLIPTextModel
            out["text_encoder" + suffix] = cls(config)
            out["tokenizer" + suffix] = clip_tokenizer(pad_token=_TEXT[which][3], warn=warn_tokenizer and i == 0)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name in out and str(device) != "meta":
            if dtype != torch.float32:
                out[name].to(dtype=dtype)
            out[name].eval().requires_grad_(False)
    scheduler_name, config = scheduler_config(kind, prediction_type)
    out["scheduler"] = getattr(diffusers, scheduler_name).from_config(config)
    return out


def assemble(components: dict[str, Any]) -> Any:
    """A ``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline`` of the components."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if "text_encoder_2" in components:
        return StableDiffusionXLPipeline(**components, force_zeros_for_empty_prompt=True)
    return StableDiffusionPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )


def build_pipeline(name: str = "sd15", *, width: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float32) -> Any:
    """The published architecture ``name`` as a diffusers pipeline with random weights seeded by ``seed``.

    ``width`` scales every channel count (UNet and VAE to multiples of 32, text encoders to multiples of 64);
    depths, heads per 64 channels, vocabulary and context length stay, so the key structure is the real one.
    Norms get random scales and shifts, as trained weights have. The global torch RNG is left untouched.
    """
    arch = architecture(name)
    if not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise SdlabError("width must be in (0, 1]", width=width, hint="e.g. 0.1 for a fast test, 1 for full size")
    hidden = {w: _scaled(_TEXT[w][0], width, 64) for w in _TEXT}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        components = build_components(
            arch.kind,
            arch.prediction_type,
            unet_channels=_scaled(arch.unet_channels, width, 32),
            vae_channels=_scaled(128, width, 32),
            text_hidden=hidden,
            sample_size=arch.sample_size,
            dtype=dtype,
        )
        for component in components.values():
            if isinstance(component, torch.nn.Module):
                _randomise_norms(component)
    return assemble(components)


def _randomise_norms(module: torch.nn.Module) -> None:
    """Random norm scales and shifts: fresh ones make CLIP's output exactly zero-mean (A1111's emphasis divides)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)) and m.weight is not None:
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 + 0.1 * torch.randn_like(m.bias))


# --- writing -------------------------------------------------------------------------------------------------


def write_folder(pipe: Any, folder: str | Path) -> Path:
    """The pipeline as a diffusers folder (model_index.json, one subfolder per component, safetensors)."""
    folder = Path(folder)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def write_single_file(pipe: Any, path: str | Path, *, dtype: torch.dtype | None = torch.float16, seed: int = 0) -> Path:
    """The pipeline as one ``.safetensors`` file in the original checkpoint layout (see :mod:`.layout`).

    fp16 by default, as A1111 users hold them (``dtype=None`` keeps the weights' dtype). The prediction type is
    recorded in the file's metadata (``modelspec.prediction_type``), which :func:`~sdlab.models.load_model` reads.
    ``seed`` seeds what the original layout holds beyond diffusers' weights (SD 2.x's unused last text layer).
    """
    from safetensors.torch import save_file

    state = layout.to_original(pipe, seed=seed, dtype=dtype)
    prediction = pipe.scheduler.config.get("prediction_type", "epsilon")
    metadata = {"modelspec.prediction_type": "v" if prediction == "v_prediction" else "epsilon"}
    path = Path(path)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=metadata)
    return path
