"""Train the embedded miniature Stable Diffusion from a seed: VAE, cached latents, text encoder + UNet, classifier.

>>> log = train("runs/embedded", TrainConfig(fast=True))     # a smoke run in seconds
>>> log["stages"]["unet"]["steps"]

Each stage checkpoints every ``checkpoint_every`` seconds into the work folder and a re-run resumes from the
last checkpoint (stages already finished are loaded, not retrained). With ``time_budget`` the run measures its
own speed early in each stage and sets that stage's step count (and so its learning-rate schedule) to fit;
the log records the counts, and passing them back as ``*_steps`` without a budget repeats the run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdlab.embedded import arch, write_checksums
from sdlab.embedded.training.classifier import attribute_targets, build_classifier, classifier_loss, save_classifier
from sdlab.embedded.training.dataset import make_dataset
from sdlab.errors import SdlabError

__all__ = ["TrainConfig", "train", "FAST"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (plus where and how fast it runs)."""

    seed: int = 0
    device: str = "cpu"
    n_train: int = 80_000  # scenes for the VAE and the UNet (train split)
    n_classifier: int = 24_000  # scenes for the classifier (its own seed range, all colour-kind pairs)
    vae_steps: int = 8_000  # upper bound; a time budget may set fewer
    vae_batch: int = 128
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6  # SD's KL weight: latents stay informative, scaling_factor fixes their scale
    unet_steps: int = 20_000
    unet_batch: int = 512
    unet_lr: float = 8e-4
    caption_dropout: float = 0.1  # empty prompt 10 % of the time, so CFG and negative prompts work
    snr_gamma: float | None = None  # min-SNR loss weight min(SNR, gamma) / SNR (Hang et al. 2023); None: plain MSE
    ema_decay: float = 0.999
    clf_steps: int = 3_000
    clf_batch: int = 256
    clf_lr: float = 2e-3
    clf_recon: float = 0.5  # share of classifier inputs that are VAE reconstructions (0: skip encoding them)
    warmup: int = 100  # linear warm-up steps, then cosine decay to 10 %
    time_budget: float | None = None  # seconds for the whole run; None: run every stage's *_steps
    checkpoint_every: float = 240.0  # seconds between checkpoints
    workers: int = 0  # processes drawing scenes (0: this one)
    weights_dtype: str = "float16"  # stored dtype of the shipped safetensors (size budget)
    init_from: str | None = None  # a weights folder (mini-sd/, classifier/) to continue: VAE kept, rest trained on
    fast: bool = False  # smoke run: tiny data, a few steps per stage

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FAST = dict(n_train=48, n_classifier=48, vae_steps=2, vae_batch=8, unet_steps=2, unet_batch=8, clf_steps=2)
FAST |= dict(clf_batch=8, warmup=1)
# Share of the time budget left when a stage starts, relative to the stages still to come.
_SHARES = {"vae": 0.24, "unet": 0.66, "classifier": 0.10}
_STAGE_ID = {"vae": 1, "unet": 2, "classifier": 3}


def _lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak``, then cosine decay to ``peak / 10`` at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


class _Clock:
    """Wall-clock budget shared by the stages."""

    def __init__(self, budget: float | None, spent: float = 0.0, skip: frozenset[str] = frozenset()) -> None:
        self.start, self.budget, self.spent, self.skip = time.monotonic(), budget, spent, skip

    def elapsed(self) -> float:
        return self.spent + time.monotonic() - self.start

    def stage_budget(self, stage: str, reserve: float = 10.0) -> float | None:
        if self.budget is None:
            return None
        stages = [s for s in _SHARES if s not in self.skip or s == stage]
        share = _SHARES[stage] / sum(_SHARES[s] for s in stages[stages.index(stage) :])
        return max(1.0, (self.budget - self.elapsed() - reserve) * share)


