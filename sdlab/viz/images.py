"""Images in any form as uint8 arrays, and as PNG: the one normaliser and the one PNG encoder.

>>> from sdlab.viz.images import to_uint8, png_bytes, image_data_url
>>> to_uint8(torch.rand(3, 64, 64)).shape              # (H, W, 3) uint8 in [0, 255]
(64, 64, 3)
>>> image_data_url(torch.rand(3, 64, 64))[:22]         # for <img src=...>: HTML pages, hover thumbnails
'data:image/png;base64,'

Every function takes images in any of these forms, normalised in one place (:func:`to_images`):

- torch tensors, channels first: one image ``(3, H, W)`` / ``(1, H, W)`` / ``(H, W)`` or a batch
  ``(B, 3, H, W)``; float in ``value_range`` (default ``(0, 1)``, e.g. ``(-1, 1)`` for raw VAE output) or uint8
  in [0, 255]; any device and float dtype;
- numpy arrays, channels last (as PIL and imageio give them): ``(H, W, 3)`` / ``(H, W)`` or ``(B, H, W, 3)``,
  uint8 in [0, 255] or float in ``value_range``;
- PIL images (converted to RGB);
- a list of any of these, or a ``{title: image}`` dict (its keys become titles).

Float values more than 0.1 % of the range outside ``value_range`` (or NaN) raise a SdlabError rather than being
clipped; a 4-channel tensor is taken for a latent, not an image (decode it first). PNG bytes of any image come
from :func:`png_bytes`, and a data URL of any PNG (an image's, a matplotlib figure's) from :func:`png_data_url`.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sdlab.errors import SdlabError

__all__ = [
    "to_uint8",
    "to_pil",
    "to_images",
    "upscale",
    "png_bytes",
    "png_data_url",
    "image_data_url",
    "thumbnail_url",
    "is_single_image",
    "check_scale",
    "ValueRange",
]

ValueRange = tuple[float, float]
_TOL = 1e-3  # fraction of the value range a float image may stray outside it (rounding), then clipped


# ---------------------------------------------------------------------------------------------------------------
# the one normaliser


def _check_range(value_range: ValueRange | None) -> ValueRange:
    lo, hi = (0.0, 1.0) if value_range is None else (float(value_range[0]), float(value_range[1]))
    if not hi > lo:
        raise SdlabError("value_range must be (low, high) with high > low", value_range=value_range)
    return lo, hi


def _float_to_uint8(a: np.ndarray, value_range: ValueRange | None) -> np.ndarray:
    """Float array in ``value_range`` -> uint8 in [0, 255] (round half to even, as numpy rounds)."""
    lo, hi = _check_range(value_range)
    a = a.astype(np.float64, copy=False)
    if a.size:
        amin, amax = float(np.min(a)), float(np.max(a))
        tol = _TOL * (hi - lo)
        if math.isnan(amin) or math.isnan(amax) or amin < lo - tol or amax > hi + tol:
            raise SdlabError(
                "image values outside value_range",
                min=round(amin, 4),
                max=round(amax, 4),
                value_range=(lo, hi),
                hint="pass value_range=(-1, 1) for [-1, 1] images, or clamp first",
            )
    unit = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
    return np.round(unit * 255.0).astype(np.uint8)


def _rgb(a: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 1) grey -> (H, W, 3); (H, W, 3) unchanged."""
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.ascontiguousarray(a)


def _from_tensor(t: Any, value_range: ValueRange | None) -> list[np.ndarray]:
    """A channels-first tensor, one image or a batch, as (H, W, 3) uint8 arrays."""
    import torch

    t = t.detach().cpu()
    if t.ndim == 2:
        t = t[None]
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise SdlabError("a tensor image must be (C, H, W) or a batch (B, C, H, W)", shape=tuple(t.shape))
    if t.shape[1] not in (1, 3):
        raise SdlabError(
            "a tensor image needs 1 or 3 channels (channels first)",
            shape=tuple(t.shape),
            hint="a 4-channel tensor is a latent: decode it first (model.decode or model.preview)",
        )
    if t.dtype == torch.uint8:
        return _to_rgb8(t.permute(0, 2, 3, 1).numpy(), value_range)
    if t.is_floating_point():
        return _to_rgb8(t.float().permute(0, 2, 3, 1).numpy(), value_range)
    raise SdlabError("a tensor image must be float or uint8", dtype=str(t.dtype))


