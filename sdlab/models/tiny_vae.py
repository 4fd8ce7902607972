"""A tiny decoder (TAESD, "Tiny AutoEncoder for Stable Diffusion") for cheap, close-to-VAE images of latents.

A1111 offers it for live previews ("TAESD"); sdlab uses it where a full VAE decode per step costs as much as the
sampling itself: per-step image metrics over a whole trajectory (``decode="tiny"``). It is a distilled
approximation of the model's VAE decoder, so metrics on its images approximate the full decode's (the benchmark
``benchmarks/bench_metrics_overhead.py`` reports how closely).

Where its weights come from (a diffusers ``AutoencoderTiny`` folder or hub id):

- the embedded model: its own tiny decoder, shipped in ``sdlab/embedded/weights/mini-sd-taesd`` (trained by
  ``scripts/train_tiny_decoder.py``);
- SD 1.x / 2.x: ``madebyollin/taesd``; SDXL: ``madebyollin/taesdxl`` (downloaded once when online, then cached);
- any model: ``SDLAB_TAESD=<folder or hub id>`` in the environment, or :func:`load_tiny_vae` ``(model, source)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdlab import environment
from sdlab.embedded import WEIGHTS_DIR, tiny_decoder_dir
from sdlab.errors import SdlabError

__all__ = ["TAESD_HUB", "tiny_vae_source", "load_tiny_vae", "tiny_decode"]

TAESD_HUB = {"sd1": "madebyollin/taesd", "sd2": "madebyollin/taesd", "sdxl": "madebyollin/taesdxl"}


def tiny_vae_source(model: Any) -> str:
    """Where ``model``'s tiny decoder comes from: ``SDLAB_TAESD``, the embedded one, or TAESD's hub id."""
    if os.environ.get("SDLAB_TAESD"):
        return os.environ["SDLAB_TAESD"]
    source = getattr(model, "source", None)
    if source is not None and Path(source).resolve() == (WEIGHTS_DIR / "mini-sd").resolve():
        return str(tiny_decoder_dir())
    return TAESD_HUB.get(getattr(model, "kind", ""), TAESD_HUB["sd1"])


def load_tiny_vae(model: Any, source: str | Path | None = None) -> Any:
    """``model``'s tiny decoder (a diffusers ``AutoencoderTiny``) on its device, float32 (cached on the model)."""
    cached = getattr(model, "_tiny_vae", None)
    if cached is not None and source is None:
        return cached
    from diffusers import AutoencoderTiny

    src = str(source) if source is not None else tiny_vae_source(model)
    offline = environment.offline()
    try:
        vae = AutoencoderTiny.from_pretrained(src, torch_dtype=torch.float32, local_files_only=offline)
    except Exception as e:  # diffusers raises OSError, ValueError, EnvironmentError... for a missing folder or id
        raise SdlabError(
            f"cannot load the tiny decoder (TAESD) {src!r}: {e}",
            source=src,
            model=getattr(model, "model_id", None),
            hint=f"download it once while online (`huggingface-cli download {src}`), set SDLAB_TAESD to a local "
            "AutoencoderTiny folder, or use decode='full' (the VAE) / 'preview' (cheap linear)",
        ) from e
    vae = vae.to(model.device).eval().requires_grad_(False)
    if source is None:
        object.__setattr__(model, "_tiny_vae", vae)
    return vae


@torch.no_grad()
def tiny_decode(model: Any, latents: Tensor, *, batch_size: int = 64) -> Tensor:
    """Scaled latents (B, C, h, w), as the UNet sees them, to images (B, 3, H, W) float32 on the CPU in [0, 1]."""
    vae = load_tiny_vae(model)
    out = []
    for chunk in latents.split(batch_size):
        image = vae.decode(chunk.to(model.device, torch.float32), return_dict=False)[0]
        out.append(((image.float() + 1) / 2).clamp(0, 1).cpu())
    return torch.cat(out)
