"""Train the embedded model's tiny decoder (a TAESD-style diffusers ``AutoencoderTiny``, built by
:func:`sdlab.embedded.arch.build_tiny_vae`) by distillation.

The decoder learns to reproduce the embedded VAE's decode of two kinds of latents: training scenes (posterior
samples) and the denoised predictions a sampler makes along its trajectory (DPM++ 2M, 12 Karras steps, CFG 5, on
training captions): the blurry early predictions per-step metrics decode. The encoder learns the VAE's
posterior mean of the scenes. Deterministic by seed; a few minutes on 2 CPU cores.

    python scripts/train_tiny_decoder.py [--out sdlab/embedded/weights/mini-sd-taesd] [--steps 1500]
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sdlab.embedded import write_checksums
from sdlab.embedded.arch import build_tiny_vae
from sdlab.embedded.training.dataset import make_dataset
from sdlab.embedded.training.train import load_images_tensor
from sdlab.generation import generate, load

__all__ = ["TinyDecoderConfig", "train_tiny_decoder"]


@dataclass(frozen=True)
class TinyDecoderConfig:
    scenes: int = 4096  # training scenes (posterior samples of their latents)
    captions: int = 256  # captions sampled along a trajectory each
    trajectory_steps: int = 12
    steps: int = 1500
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0
    threads: int | None = None


def _data(cfg: TinyDecoderConfig, progress: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scene images in [-1, 1], their posterior means, latents to decode, the VAE's decode of them in [-1, 1])."""
    sd = load(None, device="cpu", dtype=torch.float32)
    vae = sd.pipe.vae
    scale = vae.config.scaling_factor
    images, captions, _ = make_dataset(cfg.scenes, "train", seed=0)
    x = load_images_tensor(images) * 2 - 1
    gen = torch.Generator().manual_seed(cfg.seed)
    means, samples = [], []
    with torch.inference_mode():
        for chunk in x.split(256):
            post = vae.encode(chunk).latent_dist
            means.append(post.mean * scale)
            samples.append((post.mean + post.std * torch.randn(post.mean.shape, generator=gen)) * scale)
    means_t, latents = torch.cat(means), [torch.cat(samples)]
    if progress:
        print(f"[tiny] {cfg.scenes} scenes encoded", flush=True)
    for start in range(0, cfg.captions, 32):  # denoised predictions along trajectories
        chunk = captions[start : min(start + 32, cfg.captions)]
        for k, caption in enumerate(chunk):
            res = generate(caption, sampler="DPM++ 2M", schedule="Karras", steps=cfg.trajectory_steps, cfg=5.0,
                           seeds=[cfg.seed * 100_000 + start + k], model=sd, trajectory=True)  # fmt: skip
            latents.append(res.trajectories[0].latents("denoised").float())
        if progress:
            print(f"[tiny] trajectories {start + len(chunk)}/{cfg.captions}", flush=True)
    z = torch.cat(latents)
    targets = []
    with torch.inference_mode():
        for chunk in z.split(256):
            targets.append(vae.decode(chunk / scale, return_dict=False)[0].clamp(-1, 1))
    return x, means_t, z, torch.cat(targets)


def train_tiny_decoder(
    out: str | Path,
    cfg: TinyDecoderConfig = TinyDecoderConfig(),
    *,
    progress: bool = True,
    cache: str | Path | None = None,
) -> dict:
    """Train and save the tiny decoder to ``out`` (an ``AutoencoderTiny`` folder, float32 weights, checksums).

    ``cache``: a file keeping the distillation data (scenes, latents, the VAE's decodes) between runs."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    if cache is not None and Path(cache).is_file():
        images, means, z, targets = torch.load(cache)
    else:
        images, means, z, targets = _data(cfg, progress)
        if cache is not None:
            torch.save((images, means, z, targets), cache)
    data_seconds = time.perf_counter() - start
    model = build_tiny_vae().train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    log = []
    for step in range(cfg.steps):
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)) * min(1.0, (step + 1) / 50)
        for group in opt.param_groups:
            group["lr"] = lr
        i = torch.randint(0, len(z), (cfg.batch,), generator=gen)
        j = torch.randint(0, len(images), (cfg.batch // 4,), generator=gen)
        decoded = model.decode(z[i], return_dict=False)[0]
        dec_loss = torch.nn.functional.mse_loss(decoded, targets[i])
        enc_loss = torch.nn.functional.mse_loss(model.encode(images[j], return_dict=False)[0], means[j])
        loss = dec_loss + 0.1 * enc_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            dec, enc = float(dec_loss.detach()), float(enc_loss.detach())
            log.append({"step": step, "decoder_mse": dec, "encoder_mse": enc})
            if progress:
                print(f"[tiny] step {step}: decoder MSE {dec:.5f}, encoder MSE {enc:.4f}", flush=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    model.save_pretrained(out, safe_serialization=True)  # float32: 0.4 MB
    # diffusers writes block_out_channels into AutoencoderTiny's config and then warns when it reads it back
    config_path = out / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("block_out_channels", None)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    summary = {
        "config": asdict(cfg),
        "latents": len(z),
        "data_seconds": round(data_seconds, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "log": log,
        "torch": torch.__version__,
    }
    (out / "training_log.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_checksums(out)
    return summary