def _from_numpy(a: np.ndarray, value_range: ValueRange | None) -> list[np.ndarray]:
    """A channels-last array, one image or a batch, as (H, W, 3) uint8 arrays."""
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (1, 3)):
        batch = a[None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3):
        batch = a
    else:
        raise SdlabError(
            "a numpy image must be (H, W), (H, W, 3) or a batch (B, H, W, 3), channels last",
            shape=tuple(a.shape),
            hint="torch tensors are channels first; numpy arrays channels last",
        )
    return _to_rgb8(batch, value_range)


def _to_rgb8(batch: np.ndarray, value_range: ValueRange | None) -> list[np.ndarray]:
    """A channels-last batch (B, H, W, 1 or 3), uint8 or float in ``value_range``, as (H, W, 3) uint8 arrays."""
    if batch.dtype == np.uint8:
        if value_range is not None:
            raise SdlabError("value_range is for float images; uint8 images are [0, 255]", value_range=value_range)
    elif np.issubdtype(batch.dtype, np.floating):
        batch = _float_to_uint8(batch, value_range)
    else:
        raise SdlabError("a numpy image must be float or uint8", dtype=str(batch.dtype))
    return [_rgb(x) for x in batch]


def _one(image: Any, value_range: ValueRange | None) -> list[np.ndarray]:
    """Any single image or batch (not a list or dict) as a list of (H, W, 3) uint8 arrays."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return [np.asarray(image.convert("RGB")).copy()]
    if isinstance(image, np.ndarray):
        return _from_numpy(image, value_range)
    if type(image).__module__.startswith("torch"):
        return _from_tensor(image, value_range)
    raise SdlabError(
        "not an image",
        type=type(image).__name__,
        hint="pass a torch tensor (C, H, W), a numpy array (H, W, 3), a PIL image, a list or a {title: image} dict",
    )


def to_images(images: Any, *, value_range: ValueRange | None = None) -> tuple[list[np.ndarray], list[str] | None]:
    """Any images (see the module docstring) as a list of (H, W, 3) uint8 arrays in [0, 255], and their titles.

    Titles come from a ``{title: image}`` dict, else None. A batch counts as that many images, a list may mix
    forms and sizes.

    >>> arrays, titles = to_images({"a": torch.rand(3, 8, 8), "b": torch.rand(3, 8, 8)})
    >>> arrays[0].shape, arrays[0].dtype, titles                      # (H, W, 3) uint8
    ((8, 8, 3), dtype('uint8'), ['a', 'b'])
    """
    if isinstance(images, Mapping):
        out, titles = [], []
        for title, image in images.items():
            arrays = _one(image, value_range)
            out += arrays
            titles += [str(title)] if len(arrays) == 1 else [f"{title} [{i}]" for i in range(len(arrays))]
        return out, titles
    if isinstance(images, (list, tuple)):
        out = [a for image in images for a in _one(image, value_range)]
        return out, None
    return _one(images, value_range), None


def is_single_image(image: Any) -> bool:
    """Is ``image`` one image (not a batch, list or dict)?"""
    from PIL import Image

    if isinstance(image, Image.Image):
        return True
    if isinstance(image, np.ndarray):
        return image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3))
    if type(image).__module__.startswith("torch"):
        return image.ndim in (2, 3)
    return False


def to_uint8(image: Any, *, value_range: ValueRange | None = None) -> np.ndarray:
    """One image as an (H, W, 3) uint8 array in [0, 255]; several (batch, list, dict) as (B, H, W, 3).

    Float input is read in ``value_range`` (default (0, 1)), uint8 as [0, 255]. Several images must share a size.

    >>> to_uint8(torch.ones(3, 2, 2)).max()                               # [0, 1] float -> 255
    255
    >>> to_uint8(torch.zeros(2, 3, 4, 4) - 1, value_range=(-1, 1)).shape  # [-1, 1] batch
    (2, 4, 4, 3)
    """
    arrays, _ = to_images(image, value_range=value_range)
    if is_single_image(image):
        return arrays[0]
    if len({a.shape for a in arrays}) > 1:
        raise SdlabError(
            "images of different sizes cannot be stacked",
            sizes=sorted({a.shape[:2] for a in arrays}),
            hint="use to_images() for a list, or image_strip() to show them",
        )
    if not arrays:
        raise SdlabError("no images given")
    return np.stack(arrays)


def to_pil(image: Any, *, value_range: ValueRange | None = None) -> Any:
    """One image as an RGB ``PIL.Image``; several (batch, list, dict) as a list of them. Value ranges as
    :func:`to_uint8` (float in ``value_range``, default (0, 1); uint8 in [0, 255])."""
    from PIL import Image

    arrays, _ = to_images(image, value_range=value_range)
    pils = [Image.fromarray(a) for a in arrays]
    return pils[0] if is_single_image(image) else pils


def upscale(image: Any, scale: int = 4, *, value_range: ValueRange | None = None) -> np.ndarray:
    """One image enlarged ``scale`` times by nearest neighbour (each pixel a ``scale`` x ``scale`` block), as an
    (H * scale, W * scale, 3) uint8 array in [0, 255]. Input value ranges as :func:`to_uint8`."""
    check_scale(scale)
    a = to_uint8(image, value_range=value_range)
    if a.ndim != 3:
        raise SdlabError("upscale takes one image", shape=tuple(a.shape), hint="use image_strip for several")
    return a.repeat(scale, axis=0).repeat(scale, axis=1)


def check_scale(scale: int) -> None:
    """Raise a SdlabError unless ``scale`` (how many times images are enlarged) is an integer >= 1."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise SdlabError("scale must be an integer >= 1", scale=scale, hint="e.g. scale=2")


