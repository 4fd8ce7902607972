"""Upper bounds, checked before any work starts: image size against a sane limit and the memory at hand, and the
volume of a sweep grid.

Both limits are overridable through the environment, for the rare user who means it::

    SDLAB_MAX_PIXELS=67108864 sdlab generate --size 8192x8192 ...     # default 4096 x 4096 = 16.8 M pixels
    SDLAB_MAX_SWEEP_IMAGES=1000000 sdlab sweep big.toml --out runs/big  # default 100,000 images per sweep

The memory check only refuses what cannot fit: an estimate of the VAE decoder's peak activations (the largest
tensor of a run, about 1.5 KB per output pixel in float32) against the memory available on the device.
"""

from __future__ import annotations

import os
from typing import Any

from sdlab.errors import SdlabError

__all__ = ["MAX_PIXELS", "MAX_SWEEP_IMAGES", "max_pixels", "max_sweep_images", "available_memory", "check_image"]

MAX_PIXELS = 4096 * 4096
MAX_SWEEP_IMAGES = 100_000
PIXELS_ENV = "SDLAB_MAX_PIXELS"
SWEEP_ENV = "SDLAB_MAX_SWEEP_IMAGES"
# the VAE decoder's last up block holds ~3 tensors of 128 channels at full resolution: 128 * 3 * 4 bytes per pixel
DECODE_BYTES_PER_PIXEL = 128 * 3 * 4


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SdlabError(f"{name} must be a positive integer", setting=name, got=raw) from None
    if value < 1:
        raise SdlabError(f"{name} must be a positive integer", setting=name, got=raw)
    return value


def max_pixels() -> int:
    """Largest width x height of one image (``SDLAB_MAX_PIXELS``, default 4096 x 4096)."""
    return _env_int(PIXELS_ENV, MAX_PIXELS)


def max_sweep_images() -> int:
    """Most images one sweep may compute (``SDLAB_MAX_SWEEP_IMAGES``, default 100,000)."""
    return _env_int(SWEEP_ENV, MAX_SWEEP_IMAGES)


def available_memory(device: Any = "cpu") -> int | None:
    """Bytes free for a new allocation on ``device`` (host: MemAvailable; CUDA: free device memory); None if unknown."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        try:
            import torch

            free, _total = torch.cuda.mem_get_info(device)
            return int(free)
        except Exception:  # no driver, no such device: nothing to check against
            return None
    if kind != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_image(width: int, height: int, *, batch: int = 1, device: Any = "cpu", **context: Any) -> None:
    """SdlabError unless ``batch`` images of ``width`` x ``height`` are within the pixel limit and fit in memory."""
    pixels = int(width) * int(height)
    limit = max_pixels()
    if pixels > limit:
        raise SdlabError(
            f"{width}x{height} is {pixels:,} pixels, over the limit of {limit:,}",
            size=f"{width}x{height}",
            **context,
            hint=f"use a smaller size, or set {PIXELS_ENV}={pixels} if you mean it",
        )
    need = pixels * max(int(batch), 1) * DECODE_BYTES_PER_PIXEL
    free = available_memory(device)
    if free is not None and need > free:
        raise SdlabError(
            f"{batch} image(s) of {width}x{height} need about {need / 2**30:.1f} GiB to decode, "
            f"but {free / 2**30:.1f} GiB is available on {device}",
            size=f"{width}x{height}",
            batch=batch,
            **context,
            hint="use a smaller size or batch_size",
        )
