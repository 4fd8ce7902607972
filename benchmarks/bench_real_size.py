"""sdlab.generate against diffusers' pipelines and a bare sampling loop, on the published architectures.

    python benchmarks/bench_real_size.py                  # CPU: reduced width and size, finishes in minutes
    python benchmarks/bench_real_size.py --full           # GPU: full size, fp16 (SD 1.5 512^2 x4, SDXL 1024^2 x1)
    python benchmarks/bench_real_size.py --profile        # also cProfile one sdlab.generate call per model

Every row runs DPM++ 2M Karras, 20 steps, CFG 7 on the same in-memory weights (random, seeded; a model with random
weights has the cost of the real one), the same batch, size and dtype:

* diffusers: ``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline`` with
  ``DPMSolverMultistepScheduler(use_karras_sigmas=True)``, ``output_type="pt"``;
* sdlab.generate, without and with ``trajectory=True``, and with the trajectory's per-step SSIM and perceptual
  metric (:func:`sdlab.measure.steps.step_deltas`, every step decoded by the tiny decoder: TAESD's architecture,
  random weights, for its cost);
* bare loop: sdlab's conditioning, CFG denoiser and VAE, with DPM-Solver++(2M) written out inline (no checks,
  no per-image RNG, no specs): what generate costs above the arithmetic itself.

Times are the median (and best) of ``--repeats`` runs after one warm-up, the cases taking turns; ratios are to
diffusers' median. Peak GPU memory is that of each case's warm-up run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import platform
import pstats
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "a photograph of an astronaut riding a horse on the moon, detailed, (sharp focus:1.2)"
NEGATIVE = "blurry, lowres"


def _time_interleaved(
    cases: list[tuple[str, Callable[[], object]]],
    repeats: int,
    sync: Callable[[], None],
    peak: Callable[[], float | None],
) -> list[tuple[str, float, float, float, float | None]]:
    """(name, median wall s, best wall s, median process CPU s, peak) per case; one warm-up each, then the cases
    in turn ``repeats`` times, so a change of load on a shared machine falls on every case alike. The CPU time
    (all threads of this process) hardly changes with other processes' load, the wall time does."""
    walls: dict[str, list[float]] = {name: [] for name, _ in cases}
    cpus: dict[str, list[float]] = {name: [] for name, _ in cases}
    peaks: dict[str, float | None] = {}
    for name, fn in cases:
        fn()
        sync()
        peaks[name] = peak()
    for _ in range(repeats):
        for name, fn in cases:
            t, c = time.perf_counter(), time.process_time()
            fn()
            sync()
            walls[name].append(time.perf_counter() - t)
            cpus[name].append(time.process_time() - c)
    return [
        (name, statistics.median(walls[name]), min(walls[name]), statistics.median(cpus[name]), peaks[name])
        for name, _ in cases
    ]


