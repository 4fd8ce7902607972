"""Peak host and device memory of each documented use of a trajectory, and what SDXL at full size holds.

Each use runs in a fresh process on the same model: its peak resident set (VmHWM, reset after the model is
loaded) over what the loaded model holds, the peak CUDA memory where CUDA exists (else n/a), and the tensor bytes
the trajectories and kept images hold (``Trajectory.nbytes``). Then an estimate from shapes of SDXL at 1024 px,
50 steps, batch 4 (latents, predictions, decoded images), with the weights' sizes counted from the published
architectures (``sdlab.models.architectures`` on the meta device, no memory), and the full-width VAE's decode
activations measured at 256 px.

Usage: python benchmarks/bench_memory.py [--size 512] [--steps 16] [--batch 2] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

USES = {
    "generate": "generate, images only",
    "trajectory": "generate, trajectory=True (float32)",
    "trajectory16": 'generate, trajectory_dtype="float16"',
    "streamed": "trajectory + per-step SSIM/PSNR, streamed",
    "at_once": "trajectory + per-step SSIM/PSNR, all steps at once (before)",
    "keep": "trajectory + per-step SSIM/PSNR, keep_images=True",
}
MIB = 2**20


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM back to VmRSS
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def worker(use: str, size: int, steps: int, batch: int, stream_mb: float) -> dict:
    """One use in this process: peak memory over the loaded model, and the tensor bytes kept."""
    import sdlab
    from sdlab.measure.steps import step_deltas
    from sdlab.testing import tiny_model

    torch.set_num_threads(1)
    model = tiny_model("sdxl", seed=0)  # the SDXL pipeline's layout at a tiny width: images cost what they cost
    if torch.cuda.is_available():
        from sdlab.models.loading import wrap_pipeline

        model = wrap_pipeline(model.pipe, model_id=model.model_id, device="cuda")
    kw = dict(model=model, sampler="DPM++ 2M", schedule="Karras", steps=steps, cfg=5.0, seeds=list(range(batch)),
              size=(size, size))  # fmt: skip
    sdlab.generate("warm-up", **{**kw, "steps": 2, "seeds": [0]})
    _reset_peak()
    loaded = _status("VmRSS")
    t0 = time.perf_counter()
    res = sdlab.generate("a red circle", trajectory=use != "generate",
                         trajectory_dtype="float16" if use == "trajectory16" else None, **kw)  # fmt: skip
    if use in ("streamed", "at_once", "keep"):
        stream = None if use == "at_once" else int(stream_mb * MIB)
        for traj, final in zip(res.trajectories, res.latents, strict=True):
            step_deltas(traj, final, model=model, image_metrics=("ssim", "psnr"), stream_bytes=stream,
                        keep_images=use == "keep")  # fmt: skip
    seconds = time.perf_counter() - t0
    cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    trajs = res.trajectories or []
    kept = sum(img.nbytes for t in trajs for images in t.images.values() for img in images.values())
    return {
        "use": use,
        "loaded": loaded,
        "peak": _status("VmHWM"),
        "cuda_peak": cuda,
        "trajectory_bytes": sum(t.nbytes() for t in trajs) - kept,
        "kept_bytes": kept,
        "seconds": seconds,
    }


def _run_use(use: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", use, "--size", str(args.size), "--steps", str(args.steps),
           "--batch", str(args.batch), "--stream-mb", str(args.stream_mb)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- the full-size estimate -------------------------------------------------------------------------------------


def parameter_counts(name: str = "sdxl-base") -> dict[str, int]:
    """Parameters per component of a published architecture, built on the meta device (no memory)."""
    from sdlab.models.architectures import architecture, build_components

    arch = architecture(name)
    parts = build_components(arch.kind, arch.prediction_type, unet_channels=320, vae_channels=128, text_hidden={},
                             device="meta")  # fmt: skip  # no text width given: the published ones
    return {k: sum(p.numel() for p in v.parameters()) for k, v in parts.items() if isinstance(v, torch.nn.Module)}


def vae_decode_activations(side: int = 256) -> int:
    """Peak resident bytes over the weights of the full-width SDXL VAE decoding one ``side`` px image (fp32)."""
    from diffusers import AutoencoderKL

    from sdlab.models.architectures import vae_config

    torch.set_num_threads(1)
    vae = AutoencoderKL(**vae_config("sdxl")).eval().requires_grad_(False)
    z = torch.randn(1, 4, side // 8, side // 8)
    with torch.no_grad():
        vae.decode(z)  # warm-up
        _reset_peak()
        loaded = _status("VmRSS")
        vae.decode(z)
    return _status("VmHWM") - loaded


def estimate(params: dict[str, int], vae_per_mpix: float, stream_mb: float = 64) -> str:
    """Markdown: what a 1024 px, 50-step, batch-4 SDXL trajectory holds, and what fits on 24 GB and 80 GB GPUs."""
    side, steps, batch = 1024, 50, 4
    latent = 4 * (side // 8) ** 2  # elements
    image = 3 * side * side * 4  # bytes, float32 on the CPU
    traj32, traj16 = steps * batch * 2 * latent * 4, steps * batch * 2 * latent * 2
    all_images = steps * batch * image
    at_once = (steps + 1) * image  # step_deltas before: every step of one image and its final at once
    window = max(1, int(stream_mb * MIB) // image)  # decode batch 1 at 1024 px
    streamed = (window + 2) * image  # a window, the final image's batch, the previous window's last step
    weights16 = 2 * (params["unet"] + params["text_encoder"] + params["text_encoder_2"])
    vae32 = 4 * params["vae"]
    decode1 = vae_per_mpix * side * side / 2**20
    gb = 1e9
    lines = [
        f"Full size: SDXL base 1.0 at {side} px, {steps} steps, batch {batch} (latent 4 x {side // 8} x {side // 8}).",
        "",
        "| what | bytes | where |",
        "|---|---|---|",
        f"| trajectory, float32 (x and prediction per step and image) | {traj32 / MIB:,.0f} MiB | host |",
        f'| trajectory, trajectory_dtype="float16" | {traj16 / MIB:,.0f} MiB | host |',
        f"| every step decoded, all images (keep_images=True) | {all_images / MIB:,.0f} MiB | host |",
        f"| per-step image metrics before: one image's {steps + 1} decoded steps at once | {at_once / MIB:,.0f} MiB"
        " | host |",
        f"| per-step image metrics streamed ({stream_mb:g} MiB window: {window} steps + 2) | {streamed / MIB:,.0f}"
        " MiB | host |",
        f"| weights: UNet {params['unet'] / 1e9:.3f} B + text encoders "
        f"{(params['text_encoder'] + params['text_encoder_2']) / 1e9:.3f} B params, fp16 | {weights16 / gb:.2f} GB"
        " | device |",
        f"| VAE {params['vae'] / 1e6:.1f} M params, fp32 (SDXL's force_upcast) | {vae32 / gb:.2f} GB | device |",
        f"| VAE decode activations, one {side} px image, fp32 (measured at 256 px, x16) | {decode1 / gb:.1f} GB "
        "| device |",
        f"| VAE decode, batch 16 (decode_latents' batch before, at any size) | {16 * decode1 / gb:.0f} GB | device |",
        f"| VAE decode, batch 1 (decode_batch at 1024 px now) | {decode1 / gb:.1f} GB | device |",
    ]
    base = weights16 + vae32
    for gpu in (24, 80):
        before = base + 16 * decode1 <= gpu * gb
        now = base + decode1 <= gpu * gb
        lines.append("")
        lines.append(
            f"{gpu} GB GPU: weights {base / gb:.1f} GB + one decode {decode1 / gb:.1f} GB fits: "
            f"{'yes' if now else 'no'} (with the 16-image decode batch of before: {'yes' if before else 'no'}); "
            "the UNet's own activations at"
            f" batch {batch} with CFG ({2 * batch} latents of 128 x 128) come on top, not measured here (no GPU)."
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=list(USES))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--stream-mb", type=float, default=None, help="default: 64 MiB scaled to the image area")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.stream_mb is None:  # the same number of steps per window as the 64 MiB default holds at 1024 px
        args.stream_mb = 64 * (args.size / 1024) ** 2
    if args.worker:
        print(json.dumps(worker(args.worker, args.size, args.steps, args.batch, args.stream_mb)))
        return
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no CUDA)"
    rows = [_run_use(use, args) for use in USES]
    table = [
        f"sdlab's tiny SDXL-layout model (sdlab.testing), {args.size} px, {args.steps} steps, batch {args.batch}, "
        f"DPM++ 2M Karras, on {device}, 1 thread; each use in a fresh process. Peak over loaded = VmHWM after "
        f"the model is loaded and warmed up, less VmRSS then. Streamed window: {args.stream_mb:g} MiB (64 MiB "
        f"scaled to the image area: as many steps per window as at 1024 px). Seconds: wall time, on a shared "
        "machine not comparable between rows.",
        "",
        "| use | peak RSS over loaded | peak RSS | peak CUDA | trajectories hold | kept images | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cuda = "n/a" if r["cuda_peak"] is None else f"{r['cuda_peak'] / MIB:,.0f} MiB"
        table.append(
            f"| {USES[r['use']]} | {(r['peak'] - r['loaded']) / MIB:,.1f} MiB | {r['peak'] / MIB:,.0f} MiB | {cuda} "
            f"| {r['trajectory_bytes'] / MIB:,.2f} MiB | {r['kept_bytes'] / MIB:,.2f} MiB | {r['seconds']:.1f} |"
        )
    params = parameter_counts()
    vae_per_mpix = vae_decode_activations(256) / (256 * 256 / 2**20)
    text = "\n".join(table) + "\n\n" + estimate(params, vae_per_mpix) + "\n"
    print(text)
    if args.out:
        args.out.write_text(f"# Memory: trajectories, per-step metrics, decoded steps ({device})\n\n" + text)


if __name__ == "__main__":
    main()
