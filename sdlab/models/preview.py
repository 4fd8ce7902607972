"""A1111's "Approx cheap" live preview: latents to RGB by one linear map per pixel, no VAE.

``rgb = latents . M (+ bias)`` maps a (C, h, w) latent to (3, h, w) in about [-1, 1]; the preview is
``clamp(rgb * 0.5 + 0.5, 0, 1)`` at latent resolution (``modules/sd_vae_approx.cheap_approximation``).
SD 1.x/2.x and SDXL have their own 4x3 matrices. A model with another latent space can ship its own in a
``sdlab_preview.json`` next to its ``model_index.json``::

    {"matrix": [[r, g, b], ...one row per latent channel...], "bias": [r, g, b]}

Without one, :func:`normalised_preview` shows the first three latent channels, each image stretched to [0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError

__all__ = [
    "SD_LATENT_RGB",
    "SDXL_LATENT_RGB",
    "PREVIEW_FILE",
    "linear_preview",
    "normalised_preview",
    "read_preview_file",
    "preview_coefficients",
]

PREVIEW_FILE = "sdlab_preview.json"

# Rows: latent channels 0..3; columns: R, G, B (A1111's values for SD 1.x/2.x and for SDXL).
SD_LATENT_RGB = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
SDXL_LATENT_RGB = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)

# The stock SD / SDXL autoencoder, whose latent space those matrices describe.
_SD_VAE_BLOCKS = (128, 256, 512, 512)

Coefficients = tuple[Tensor, Tensor | None]


def linear_preview(latents: Tensor, matrix: Tensor | Sequence[Sequence[float]], bias: Any = None) -> Tensor:
    """``clamp((latents . matrix + bias) * 0.5 + 0.5, 0, 1)``: (B, C, h, w) latents to (B, 3, h, w) float32 CPU."""
    latents = latents.detach().float().cpu()
    matrix = torch.as_tensor(matrix, dtype=torch.float32)
    if latents.ndim != 4 or matrix.shape != (latents.shape[1], 3):
        raise SdlabError(
            "preview needs (B, C, h, w) latents and a (C, 3) matrix",
            latents=tuple(latents.shape),
            matrix=tuple(matrix.shape),
        )
    rgb = torch.einsum("bchw,cr->brhw", latents, matrix)
    if bias is not None:
        rgb = rgb + torch.as_tensor(bias, dtype=torch.float32).view(1, 3, 1, 1)
    return (rgb * 0.5 + 0.5).clamp(0, 1)


def normalised_preview(latents: Tensor) -> Tensor:
    """The first three latent channels as RGB (fewer are repeated), each image min-max scaled to [0, 1]."""
    latents = latents.detach().float().cpu()
    if latents.ndim != 4:
        raise SdlabError("preview needs (B, C, h, w) latents", latents=tuple(latents.shape))
    rgb = latents[:, [i % latents.shape[1] for i in range(3)]]
    low = rgb.amin(dim=(1, 2, 3), keepdim=True)
    high = rgb.amax(dim=(1, 2, 3), keepdim=True)
    return (rgb - low) / (high - low).clamp_min(1e-8)


def read_preview_file(folder: str | Path, channels: int) -> Coefficients | None:
    """The (C, 3) matrix and optional bias of ``folder/sdlab_preview.json``; None if there is no such file."""
    path = Path(folder) / PREVIEW_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        matrix = torch.tensor(data["matrix"], dtype=torch.float32)
        bias = None if data.get("bias") is None else torch.tensor(data["bias"], dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SdlabError(
            f"unreadable preview file: {exc}", file=str(path), hint=f"fix or delete {PREVIEW_FILE}"
        ) from exc
    if matrix.shape != (channels, 3) or (bias is not None and bias.shape != (3,)):
        raise SdlabError(
            "preview matrix must be (latent channels, 3) and bias (3,)",
            file=str(path),
            matrix=tuple(matrix.shape),
            channels=channels,
        )
    return matrix, bias


def preview_coefficients(kind: str, vae_config: Any, folder: str | Path | None = None) -> Coefficients | None:
    """The preview map for a model: its ``sdlab_preview.json``, else A1111's SD or SDXL matrix when the VAE is
    the stock 4-channel SD autoencoder, else None (use :func:`normalised_preview`)."""
    channels = int(vae_config.get("latent_channels", 4))
    if folder is not None and (found := read_preview_file(folder, channels)) is not None:
        return found
    if channels == 4 and tuple(vae_config.get("block_out_channels", ())) == _SD_VAE_BLOCKS:
        return torch.tensor(SDXL_LATENT_RGB if kind == "sdxl" else SD_LATENT_RGB), None
    return None
