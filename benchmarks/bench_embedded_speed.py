"""Speed of the embedded model on the CPU: a batch of 8 images, 20 steps, CFG on (target <= 3 s on 2 cores).

    python benchmarks/bench_embedded_speed.py                 # shipped weights, 2 threads
    taskset -c 0,1 python benchmarks/bench_embedded_speed.py  # pin to 2 cores as well

Measured through diffusers' own StableDiffusionPipeline (sdlab.generate will be timed the same way).
Prints a table: best and median of ``--repeats`` runs per row, after one warm-up run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "a small red striped circle above a blue square, sunset sky, on grass"


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="pipeline folder (default: the shipped mini-sd)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)

    import torch
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, StableDiffusionPipeline
    from diffusers.utils import logging

    from sdlab.embedded import pipeline_dir

    logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    folder = args.weights or str(pipeline_dir())
    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    dpm = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
    euler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    prompts = [PROMPT] * args.batch

    def run(scheduler: object, cfg: float) -> Callable[[], object]:
        def go() -> object:
            pipe.scheduler = scheduler
            g = torch.Generator().manual_seed(0)
            return pipe(prompts, num_inference_steps=args.steps, guidance_scale=cfg, height=64, width=64,
                        generator=g, output_type="pt")  # fmt: skip

        return go

    x = torch.randn(2 * args.batch, 4, 16, 16)
    emb = torch.randn(2 * args.batch, 32, pipe.text_encoder.config.hidden_size)
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=32, return_tensors="pt").input_ids
    z = torch.randn(args.batch, 4, 16, 16)
    rows: list[tuple[str, float, float]] = []
    with torch.inference_mode():
        for name, fn in [
            (f"DPM++ 2M Karras, {args.steps} steps, CFG 5", run(dpm, 5.0)),
            (f"Euler, {args.steps} steps, CFG 5", run(euler, 5.0)),
            (f"DPM++ 2M Karras, {args.steps} steps, CFG 1 (no uncond pass)", run(dpm, 1.0)),
            (f"  UNet forward, batch {2 * args.batch} (cond + uncond)",
             lambda: pipe.unet(x, torch.full((2 * args.batch,), 500), emb)),
            (f"  VAE decode, batch {args.batch}", lambda: pipe.vae.decode(z)),
            (f"  text encoder, batch {args.batch}", lambda: pipe.text_encoder(ids)),
        ]:  # fmt: skip
            best, median = _time(fn, args.repeats)
            rows.append((name, best, median))
    print(f"embedded model speed: {args.batch} images 64x64, torch {torch.__version__}, {args.threads} threads")
    print(f"{'what':<58} {'best s':>8} {'median s':>9}")
    for name, best, median in rows:
        print(f"{name:<58} {best:>8.3f} {median:>9.3f}")
    target = rows[0][2]
    print(f"target: batch of {args.batch}, {args.steps} steps, CFG on <= 3 s -> {'met' if target <= 3 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