def _loop(
    stage: str,
    work: Path,
    cfg: TrainConfig,
    clock: _Clock,
    modules: dict[str, Any],
    step_fn: Any,
    *,
    max_steps: int,
    peak_lr: float,
    ema: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``step_fn(step, lr) -> loss`` with AdamW over ``modules``, checkpointing and resuming."""
    import torch
    from tqdm.auto import tqdm

    params = [p for m in modules.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=peak_lr, weight_decay=0.01, betas=(0.9, 0.99))
    ckpt_path = work / f"ckpt_{stage}.pt"
    step, total, losses, wall = _resume(ckpt_path, cfg.device, modules, opt, ema) or (0, max_steps, [], 0.0)
    budget = clock.stage_budget(stage)
    t0, last_ckpt, timed_from = time.monotonic() - wall, time.monotonic(), None

    def save() -> None:
        state = {
            "modules": {k: m.state_dict() for k, m in modules.items()},
            "opt": opt.state_dict(),
            "ema": {k: m.state_dict() for k, m in ema.items()} if ema else None,
            "step": step,
            "total": total,
            "losses": losses,
            "wall_s": time.monotonic() - t0,
        }
        torch.save(state, work / f"ckpt_{stage}.tmp")
        (work / f"ckpt_{stage}.tmp").replace(ckpt_path)

    bar = tqdm(total=total, initial=step, desc=stage, disable=not progress, mininterval=2.0)
    running = None
    while step < total:
        if budget is not None and timed_from is None and step >= min(5, total - 1):
            _sync(cfg.device)
            timed_from = (step, time.monotonic(), 20)  # (first step, its time, steps to time)
        if budget is not None and timed_from is not None and step == timed_from[0] + timed_from[2]:
            # measured speed sets the step count, hence the LR schedule; re-measured every 200 steps so a
            # run that slows down (a shared CPU) still ends its schedule inside the budget
            _sync(cfg.device)
            per_step = (time.monotonic() - timed_from[1]) / timed_from[2]
            remaining = budget - (time.monotonic() - t0)
            total = max(step + 1, min(max_steps, step + int(remaining / per_step)))
            bar.total = total
            timed_from = (step, time.monotonic(), 200)
        lr = _lr(step, total, peak_lr, cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = step_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if ema is not None:
            _ema_update(ema, modules, min(cfg.ema_decay, (1 + step) / (10 + step)))
        step += 1
        if step % 25 == 0 or step == total:
            value = float(loss.detach())
            running = value if running is None else 0.9 * running + 0.1 * value
            losses.append([step, value])
            bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.1e}")
        bar.update(1)
        if budget is not None and time.monotonic() - t0 > budget * 1.05:
            total = step  # over budget (speed changed): stop here
        if time.monotonic() - last_ckpt > cfg.checkpoint_every and step < total:
            save()
            last_ckpt = time.monotonic()
    bar.close()
    save()
    return {"steps": step, "total": total, "wall_s": round(time.monotonic() - t0, 1), "losses": losses}


def _resume(
    ckpt_path: Path, device: str, modules: dict[str, Any], opt: Any, ema: dict[str, Any] | None
) -> tuple[int, int, list, float] | None:
    """Load a stage's checkpoint into ``modules``, ``opt`` and ``ema``: (step, total, losses, wall_s), or None."""
    import torch

    if not ckpt_path.exists():
        return None
    ck = torch.load(ckpt_path, map_location=device, weights_only=False)
    for k, m in modules.items():
        m.load_state_dict(ck["modules"][k])
    opt.load_state_dict(ck["opt"])
    if ema is not None:
        for k, m in ema.items():
            m.load_state_dict(ck["ema"][k])
    return ck["step"], ck["total"], ck["losses"], ck["wall_s"]


def _ema_update(ema: dict[str, Any], modules: dict[str, Any], decay: float) -> None:
    """Move each EMA module's parameters toward the trained module's by ``1 - decay``."""
    import torch

    with torch.no_grad():
        for k, m in ema.items():
            torch._foreach_lerp_(list(m.parameters()), list(modules[k].parameters()), 1 - decay)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _autocast(device: str) -> Any:
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _step_generator(cfg: TrainConfig, stage: str, step: int, device: str) -> Any:
    """A generator seeded by (seed, stage, step): batches and noise do not depend on resumes."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(cfg.seed * 1_000_003 + _STAGE_ID[stage] * 100_000_007 + step)
    return g


def _to_float(images_u8: Any) -> Any:
    """uint8 (B, 64, 64, 3) -> float (B, 3, 64, 64) in [-1, 1]."""
    return images_u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _train_vae(work: Path, cfg: TrainConfig, clock: _Clock, vae: Any, images: Any, progress: bool) -> dict:
    import torch
    import torch.nn.functional as F

    n = images.shape[0]
    n_pix = 3 * 64 * 64

    def step_fn(step: int) -> Any:
        g = _step_generator(cfg, "vae", step, cfg.device)
        idx = torch.randint(0, n, (cfg.vae_batch,), generator=g, device=cfg.device)
        x = _to_float(images[idx])
        with _autocast(cfg.device):
            post = vae.encode(x).latent_dist
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=g, device=cfg.device)
            rec = vae.decode(z).sample
        rec_loss = F.mse_loss(rec.float(), x)
        return rec_loss + cfg.kl_weight * post.kl().mean() / n_pix

    vae.train()
    log = _loop("vae", work, cfg, clock, {"vae": vae}, step_fn, max_steps=cfg.vae_steps, peak_lr=cfg.vae_lr,
                progress=progress)  # fmt: skip
    vae.eval()
    return log


def _encode_all(vae: Any, images: Any, device: str, batch: int = 512) -> tuple[Any, Any]:
    """Posterior means and stds of every image (float32, on ``device``)."""
    import torch

    means, stds = [], []
    with torch.inference_mode():
        for i in range(0, images.shape[0], batch):
            post = vae.encode(_to_float(images[i : i + batch])).latent_dist
            means.append(post.mean.float())
            stds.append(post.std.float())
    return torch.cat(means), torch.cat(stds)


def _fit_preview(latents: Any, images: Any) -> dict[str, Any]:
    """Least-squares 4x3 matrix + bias from scaled latents to 4x4-average-pooled RGB in [-1, 1] (the convention of
    A1111's preview matrices, which :func:`sdlab.models.preview.linear_preview` applies)."""
    import torch
    import torch.nn.functional as F

    rgb = F.avg_pool2d(images.permute(0, 3, 1, 2).float() / 255.0, 4) * 2 - 1  # (N, 3, 16, 16)
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]).double().cpu()
    y = rgb.permute(0, 2, 3, 1).reshape(-1, 3).double().cpu()
    a = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    sol = torch.linalg.lstsq(a, y).solution
    resid = float(((a @ sol - y) ** 2).mean().sqrt()) / 2  # in [0, 1] pixel units
    return {
        "description": "rgb = latents @ matrix + bias, per latent pixel: latents scaled by vae.config.scaling_factor "
        "(what the UNet sees), rgb in [-1, 1] (shown as rgb * 0.5 + 0.5, A1111's convention) at 1/4 resolution "
        "(16x16 for 64x64 images); rms_error in [0, 1] pixel units",
        "matrix": sol[:-1].tolist(),
        "bias": sol[-1].tolist(),
        "rms_error": round(resid, 4),
    }


