"""Per-step convergence within one run: the denoised (x0) prediction at each step against the next one and against
the final latent, in latent units and, decoded, as images (:func:`step_deltas`); :func:`decode_latents` turns
latents into images in batches.

Decoded steps stream: :func:`step_deltas` decodes a few steps at a time, measures them and drops them (unless
``keep_images=True``), so per-step image metrics of a 50-step SDXL trajectory at 1024 px hold a few images, not 51.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.generation import Trajectory
from sdlab.measure.metrics import compare, latent_rmse

__all__ = ["decode_latents", "decode_batch", "step_deltas", "STREAM_BYTES"]

STREAM_BYTES = 64 * 2**20
"""Decoded images :func:`step_deltas` holds at once by default (host memory, float32): every step at once up to
about 1,400 steps at 64 px, 21 steps at 512 px, 5 at 1024 px."""

# images decoded in one batch at a 32 x 32 latent (256 px) and below; fewer above, at the same pixel count: the
# decoders' activations grow with it (the VAE's last block holds 128 channels at full resolution: 512 MB per image
# at 1024 px in float32)
_BATCH = {"full": 16, "tiny": 64, "preview": 64}


def decode_batch(mode: str, latent_shape: Sequence[int]) -> int | None:
    """How many latents of ``latent_shape`` (..., h, w) :func:`decode_latents` decodes at once by default: 16
    (the VAE; 64 the tiny decoder and previews) up to 256 px, fewer above (1 and 4 at 1024 px); None for an
    unknown mode."""
    if mode not in _BATCH:
        return None
    h, w = latent_shape[-2:]
    return max(1, min(_BATCH[mode], _BATCH[mode] * 32 * 32 // (h * w)))


@torch.no_grad()
def decode_latents(model: Any, latents: Tensor, *, mode: str = "full", batch_size: int | None = None) -> Tensor:
    """Latents (B, C, h, w) to images (B, 3, H, W) in [0, 1] on the CPU, ``batch_size`` at a time (None:
    :func:`decode_batch`, 16 through the VAE up to 256 px).

    ``mode="tiny"`` goes through the model's tiny decoder (TAESD) instead, ``"preview"`` is A1111's cheap linear
    preview at latent resolution. A float32 VAE decodes in batches (the same arithmetic as ``model.decode``, which
    goes one image at a time); a half-precision VAE goes through ``model.decode`` for its NaN fallback.
    """
    batch_size = batch_size or decode_batch(mode, latents.shape) or max(1, len(latents))
    if mode != "full":
        return torch.cat([model.decode_as(chunk, mode).float().cpu() for chunk in latents.split(batch_size)])
    vae = model.pipe.vae
    if vae.dtype != torch.float32:
        return model.decode(latents)
    config = vae.config
    shift = config.get("shift_factor") or 0.0
    images = []
    for chunk in latents.split(batch_size):
        z = chunk.to(model.device, torch.float32) * (1.0 / config.scaling_factor) + shift
        image = vae.decode(z, return_dict=False)[0]
        images.append(((image.float() + 1) / 2).clamp(0, 1).cpu())
    return torch.cat(images)


def _check_stepping(decode_every: Any, stream_bytes: Any) -> None:
    if not isinstance(decode_every, int) or decode_every < 1:
        raise SdlabError("decode_every must be an integer >= 1", decode_every=decode_every)
    if stream_bytes is not None and (isinstance(stream_bytes, bool) or not isinstance(stream_bytes, int)):
        raise SdlabError("stream_bytes must be a number of bytes or None", stream_bytes=stream_bytes)


def step_deltas(
    trajectory: Trajectory,
    final: Tensor,
    *,
    model: Any = None,
    image_metrics: Sequence[str] = (),
    decode: str = "full",
    decode_every: int = 1,
    keep_images: bool = False,
    stream_bytes: int | None = STREAM_BYTES,
) -> list[dict[str, Any]]:
    """Per-step convergence within one run, as rows (step, to_step, sigma, comparison, metric, value, nfe, elapsed).

    The denoised (x0) prediction at step i is compared with the one at step i+1 (``comparison="next"``) and with
    the final latent (``"final"``): latent RMSE always, and ``image_metrics`` (ssim, psnr, lpips) on decoded
    predictions when given. ``model`` decodes them in batches; every step costs one VAE decode, so
    ``decode_every=k`` decodes only every k-th step and the last one ("next" then compares each decoded step with
    the next decoded one, see ``to_step``); ``decode="tiny"`` uses the tiny decoder (TAESD: close to the VAE at a
    few % of its cost) and ``"preview"`` A1111's cheap linear preview instead.
    ``nfe`` and ``elapsed`` (seconds, whole batch) are counted from the start of sampling up to that step.

    Decoded steps stream: about ``stream_bytes`` of images (float32, host memory) are decoded, measured and
    dropped at a time (None: every step at once); the values do not depend on it for SSIM, PSNR, MS-SSIM and
    FLIP (LPIPS's network may round ~1e-9 differently in another batch). ``keep_images=True`` keeps each decoded
    step on the trajectory instead (``trajectory.images[("denoised", decode)][step]``).
    """
    _check_stepping(decode_every, stream_bytes)
    n = len(trajectory)
    if n == 0:
        return []
    den = trajectory.latents("denoised").float()
    fin = final.float().reshape(1, *den.shape[1:])
    every_step = list(range(n))
    # (comparison, metric) -> (steps, to_steps, values)
    found: dict[tuple[str, str], tuple[list[int], list[int], Tensor]] = {}
    if n > 1:
        found["next", "latent_rmse"] = (every_step[:-1], every_step[1:], latent_rmse(den[:-1], den[1:]))
    found["final", "latent_rmse"] = (every_step, [-1] * n, latent_rmse(den, fin.expand_as(den)))
    if image_metrics:
        if model is None:
            raise SdlabError("per-step image metrics need the model to decode", hint="pass model=")
        picked = sorted({*range(0, n, decode_every), n - 1})
        stream = _StepImages(model, torch.cat([den[picked], fin]), decode, stream_bytes)
        values: dict[tuple[str, str], list[Tensor]] = {}

        def measure(comparison: str, a: Tensor, b: Tensor) -> None:
            for metric, v in compare(a, b, metrics=image_metrics).items():
                values.setdefault((comparison, metric), []).append(v)

        previous = None
        for start, images in stream:
            if keep_images:
                trajectory.keep("denoised", decode, picked[start : start + len(images)], images.clone())
            if previous is not None:  # the last step of the window before and the first of this one
                measure("next", previous, images[:1])
            if len(images) > 1:
                measure("next", images[:-1], images[1:])
            measure("final", images, stream.last.expand_as(images))
            previous = images[-1:].clone()  # not a view: the window's images go
        for (comparison, metric), parts in values.items():
            steps = (picked[:-1], picked[1:]) if comparison == "next" else (picked, [-1] * len(picked))
            found[comparison, metric] = (*steps, torch.cat(parts))
    sigmas, nfes, times = trajectory.column("sigma"), trajectory.column("nfe"), trajectory.column("time")
    rows = []
    for (comparison, metric), (steps_from, steps_to, values) in found.items():
        for i, j, v in zip(steps_from, steps_to, values.tolist(), strict=True):
            rows.append(
                {
                    "comparison": comparison,
                    "step": i,
                    "to_step": j,
                    "sigma": sigmas[i],
                    "metric": metric,
                    "value": float(v),
                    "nfe": int(nfes[i]),
                    "elapsed": float(times[i]),
                }
            )
    return rows


class _StepImages:
    """The decoded steps of ``latents`` (the steps, then the final latent last) a window at a time, as
    (first position, images); ``last`` is the final image. Windows hold whole decode batches, and the batches are
    the ones :func:`decode_latents` makes of all the latents at once, so each image is the same bit for bit."""

    def __init__(self, model: Any, latents: Tensor, mode: str, stream_bytes: int | None) -> None:
        self.model, self.latents, self.mode = model, latents, mode
        self.batch = decode_batch(mode, latents.shape) or len(latents)
        self.tail_start = (len(latents) - 1) // self.batch * self.batch  # the batch that holds the final latent
        tail = decode_latents(model, latents[self.tail_start :], mode=mode, batch_size=self.batch)
        self.tail, self.last = tail[:-1], tail[-1:]
        if stream_bytes is None:
            self.window = len(latents)  # one window: every step at once
        else:  # whole batches of images, within stream_bytes (one batch at least)
            self.window = max(1, stream_bytes // max(1, self.last.nbytes) // self.batch) * self.batch

    def __iter__(self) -> Iterator[tuple[int, Tensor]]:
        steps = len(self.latents) - 1
        for start in range(0, steps, self.window):
            end = min(start + self.window, steps)
            head = self.latents[start : min(end, self.tail_start)]
            parts = [decode_latents(self.model, head, mode=self.mode, batch_size=self.batch)] if len(head) else []
            if end > self.tail_start:
                parts.append(self.tail[max(0, start - self.tail_start) : end - self.tail_start])
            images = parts[0] if len(parts) == 1 else torch.cat(parts)
            del parts  # held only once while the window is measured
            yield start, images
