"""Tiny Stable Diffusion pipelines with random seeded weights, built in code, for fast offline tests.

Nothing here downloads anything: the UNet, VAE and CLIP text encoders use tiny configs and the CLIP
tokenizer is built from a small byte-level vocabulary written to a temporary folder.

>>> from sdlab.testing import tiny_model
>>> model = tiny_model("sd1")                      # an SDModel on the CPU, float32
>>> model.latent_shape(64, 64)                     # (channels, height / 8, width / 8)
(4, 8, 8)

Not imported by ``sdlab/__init__.py``: it needs diffusers and transformers.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.models import layout
from sdlab.models.loading import SDModel, wrap_pipeline

__all__ = ["TINY_KINDS", "tiny_pipeline", "tiny_model", "tiny_tokenizer", "original_sd_state_dict", "save_single_file"]

TINY_KINDS = ("sd1", "sd2-v", "sdxl")

# Whole words of the tiny vocabulary (anything else falls back to one token per character).
_WORDS = (
    *("a", "an", "the", "of", "on", "in", "and", "with", "very", "beautiful", "cat", "dog", "house", "hill"),
    *("sun", "sky", "photo", "portrait", "woman", "man", "forest", "mountain", "lake", "city", "night", "red"),
    *("blue", "green", "landscape", "masterpiece", "best", "quality", "worst", "low", "blurry", "important"),
    *("word", "normal", "text", "literal", "unnecessary", "parens", "fantasy", "oak", "tree", "christmas"),
    *("foreground", "background"),
)

_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in CLIP's vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def _vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """A CLIP-style BPE vocabulary: bytes, bytes + ``</w>``, a few merged words, then BOS and EOS last."""
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    merges: list[str] = []
    for word in _WORDS:
        parts = [*word[:-1], word[-1] + "</w>"]
        left = parts[0]
        for right in parts[1:]:
            if f"{left} {right}" not in merges:
                merges.append(f"{left} {right}")
            left += right
            vocab.setdefault(left, len(vocab))
    vocab[_BOS] = len(vocab)
    vocab[_EOS] = len(vocab)
    return vocab, merges


def tiny_tokenizer(*, pad_token: str = _EOS) -> Any:
    """A CLIPTokenizer over a ~620-token vocabulary (``pad_token="!"`` gives SD2/OpenCLIP's padding)."""
    from transformers import CLIPTokenizer

    vocab, merges = _vocab_and_merges()
    with tempfile.TemporaryDirectory(prefix="sdlab-tok-") as folder:
        Path(folder, "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        Path(folder, "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, pad_token=pad_token, model_max_length=77)


def _text_encoder(tokenizer: Any, *, hidden_act: str, projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=3,  # three layers so that CLIP skip 2 has a layer to skip
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=hidden_act,  # SD1's CLIP-L uses quick_gelu, SD2's OpenCLIP gelu
        projection_dim=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def _vae(*, scaling_factor: float, force_upcast: bool) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,  # four blocks: the real 8x downscale
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=scaling_factor,
        force_upcast=force_upcast,
    ).eval()


def _unet(kind: str, cross_attention_dim: int) -> Any:
    from diffusers import UNet2DConditionModel

    options: dict[str, Any] = {}
    if kind == "sd2-v":
        options = {"use_linear_projection": True, "upcast_attention": True}
    elif kind == "sdxl":
        options = {
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + 32,  # 6 size numbers + the pooled text embedding
        }
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        attention_head_dim=2,
        cross_attention_dim=cross_attention_dim,
        **options,
    ).eval()


def _scheduler(kind: str) -> Any:
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, PNDMScheduler

    common = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
    if kind == "sd1":  # what the SD 1.5 folder ships
        return PNDMScheduler(**common, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    if kind == "sd2-v":  # SD 2.1 (768-v)
        return DDIMScheduler(
            **common, prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False, steps_offset=1
        )
    return EulerDiscreteScheduler(**common, steps_offset=1)  # SDXL base


def tiny_pipeline(kind: str = "sd1", seed: int = 0) -> Any:
    """A diffusers pipeline of ``kind`` ("sd1", "sd2-v" or "sdxl") with random weights seeded by ``seed``.

    The global torch RNG is left untouched. Latents are (4, h/8, w/8); a UNet forward takes milliseconds.
    """
    if kind not in TINY_KINDS:
        raise SdlabError(f"unknown tiny model kind {kind!r}", kind=kind, hint=closest(kind, TINY_KINDS))
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "sdxl":
            tokenizer, tokenizer_2 = tiny_tokenizer(), tiny_tokenizer(pad_token="!")
            pipe = StableDiffusionXLPipeline(
                vae=_vae(scaling_factor=0.13025, force_upcast=True),
                text_encoder=_text_encoder(tokenizer, hidden_act="quick_gelu", projection=False),
                text_encoder_2=_text_encoder(tokenizer_2, hidden_act="gelu", projection=True),
                tokenizer=tokenizer,
                tokenizer_2=tokenizer_2,
                unet=_unet(kind, cross_attention_dim=64),  # CLIP-L (32) + bigG (32) hidden sizes
                scheduler=_scheduler(kind),
                force_zeros_for_empty_prompt=True,
            )
        else:
            tokenizer = tiny_tokenizer(pad_token="!" if kind == "sd2-v" else _EOS)
            hidden_act = "gelu" if kind == "sd2-v" else "quick_gelu"
            pipe = StableDiffusionPipeline(
                vae=_vae(scaling_factor=0.18215, force_upcast=False),
                text_encoder=_text_encoder(tokenizer, hidden_act=hidden_act, projection=False),
                tokenizer=tokenizer,
                unet=_unet(kind, cross_attention_dim=32),
                scheduler=_scheduler(kind),
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        _randomise_norms(pipe)
    return pipe


def _randomise_norms(pipe: Any) -> None:
    """Give every layer/group norm random scales and shifts, as trained weights have.

    Freshly initialised norms (scale 1, shift 0) make CLIP's output exactly zero-mean, which A1111's
    mean-restoring emphasis would divide by.
    """
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            for module in component.modules():
                if isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm)) and module.weight is not None:
                    with torch.no_grad():
                        module.weight.copy_(1 + 0.1 * torch.randn_like(module.weight))
                        module.bias.copy_(0.1 + 0.1 * torch.randn_like(module.bias))


def tiny_model(kind: str = "sd1", seed: int = 0) -> SDModel:
    """:func:`tiny_pipeline` wrapped as an :class:`~sdlab.models.SDModel` on the CPU in float32."""
    return wrap_pipeline(tiny_pipeline(kind, seed), model_id=f"sdlab-tiny-{kind}-seed{seed}", device="cpu")


def original_sd_state_dict(pipe: Any) -> dict[str, Tensor]:
    """A pipeline's weights under the original single-file (CompVis / A1111 ``.safetensors``) keys, as
    :func:`sdlab.models.layout.to_original` writes them."""
    return layout.to_original(pipe)


def save_single_file(pipe: Any, path: str | Path) -> Path:
    """Write a pipeline as one ``.safetensors`` file in the original (A1111) key layout."""
    from safetensors.torch import save_file

    path = Path(path)
    save_file(original_sd_state_dict(pipe), str(path))
    return path