def _train_unet(
    work: Path, cfg: TrainConfig, clock: _Clock, models: dict, lat: tuple, ids: Any, empty_ids: Any, progress: bool
) -> tuple[dict, dict]:
    import copy

    import torch
    import torch.nn.functional as F

    unet, te = models["unet"], models["text_encoder"]
    mean, std = lat
    sf = float(models["vae"].config.scaling_factor)
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2  # SD's scaled_linear
    alphas_cumprod = torch.cumprod(1 - betas, 0).float().to(cfg.device)
    n = mean.shape[0]
    ema = {"unet": copy.deepcopy(unet).requires_grad_(False), "text_encoder": copy.deepcopy(te).requires_grad_(False)}

    def step_fn(step: int) -> Any:
        g = _step_generator(cfg, "unet", step, cfg.device)
        b = cfg.unet_batch
        idx = torch.randint(0, n, (b,), generator=g, device=cfg.device)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g, device=cfg.device)) * sf
        tok = ids[idx].clone()
        drop = torch.rand(b, generator=g, device=cfg.device) < cfg.caption_dropout
        tok[drop] = empty_ids
        noise = torch.randn(z0.shape, generator=g, device=cfg.device)
        t = torch.randint(0, 1000, (b,), generator=g, device=cfg.device)
        ab = alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = ab.sqrt() * z0 + (1 - ab).sqrt() * noise
        with _autocast(cfg.device):
            emb = te(tok)[0]
            pred = unet(noisy, t, emb).sample
        if cfg.snr_gamma is None:
            return F.mse_loss(pred.float(), noise)
        # min-SNR-gamma: epsilon errors at low noise (high SNR) weigh less, so training time goes to the
        # noisier steps where composition is decided
        snr = ab.view(-1) / (1 - ab.view(-1))
        weight = snr.clamp(max=cfg.snr_gamma) / snr
        per_sample = F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))
        return (weight * per_sample).mean()

    unet.train()
    te.train()
    log = _loop("unet", work, cfg, clock, {"unet": unet, "text_encoder": te}, step_fn, max_steps=cfg.unet_steps,
                peak_lr=cfg.unet_lr, ema=ema, progress=progress)  # fmt: skip
    return log, ema