def _random_tiny_decoder(model) -> None:
    """The tiny decoder sdlab uses for per-step images (TAESD's published architecture: diffusers'
    ``AutoencoderTiny`` defaults), seeded random weights, on the model's device: no hub needed, same cost."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    channels = model.latent_shape(64, 64)[0]
    vae = AutoencoderTiny(latent_channels=channels).to(model.device, torch.float32).eval().requires_grad_(False)
    object.__setattr__(model, "_tiny_vae", vae)  # where sdlab.models.tiny_vae.load_tiny_vae caches it


def _bare_loop(model, steps: int, cfg: float, batch: int, size: tuple[int, int]):
    """Conditioning, DPM-Solver++(2M) on Karras sigmas with CFG, decode: nothing else."""
    import torch

    from sdlab.schedules.formulas import karras

    def run() -> object:
        cond = model.encode_prompt([PROMPT] * batch, [NEGATIVE] * batch, size=size)
        denoiser = model.denoiser(cond, cfg)
        sigmas = karras(steps, float(model.sigmas[0]), float(model.sigmas[-1])).float().to(model.device)
        g = torch.Generator(model.device).manual_seed(0)
        x = torch.randn(batch, *model.latent_shape(*size), generator=g, device=model.device) * sigmas[0]
        old = None
        for i in range(steps):
            denoised = denoiser(x, sigmas[i].expand(batch))
            t, t_next = -sigmas[i].log(), -sigmas[i + 1].log() if sigmas[i + 1] > 0 else None
            if t_next is None:
                x = denoised
            elif old is None:
                h = t_next - t
                x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised
            else:
                h, h_last = t_next - t, t + sigmas[i - 1].log()
                r = h_last / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
                x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * d
            old = denoised
        return model.decode(x)

    return run


def _rows(name: str, args: argparse.Namespace) -> tuple[list[tuple[str, float, float, float, float | None]], str]:
    import torch
    from diffusers import DPMSolverMultistepScheduler

    import sdlab.generation as generation
    from sdlab.measure.metrics import default_perceptual
    from sdlab.measure.steps import step_deltas
    from sdlab.models import architectures, wrap_pipeline

    device = "cuda" if args.full else "cpu"
    dtype = torch.float16 if args.full else torch.float32
    width = 1.0 if args.full else args.width
    size = (args.size or (1024 if name == "sdxl-base" else 512),) * 2 if args.full else (args.size or 128,) * 2
    batch = args.batch or ((1 if name == "sdxl-base" else 4) if args.full else 2)
    pipe = architectures.build_pipeline(name, width=width, seed=0, dtype=dtype)
    model = wrap_pipeline(pipe, model_id=f"{name}-w{width}", device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def diffusers_run() -> object:
        g = [torch.Generator(device).manual_seed(s) for s in range(batch)]
        return pipe([PROMPT] * batch, negative_prompt=[NEGATIVE] * batch, num_inference_steps=args.steps,
                    guidance_scale=args.cfg, height=size[1], width=size[0], generator=g, output_type="pt")  # fmt: skip

    def sdlab_run(trajectory: bool) -> Callable[[], object]:
        return lambda: generation.generate(
            PROMPT, negative_prompt=NEGATIVE, sampler="DPM++ 2M", schedule="Karras", steps=args.steps,
            cfg=args.cfg, seeds=list(range(batch)), size=size, model=model, trajectory=trajectory,
        )  # fmt: skip

    _random_tiny_decoder(model)
    metrics = ("ssim", default_perceptual())

    def per_step_metrics() -> object:
        result = sdlab_run(True)()
        return [step_deltas(tr, result.latents[k], model=model, image_metrics=metrics, decode="tiny")
                for k, tr in enumerate(result.trajectories)]  # fmt: skip

    label = f"{name} w{width:g} {size[0]}x{size[1]} batch {batch} {str(dtype).removeprefix('torch.')}"
    cases = [
        ("diffusers pipeline", diffusers_run),
        ("sdlab.generate", sdlab_run(False)),
        ("sdlab.generate, trajectory", sdlab_run(True)),
        (f"sdlab.generate, trajectory + per-step {' and '.join(metrics)} (tiny decoder)", per_step_metrics),
        ("bare loop (sdlab pieces)", _bare_loop(model, args.steps, args.cfg, batch, size)),
    ]

    def peak() -> float | None:  # the warm-up run's peak, then reset for the next case
        if device != "cuda":
            return None
        value = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
        return value

    with torch.inference_mode():
        peak()
        rows = _time_interleaved(cases, args.repeats, sync, peak)
        profile = ""
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(sdlab_run(False))
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
            profile = out.getvalue()
    return [(f"{label}: {case}", *rest) for case, *rest in rows], profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full size, fp16, on CUDA")
    parser.add_argument("--models", default="sd15,sdxl-base", help="comma-separated: sd15, sd21-v, sdxl-base")
    parser.add_argument("--width", type=float, default=0.1, help="CPU: channel multiplier (default 0.1)")
    parser.add_argument("--size", type=int, default=None, help="image side (CPU 128; GPU 512 / SDXL 1024)")
    parser.add_argument("--batch", type=int, default=None, help="images per run (CPU 2; GPU 4 / SDXL 1)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each case, interleaved")
    parser.add_argument("--threads", type=int, default=2, help="CPU: torch threads (default 2)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one sdlab.generate per model")
    args = parser.parse_args(argv)

    import torch
    from diffusers.utils import logging

    logging.set_verbosity_error()
    if args.full and not torch.cuda.is_available():
        parser.error("--full needs CUDA")
    if not args.full:
        torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if args.full else f"CPU ({platform.processor() or platform.machine()})"
    print(f"DPM++ 2M Karras, {args.steps} steps, CFG {args.cfg:g}; {device}, torch {torch.__version__}, "
          f"{'fp16' if args.full else f'{args.threads} threads, fp32'}")  # fmt: skip
    print()
    print("| run | median wall s | best wall s | wall x diffusers | median CPU s | CPU x diffusers | peak GPU GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|", flush=True)
    profiles = []
    for name in args.models.split(","):
        group, profile = _rows(name.strip(), args)
        gc.collect()  # the model of the previous rows is gone before the next is built
        wall0, cpu0 = group[0][1], group[0][3]
        for row, median, best, cpu, peak in group:
            peak_text = "" if peak is None else f"{peak:.2f}"
            print(f"| {row} | {median:.3f} | {best:.3f} | {median / wall0:.3f} | {cpu:.3f} | {cpu / cpu0:.3f} | "
                  f"{peak_text} |", flush=True)  # fmt: skip
        profiles.append(profile)
    print()
    print(f"peak host RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    for profile in profiles:
        if profile:
            print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
