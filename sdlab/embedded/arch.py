"""The miniature Stable Diffusion: the same diffusers/transformers classes as SD 1.x, sized for a CPU.

* ``AutoencoderKL``: 64x64 RGB <-> 4 x 16 x 16 latents (1/4 resolution), ``scaling_factor`` = 1 / latent std.
* ``CLIPTextModel`` (3 layers, width 128) with a ``CLIPTokenizer`` whose byte-level BPE holds every caption
  word as one token and every byte as a fallback, so unknown words decompose into pieces.
* ``UNet2DConditionModel`` with cross-attention at 8x8 and 4x4, epsilon prediction.
* SD's scheduler: ``PNDMScheduler``, scaled_linear betas 0.00085 -> 0.012, 1000 steps.
* The tiny decoder: a TAESD-style ``AutoencoderTiny`` (:func:`build_tiny_vae`), distilled from the VAE.

Everything here builds untrained modules and the tokenizer; :mod:`sdlab.embedded.training.train` trains them and
:func:`save_pipeline` writes a real ``StableDiffusionPipeline`` folder.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sdlab.embedded.vocabulary import caption_vocabulary

__all__ = [
    "MAX_TOKENS",
    "SCHEDULER_CONFIG",
    "bytes_to_unicode",
    "train_bpe",
    "build_tokenizer",
    "write_tokenizer_files",
    "vae_config",
    "text_encoder_config",
    "unet_config",
    "build_models",
    "save_pipeline",
    "count_parameters",
    "build_tiny_vae",
]

MAX_TOKENS = 32  # longest caption is ~27 tokens with <|startoftext|> and <|endoftext|>
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# Stable Diffusion 1.x's scheduler_config.json, verbatim in meaning.
SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "trained_betas": None,
}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (printable Latin-1 bytes map to themselves)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def train_bpe(words: Iterable[str]) -> list[tuple[str, str]]:
    """Merges (in rank order) that turn each of ``words`` into a single ``word</w>`` token.

    Plain BPE training (Sennrich et al. 2016) on the word list, each word counted once: merge the most
    frequent adjacent pair (ties broken alphabetically) until every word is one symbol.
    """
    byte_char = bytes_to_unicode()
    seqs = {}
    for w in sorted(set(words)):
        chars = [byte_char[b] for b in w.encode("utf-8")]
        seqs[w] = chars[:-1] + [chars[-1] + "</w>"]
    merges: list[tuple[str, str]] = []
    while any(len(s) > 1 for s in seqs.values()):
        pairs: Counter[tuple[str, str]] = Counter()
        for s in seqs.values():
            pairs.update(zip(s, s[1:], strict=False))
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w, s in seqs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return merges


def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary layout: bytes, bytes + '</w>', merged symbols, then the two special tokens."""
    chars = list(bytes_to_unicode().values())
    merges = train_bpe([*caption_vocabulary(), ","])
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_tokenizer_files(folder: str | Path) -> Path:
    """Write ``vocab.json``, ``merges.txt``, ``tokenizer_config.json`` and ``special_tokens_map.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab_and_merges()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_TOKENS,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2), encoding="utf-8")
    return folder


def build_tokenizer() -> Any:
    """A ``CLIPTokenizer`` over the caption vocabulary (model_max_length 32, padding with <|endoftext|>)."""
    from transformers import CLIPTokenizer

    vocab, merges = _vocab_and_merges()
    return CLIPTokenizer(
        vocab=vocab, merges=merges, bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=EOS,
        model_max_length=MAX_TOKENS,
    )  # fmt: skip


def vae_config(*, tiny: bool = False) -> dict[str, Any]:
    """AutoencoderKL: 3 levels (32, 64, 64 channels), two downsamples -> 4 x 16 x 16 latents."""
    if tiny:  # smoke tests: same layout, few channels
        return vae_config() | {"block_out_channels": [8, 8, 8], "norm_num_groups": 4}
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
        "block_out_channels": [32, 64, 64],
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 16,
        "sample_size": 64,
        "scaling_factor": 1.0,  # set from the latent std after training, as SD did (0.18215)
    }


def text_encoder_config(vocab_size: int, *, bos_id: int, eos_id: int, tiny: bool = False) -> dict[str, Any]:
    """CLIPTextModel: 3 layers, width 128, 4 heads, 32 positions."""
    if tiny:
        base = text_encoder_config(vocab_size, bos_id=bos_id, eos_id=eos_id)
        return base | {"hidden_size": 16, "intermediate_size": 32, "projection_dim": 16, "num_hidden_layers": 1}
    return {
        "vocab_size": vocab_size,
        "hidden_size": 128,
        "intermediate_size": 512,
        "projection_dim": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "max_position_embeddings": MAX_TOKENS,
        "hidden_act": "quick_gelu",
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": eos_id,
    }


def unet_config(*, tiny: bool = False) -> dict[str, Any]:
    """UNet2DConditionModel on 4 x 16 x 16: ResNet blocks at 16x16, cross-attention at 8x8, 4x4 and mid."""
    if tiny:
        tiny_cfg = {"block_out_channels": [8, 8, 16], "norm_num_groups": 4, "cross_attention_dim": 16}
        return unet_config() | tiny_cfg | {"attention_head_dim": 2}
    return {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [48, 96, 160],
        "layers_per_block": 1,
        "norm_num_groups": 16,
        "cross_attention_dim": 128,
        "attention_head_dim": 4,  # diffusers' legacy name: this is the number of heads
    }


def build_models(seed: int = 0, *, tiny: bool = False) -> dict[str, Any]:
    """Untrained ``vae``, ``text_encoder``, ``unet`` (seeded init), the ``tokenizer`` and the ``scheduler``.

    ``tiny=True`` gives the same layout with a few channels (smoke tests).
    """
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    vae = AutoencoderKL(**vae_config(tiny=tiny))
    ids = {"bos_id": tokenizer.bos_token_id, "eos_id": tokenizer.eos_token_id}
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_encoder_config(len(tokenizer), **ids, tiny=tiny)))
    unet = UNet2DConditionModel(**unet_config(tiny=tiny))
    scheduler = PNDMScheduler.from_config(SCHEDULER_CONFIG)
    return {"vae": vae, "text_encoder": text_encoder, "unet": unet, "tokenizer": tokenizer, "scheduler": scheduler}


def save_pipeline(folder: str | Path, models: dict[str, Any], *, dtype: str = "float16") -> Path:
    """Write a diffusers ``StableDiffusionPipeline`` folder (safetensors, weights stored as ``dtype``)."""
    import torch
    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    pipe = StableDiffusionPipeline(
        vae=models["vae"],
        text_encoder=models["text_encoder"],
        tokenizer=models["tokenizer"],
        unet=models["unet"],
        scheduler=models["scheduler"],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(getattr(torch, dtype)).save_pretrained(folder, safe_serialization=True)
    pipe.to(torch.float32)
    write_tokenizer_files(folder / "tokenizer")  # vocab.json + merges.txt next to tokenizer.json
    return folder


def count_parameters(models: dict[str, Any]) -> dict[str, int]:
    """Parameter counts of the ``vae``, ``text_encoder`` and ``unet`` present in ``models``."""
    return {
        name: sum(p.numel() for p in models[name].parameters())
        for name in ("vae", "text_encoder", "unet")
        if name in models
    }


def build_tiny_vae() -> Any:
    """The architecture: 4-channel latents at 1/4 resolution; a 16-channel decoder (two blocks at 16x16, one at
    32x32, two 2x upsamplings), sized so a decode costs ~2 ms per 64x64 image on one CPU thread."""
    from diffusers import AutoencoderTiny

    return AutoencoderTiny(
        encoder_block_out_channels=(32, 32, 32),
        decoder_block_out_channels=(16, 16, 16),
        num_encoder_blocks=(1, 1, 1),
        num_decoder_blocks=(2, 1, 0),
        latent_channels=4,
    )
