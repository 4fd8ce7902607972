"""Speed of sdlab.metrics (ms per image pair) and of sdlab.store (cells per second) on this machine's CPU.

    .venv/bin/python benchmarks/bench_metrics.py [--repeats 3] [--cells 100]

LPIPS uses the real AlexNet backbone when it is in the torch cache, else a random one (same cost, meaningless values);
nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

import sdlab.measure.metrics as M
from sdlab.sweeps.store import ResultsStore

ROWS_PER_CELL = 8


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_metrics(repeats: int) -> pd.DataFrame:
    pretrained = M.lpips_backbone_path("alex").exists()
    print(f"LPIPS backbone: {'ImageNet AlexNet (cached)' if pretrained else 'RANDOM AlexNet (weights not cached)'}")
    g = torch.Generator().manual_seed(0)
    rows = []
    for size, batch in ((64, 16), (512, 4)):
        a, b = torch.rand(batch, 3, size, size, generator=g), torch.rand(batch, 3, size, size, generator=g)
        la, lb = torch.randn(batch, 4, size // 8, size // 8, generator=g), torch.randn(batch, 4, size // 8, size // 8)
        cases = {
            "lpips (alex)": lambda a=a, b=b: M.lpips(a, b, pretrained_backbone=pretrained),
            "ssim": lambda a=a, b=b: M.ssim(a, b),
            "psnr": lambda a=a, b=b: M.psnr(a, b),
            "latent_rmse (latents /8)": lambda la=la, lb=lb: M.latent_rmse(la, lb),
        }
        for name, fn in cases.items():
            seconds = _best_of(fn, repeats)
            rows.append({"metric": name, "size": f"{size}x{size}", "batch": batch, "ms/pair": 1000 * seconds / batch})
    return pd.DataFrame(rows)


def _cell(i: int, with_images: bool) -> tuple[pd.DataFrame, dict[str, np.ndarray] | None]:
    rng = np.random.default_rng(i)
    rows = pd.DataFrame(
        {
            "sampler": "DPM++ 2M",
            "schedule": "Karras",
            "steps": 20,
            "seed": range(ROWS_PER_CELL),
            "lpips": rng.random(ROWS_PER_CELL),
            "ssim": rng.random(ROWS_PER_CELL),
        }
    )
    if not with_images:
        return rows, None
    rows["image"] = [f"seed{s}" for s in range(ROWS_PER_CELL)]
    return rows, {f"seed{s}": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for s in range(ROWS_PER_CELL)}


def bench_store(n_cells: int) -> pd.DataFrame:
    rows = []
    for with_images in (False, True):
        for fsync in (True, False):
            cells = [_cell(i, with_images) for i in range(n_cells)]
            with tempfile.TemporaryDirectory() as root:
                store = ResultsStore(root, fsync=fsync)
                start = time.perf_counter()
                for i, (cell_rows, images) in enumerate(cells):
                    store.put(f"cell{i:05d}", cell_rows, images)
                put_s = time.perf_counter() - start
                start = time.perf_counter()
                assert all(store.has(f"cell{i:05d}") for i in range(n_cells))
                has_s = time.perf_counter() - start
                start = time.perf_counter()
                assert len(store.table()) == n_cells * ROWS_PER_CELL
                table_s = time.perf_counter() - start
            rows.append(
                {
                    "images": "8 x 64x64 PNG" if with_images else "none",
                    "fsync": fsync,
                    "put cells/s": n_cells / put_s,
                    "has cells/s": n_cells / has_s,
                    "table cells/s": n_cells / table_s,
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per metric (best is reported)")
    parser.add_argument("--cells", type=int, default=100, help="cells written per store configuration")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, load average {load}")
    print(bench_metrics(args.repeats).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nstore, {ROWS_PER_CELL} rows per cell, {args.cells} cells")
    print(bench_store(args.cells).to_string(index=False, float_format=lambda v: f"{v:.0f}"))


if __name__ == "__main__":
    main()
