"""Per-step convergence within one run: the denoised (x0) prediction at each step against the next one and against
the final latent, in latent units and, decoded, as images (:func:`step_deltas`); :func:`decode_latents` turns
latents into images in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.generation import Trajectory
from sdlab.measure.metrics import compare, latent_rmse

__all__ = ["decode_latents", "step_deltas"]


@torch.no_grad()
def decode_latents(model: Any, latents: Tensor, *, mode: str = "full", batch_size: int = 16) -> Tensor:
    """Latents (B, C, h, w) to images (B, 3, H, W) in [0, 1] on the CPU, ``batch_size`` at a time through the VAE.

    ``mode="tiny"`` goes through the model's tiny decoder (TAESD) instead, ``"preview"`` is A1111's cheap linear
    preview at latent resolution. A float32 VAE decodes in batches (the same arithmetic as ``model.decode``, which
    goes one image at a time); a half-precision VAE goes through ``model.decode`` for its NaN fallback.
    """
    if mode != "full":
        return model.decode_as(latents, mode).float().cpu()
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


def step_deltas(
    trajectory: Trajectory,
    final: Tensor,
    *,
    model: Any = None,
    image_metrics: Sequence[str] = (),
    decode: str = "full",
    decode_every: int = 1,
) -> list[dict[str, Any]]:
    """Per-step convergence within one run, as rows (step, to_step, sigma, comparison, metric, value, nfe, elapsed).

    The denoised (x0) prediction at step i is compared with the one at step i+1 (``comparison="next"``) and with
    the final latent (``"final"``): latent RMSE always, and ``image_metrics`` (ssim, psnr, lpips) on decoded
    predictions when given. ``model`` decodes them in batches; every step costs one VAE decode, so
    ``decode_every=k`` decodes only every k-th step and the last one ("next" then compares each decoded step with
    the next decoded one, see ``to_step``); ``decode="tiny"`` uses the tiny decoder (TAESD: close to the VAE at a
    few % of its cost) and ``"preview"`` A1111's cheap linear preview instead.
    ``nfe`` and ``elapsed`` (seconds, whole batch) are counted from the start of sampling up to that step.
    """
    if not isinstance(decode_every, int) or decode_every < 1:
        raise SdlabError("decode_every must be an integer >= 1", decode_every=decode_every)
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
        images = decode_latents(model, torch.cat([den[picked], fin]), mode=decode)
        steps, last = images[:-1], images[-1:]
        if len(steps) > 1:
            for metric, values in compare(steps[:-1], steps[1:], metrics=image_metrics).items():
                found["next", metric] = (picked[:-1], picked[1:], values)
        for metric, values in compare(steps, last.expand_as(steps), metrics=image_metrics).items():
            found["final", metric] = (picked, [-1] * len(picked), values)
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