def _train_classifier(
    work: Path, cfg: TrainConfig, clock: _Clock, clf: Any, images: Any, recon: Any, targets: dict, progress: bool
) -> dict:
    """Inputs: the scenes, a ``clf_recon`` share of VAE reconstructions (closer to generated images), a
    quarter of them blurred, all with a little noise."""
    import torch
    import torch.nn.functional as F

    n = images.shape[0]
    kernel = torch.tensor([1.0, 2.0, 1.0], device=cfg.device)
    kernel = (kernel[:, None] * kernel[None, :] / 16).expand(3, 1, 3, 3).contiguous()

    def step_fn(step: int) -> Any:
        g = _step_generator(cfg, "classifier", step, cfg.device)
        b = cfg.clf_batch
        idx = torch.randint(0, n, (b,), generator=g, device=cfg.device)
        x = _to_float(images[idx])
        if recon is not None:
            use_rec = torch.rand(b, generator=g, device=cfg.device) < cfg.clf_recon
            x = torch.where(use_rec.view(-1, 1, 1, 1), recon[idx].float(), x)
        blur = torch.rand(b, generator=g, device=cfg.device) < 0.25
        x = torch.where(blur.view(-1, 1, 1, 1), F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3), x)
        x = x + 0.03 * torch.randn(x.shape, generator=g, device=cfg.device)
        with _autocast(cfg.device):
            out = clf(x)
        return classifier_loss({k: v.float() for k, v in out.items()}, {k: v[idx] for k, v in targets.items()})

    clf.train()
    log = _loop("classifier", work, cfg, clock, {"classifier": clf}, step_fn, max_steps=cfg.clf_steps,
                peak_lr=cfg.clf_lr, progress=progress)  # fmt: skip
    clf.eval()
    return log