# ---------------------------------------------------------------------------------------------------------------
# PNG


def png_bytes(image: Any, *, value_range: ValueRange | None = None) -> bytes:
    """One image (any form above, a strip or grid too) as PNG bytes (optimised); value ranges as :func:`to_uint8`."""
    from PIL import Image

    a = to_uint8(image, value_range=value_range)
    if a.ndim != 3:
        raise SdlabError("png_bytes takes one image", shape=tuple(a.shape), hint="make a strip or grid first")
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_data_url(png: bytes) -> str:
    """PNG bytes (:func:`png_bytes`, :func:`sdlab.viz.mpl.figure_png`) as a ``data:image/png;base64,...`` URL."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image_data_url(image: Any, *, value_range: ValueRange | None = None) -> str:
    """One image as a ``data:image/png;base64,...`` URL (for ``<img src=...>``); value ranges as :func:`to_uint8`."""
    a = to_uint8(image, value_range=value_range)
    if a.ndim != 3:
        raise SdlabError("image_data_url takes one image", shape=tuple(a.shape))
    return png_data_url(png_bytes(a))


def thumbnail_url(image: Any, *, max_size: int = 128, value_range: ValueRange | None = None) -> str:
    """A PNG data URL of one image shrunk (area averaging) so neither side exceeds ``max_size`` pixels; small
    images are kept at their own size (browsers enlarge them with ``image-rendering: pixelated``)."""
    from PIL import Image

    img = to_pil(image, value_range=value_range)
    if not isinstance(img, Image.Image):
        raise SdlabError("thumbnail_url takes one image", images=len(img))
    if max(img.size) > max_size:
        img = img.copy()
        img.thumbnail((max_size, max_size), Image.Resampling.BOX)
    return image_data_url(np.asarray(img))
