"""Cost of per-step metrics over a whole trajectory vs the cost of generating it (target: <= 15 %).

    .venv/bin/python benchmarks/bench_metrics_overhead.py [--steps 20] [--seeds 4] [--repeats 3] [--threads 1]

The embedded model generates one batch with ``trajectory=True``; then :func:`sdlab.experiments.step_deltas` measures
every image's trajectory (each step's denoised prediction vs the next one and vs the final latent): latent RMSE
alone, then plus SSIM and PSNR on decoded predictions (VAE decode in batches, one image at a time, the tiny decoder
(TAESD) or A1111's cheap linear preview), and how closely the tiny decoder's and the preview's metrics follow the
VAE's. LPIPS joins when its backbone is cached. Best of ``--repeats``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

import sdlab
from sdlab.experiments import DEFAULT_PROMPT, lpips_unavailable, step_deltas
from sdlab.generation import load


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampler", default="DPM++ 2M")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = steadiest on a shared box)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sd = load(None)
    seeds = list(range(args.seeds))

    def generate() -> sdlab.GenerateResult:
        return sdlab.generate(
            DEFAULT_PROMPT, sampler=args.sampler, steps=args.steps, cfg=5, seeds=seeds, model=sd, trajectory=True
        )

    generate()  # warm-up
    result = generate()
    t_gen = _best(generate, args.repeats)
    image_metrics = ("ssim", "psnr") + (("lpips",) if lpips_unavailable() is None else ())

    def per_step(metrics: tuple[str, ...], decode: str, *, unbatched: bool = False, every: int = 1) -> Callable:
        def run() -> None:
            for k, traj in enumerate(result.trajectories):
                if unbatched:  # the model's own decode, one image at a time, for comparison
                    images = sd.decode(torch.cat([traj.latents(), result.latents[k : k + 1]]))
                    assert images.shape[0] == len(traj) + 1
                step_deltas(traj, result.latents[k], model=sd, image_metrics=metrics, decode=decode, decode_every=every)

        return run

    im = "/".join(image_metrics)
    cases = [
        ("latent RMSE only (next + final, every step)", per_step((), "full")),
        (f"latent RMSE + {im}, VAE decode of every step, batched", per_step(image_metrics, "full")),
        (
            f"(for comparison: + the same decodes one image at a time, model.decode) + {im}",
            per_step(image_metrics, "full", unbatched=True),
        ),
        (f"latent RMSE + {im}, VAE decode every 5th step, batched", per_step(image_metrics, "full", every=5)),
        (f"latent RMSE + {im}, VAE decode every 10th step, batched", per_step(image_metrics, "full", every=10)),
        (f"latent RMSE + {im}, tiny decoder (TAESD) of every step", per_step(image_metrics, "tiny")),
        (f"latent RMSE + {im}, cheap linear preview of every step", per_step(image_metrics, "preview")),
    ]
    n_images, n_steps = len(seeds), len(result.trajectories[0])
    print(
        f"\nembedded model, {args.sampler}, {args.steps} steps, batch of {n_images}, {torch.get_num_threads()} "
        f"thread(s); generation with trajectory: {t_gen:.3f} s ({1000 * t_gen / n_images:.0f} ms/image)\n"
    )
    print("| per-step metrics | seconds (batch) | ms / image | ms / step | overhead vs generation | target <= 15 % |")
    print("|---|---:|---:|---:|---:|:---:|")
    for label, fn in cases:
        fn()  # warm-up
        t = _best(fn, args.repeats)
        pct = 100 * t / t_gen
        print(
            f"| {label} | {t:.3f} | {1000 * t / n_images:.1f} | {1000 * t / (n_images * n_steps):.2f} | "
            f"{pct:.1f} % | {'yes' if pct <= 15 else 'no'} |"
        )
    agreement(result, sd, image_metrics)
    if lpips_unavailable():
        print(f"\nLPIPS not measured: {lpips_unavailable()}")


def agreement(result: sdlab.GenerateResult, sd: object, metrics: tuple[str, ...]) -> None:
    """How far the per-step metrics through the tiny decoder and the preview are from the VAE's."""
    import numpy as np
    import pandas as pd

    frames = []
    for decode in ("full", "tiny", "preview"):
        for k, traj in enumerate(result.trajectories):
            rows = step_deltas(traj, result.latents[k], model=sd, image_metrics=metrics, decode=decode)
            frames.append(pd.DataFrame(rows).assign(decode=decode, image=k))
    table = pd.concat(frames)
    table = table[table["metric"].isin(metrics)]
    wide = table.pivot_table("value", ["image", "comparison", "metric", "step"], "decode").reset_index()
    print("\nper-step image metrics vs the VAE's (every step of every image; psnr capped at 60 dB):")
    print("| metric | comparison | decode | mean abs difference | Pearson r | rank r (Spearman) |")
    print("|---|---|---|---:|---:|---:|")
    for (metric, comparison), g in wide.groupby(["metric", "comparison"]):
        full = g["full"].clip(upper=60).to_numpy()
        for decode in ("tiny", "preview"):
            other = g[decode].clip(upper=60).to_numpy()
            r = np.corrcoef(full, other)[0, 1]
            rank = pd.Series(full).rank().corr(pd.Series(other).rank())
            print(f"| {metric} | {comparison} | {decode} | {np.abs(full - other).mean():.4f} | {r:.3f} | {rank:.3f} |")


if __name__ == "__main__":
    main()