def train(
    work_dir: str | Path = "runs/embedded",
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every stage and write ``out_dir/mini-sd`` (pipeline + checksums), ``out_dir/classifier``, the log.

    ``out_dir`` defaults to ``work_dir/weights``. Returns the training log (also written as
    ``out_dir/training_log.json``).
    """
    import torch

    cfg = _resolve_config(config)
    work = Path(work_dir)
    out = Path(out_dir) if out_dir is not None else work / "weights"
    state_path, state = _open_state(work, cfg, resume)
    skip = {"vae"} if cfg.init_from else set()  # a continued run keeps its VAE
    skip |= {"classifier"} if cfg.clf_steps == 0 else set()
    clock = _Clock(cfg.time_budget, state["spent_s"], frozenset(skip))

    def mark(stage: str, log: dict) -> None:
        state["stages"][stage] = log
        state["spent_s"] = clock.elapsed()
        state_path.write_text(json.dumps(state))

    torch.manual_seed(cfg.seed)
    if cfg.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    t_data = time.monotonic()
    images_np, captions, _ = make_dataset(cfg.n_train, "train", cfg.seed, workers=cfg.workers)
    clf_np, _, clf_attrs = make_dataset(cfg.n_classifier, "classifier", cfg.seed, workers=cfg.workers)
    data_s = time.monotonic() - t_data
    images = torch.from_numpy(images_np).to(cfg.device)
    models = arch.build_models(cfg.seed, tiny=cfg.fast)
    for k in ("vae", "text_encoder", "unet"):
        models[k].to(cfg.device)
    if cfg.init_from:
        _load_pretrained(models, Path(cfg.init_from))
    tok = models["tokenizer"]
    ids = tok(captions, padding="max_length", max_length=arch.MAX_TOKENS, truncation=True, return_tensors="pt")
    ids = ids.input_ids.to(cfg.device)
    empty_ids = tok([""], padding="max_length", max_length=arch.MAX_TOKENS, return_tensors="pt").input_ids
    empty_ids = empty_ids.to(cfg.device)

    _stage_vae(work, cfg, clock, models["vae"], images, progress, mark)
    mean, std, scaling_factor, preview = _stage_latents(cfg, models["vae"], images)
    _stage_unet(work, cfg, clock, models, (mean, std), (ids, empty_ids), progress, mark)
    del mean, std
    clf = _stage_classifier(work, cfg, clock, models["vae"], (clf_np, clf_attrs), progress, mark)
    return _write_weights(out, cfg, models, clf, preview, scaling_factor, data_s, clock, state)


def _resolve_config(config: TrainConfig | None) -> TrainConfig:
    """The configuration to run: smoke sizes filled in for ``fast``; CUDA checked when asked for."""
    import torch

    cfg = config or TrainConfig()
    if cfg.fast:  # smoke sizes for every setting left at its default
        default = TrainConfig()
        cfg = dataclasses.replace(cfg, **{k: v for k, v in FAST.items() if getattr(cfg, k) == getattr(default, k)})
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise SdlabError("CUDA is not available", device=cfg.device, hint="pass --device cpu")
    return cfg


def _open_state(work: Path, cfg: TrainConfig, resume: bool) -> tuple[Path, dict[str, Any]]:
    """The work folder's ``state.json`` path and contents (cleared without ``resume``); refuses another config."""
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / "state.json"
    if not resume:
        for f in work.glob("*.pt"):
            f.unlink()
        state_path.unlink(missing_ok=True)
    state = json.loads(state_path.read_text()) if state_path.exists() else {"stages": {}, "spent_s": 0.0}
    if state.get("config", cfg.to_dict()) != cfg.to_dict():
        raise SdlabError(
            "the work folder holds a run with another configuration", work_dir=str(work),
            hint="pass the same options, or --no-resume to start over",
        )  # fmt: skip
    state["config"] = cfg.to_dict()
    return state_path, state


def _stage_vae(work: Path, cfg: TrainConfig, clock: _Clock, vae: Any, images: Any, progress: bool, mark: Any) -> None:
    """Stage 1: the VAE (kept from ``init_from``, loaded from a finished run, or trained)."""
    import torch

    if cfg.init_from:
        vae.eval()
        mark("vae", {"steps": 0, "total": 0, "wall_s": 0.0, "losses": [], "init_from": cfg.init_from})
    elif (work / "vae_final.pt").exists():
        vae.load_state_dict(torch.load(work / "vae_final.pt", map_location=cfg.device))
        vae.eval()
    else:
        log = _train_vae(work, cfg, clock, vae, images, progress)
        torch.save(vae.state_dict(), work / "vae_final.pt")
        mark("vae", log)


def _stage_latents(cfg: TrainConfig, vae: Any, images: Any) -> tuple[Any, Any, float, dict[str, Any]]:
    """Stage 2: latents (mean, std), the scaling factor (1 / std of the latents, as SD did), the preview matrix."""
    import torch

    mean, std = _encode_all(vae, images, cfg.device)
    if cfg.init_from:  # keep the continued model's latent scale and preview
        scaling_factor = float(vae.config.scaling_factor)
        preview = json.loads((Path(cfg.init_from) / "mini-sd" / "sdlab_preview.json").read_text())
    else:
        g = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
        sample = mean[:4096] + std[:4096] * torch.randn(mean[:4096].shape, generator=g, device=cfg.device)
        scaling_factor = float(1.0 / sample.std())
        vae.register_to_config(scaling_factor=scaling_factor)
        preview = _fit_preview(mean * scaling_factor, images)
    return mean, std, scaling_factor, preview


def _stage_unet(
    work: Path, cfg: TrainConfig, clock: _Clock, models: dict[str, Any], latents: tuple[Any, Any],
    token_ids: tuple[Any, Any], progress: bool, mark: Any,
) -> None:  # fmt: skip
    """Stage 3: text encoder + UNet, jointly, from scratch (or loaded from a finished run); left in eval mode."""
    import torch

    if (work / "unet_final.pt").exists():
        final = torch.load(work / "unet_final.pt", map_location=cfg.device)
        models["unet"].load_state_dict(final["unet"])
        models["text_encoder"].load_state_dict(final["text_encoder"])
    else:
        log, ema = _train_unet(work, cfg, clock, models, latents, *token_ids, progress)
        models["unet"].load_state_dict(ema["unet"].state_dict())
        models["text_encoder"].load_state_dict(ema["text_encoder"].state_dict())
        torch.save({k: models[k].state_dict() for k in ("unet", "text_encoder")}, work / "unet_final.pt")
        mark("unet", log)
    models["unet"].eval()
    models["text_encoder"].eval()


def _stage_classifier(
    work: Path, cfg: TrainConfig, clock: _Clock, vae: Any, scenes: tuple[Any, list[dict[str, Any]]], progress: bool,
    mark: Any,
) -> Any:  # fmt: skip
    """Stage 4: the attribute classifier on its own scenes and their VAE reconstructions."""
    import torch

    clf_np, clf_attrs = scenes
    clf = build_classifier().to(cfg.device)
    if cfg.init_from:
        from safetensors.torch import load_file

        saved = load_file(str(Path(cfg.init_from) / "classifier" / "model.safetensors"))
        shapes = {k: v.shape for k, v in clf.state_dict().items()}
        if {k: v.shape for k, v in saved.items()} == shapes:  # same architecture: continue it
            clf.load_state_dict({k: v.float() for k, v in saved.items()})
    if (work / "classifier_final.pt").exists():
        clf.load_state_dict(torch.load(work / "classifier_final.pt", map_location=cfg.device))
        return clf
    clf_images = torch.from_numpy(clf_np).to(cfg.device)
    recon = None
    if cfg.clf_recon > 0:
        parts = []
        with torch.inference_mode():
            for i in range(0, len(clf_images), 512):
                z = vae.encode(_to_float(clf_images[i : i + 512])).latent_dist.mean
                parts.append(vae.decode(z).sample.clamp(-1, 1).half())
        recon = torch.cat(parts).clone()
    targets = {k: torch.from_numpy(v).to(cfg.device) for k, v in attribute_targets(clf_attrs).items()}
    log = _train_classifier(work, cfg, clock, clf, clf_images, recon, targets, progress)
    torch.save(clf.state_dict(), work / "classifier_final.pt")
    mark("classifier", log)
    return clf


def _write_weights(
    out: Path, cfg: TrainConfig, models: dict[str, Any], clf: Any, preview: dict[str, Any], scaling_factor: float,
    data_s: float, clock: _Clock, state: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Write the shipped folders (``mini-sd``, ``classifier``, checksums) and ``training_log.json``; the log."""
    import torch

    for k in ("vae", "text_encoder", "unet"):
        models[k].to("cpu")
    pipe_dir = arch.save_pipeline(out / "mini-sd", models, dtype=cfg.weights_dtype)
    (pipe_dir / "sdlab_preview.json").write_text(json.dumps(preview, indent=1))
    save_classifier(clf.to("cpu"), out / "classifier")
    write_checksums(pipe_dir)
    write_checksums(out / "classifier")
    log = {
        "config": cfg.to_dict(),
        "device": _device_name(cfg.device),
        "torch": torch.__version__,
        "data_s": round(data_s, 1),
        "wall_s": round(clock.elapsed(), 1),
        "scaling_factor": scaling_factor,
        "preview_rms_error": preview["rms_error"],
        "parameters": {**arch.count_parameters(models), "classifier": sum(p.numel() for p in clf.parameters())},
        "stages": state["stages"],
        "reproduce": {f"{s}_steps": state["stages"][s]["steps"] for s in ("vae", "unet")}
        | {"clf_steps": state["stages"]["classifier"]["steps"]},
    }
    (out / "training_log.json").write_text(json.dumps(log, indent=1))
    return log


def _load_pretrained(models: dict[str, Any], folder: Path) -> None:
    """Copy the weights (and the VAE's scaling factor) of ``folder/mini-sd`` into ``models``, in float32."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    src = folder / "mini-sd"
    if not (src / "model_index.json").is_file():
        raise SdlabError("init_from holds no mini-sd pipeline folder", init_from=str(folder))
    vae = AutoencoderKL.from_pretrained(str(src), subfolder="vae", torch_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(str(src), subfolder="unet", torch_dtype=torch.float32)
    te = CLIPTextModel.from_pretrained(str(src), subfolder="text_encoder", dtype=torch.float32)
    for name, loaded in (("vae", vae), ("unet", unet), ("text_encoder", te)):
        models[name].load_state_dict({k: v.float() for k, v in loaded.state_dict().items()})
    models["vae"].register_to_config(scaling_factor=vae.config.scaling_factor)


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def load_images_tensor(images: np.ndarray) -> Any:
    """uint8 (B, 64, 64, 3) numpy images -> float tensor (B, 3, 64, 64) in [0, 1]."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
