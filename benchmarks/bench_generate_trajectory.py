"""sdlab.generate with the full trajectory recorded vs a bare loop of the same sampler on the same model.

Target (issue: sampler core): overhead <= 5 % on the CPU. Prints a markdown table.
Usage: python benchmarks/bench_generate_trajectory.py [--reps 5] [--batch 8] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import sdlab
from sdlab.generation import load, schedule_for
from sdlab.noise import ImageRNG
from sdlab.samplers.kdiffusion import dpmpp_2m

PROMPT = "two small red circles and a large blue square, sunset sky"


def bare(model, seeds, steps, cfg):
    """What a user would write by hand: encode, noise, one sampler function, decode."""
    sigmas, _ = schedule_for("DPM++ 2M", "Karras", steps, model)
    noise = ImageRNG(model.latent_shape(64, 64), seeds, source="CPU").first()
    cond = model.encode_prompt([PROMPT] * len(seeds), [""] * len(seeds))
    x = dpmpp_2m(model.denoiser(cond, cfg), noise * sigmas[0], sigmas)
    return model.decode(x)


def sdlab_run(model, seeds, steps, cfg, trajectory):
    return sdlab.generate(PROMPT, sampler="DPM++ 2M", schedule="Karras", steps=steps, cfg=cfg, seeds=seeds,
                          model=model, rng="CPU", trajectory=trajectory).images  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=5.0)
    args = ap.parse_args()
    model = load(None)
    seeds = list(range(args.batch))
    runs = {
        "bare loop (dpmpp_2m function)": lambda: bare(model, seeds, args.steps, args.cfg),
        "sdlab.generate": lambda: sdlab_run(model, seeds, args.steps, args.cfg, False),
        "sdlab.generate, trajectory=True": lambda: sdlab_run(model, seeds, args.steps, args.cfg, True),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(args.reps):  # interleaved, so drift hits every variant alike
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["bare loop (dpmpp_2m function)"])
    print(f"embedded model, DPM++ 2M Karras, {args.steps} steps, CFG {args.cfg}, batch {args.batch}, "
          f"{torch.get_num_threads()} threads, median of {args.reps}\n")  # fmt: skip
    print("| run | median s | min s | overhead vs bare |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.3f} | {min(ts):.3f} | {100 * (med / base - 1):+.1f} % |")


if __name__ == "__main__":
    main()
