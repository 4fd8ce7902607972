"""First run vs cached re-run of the smoke sweep (target: cached <= 2 % of the first run).

    .venv/bin/python benchmarks/bench_sweep_cache.py [--config data/sweeps/smoke.toml] [--threads 1]

In this process: the first run (model load included, as in a fresh notebook), then a re-run into the same folder
(every cell found in the store: nothing is generated; the store is read and results.parquet rebuilt). Then the
same re-run as ``sdlab sweep`` in a fresh interpreter (Python and torch start-up included). Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sdlab.sweeps import expand, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "data" / "sweeps" / "smoke.toml"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = steadiest on a shared box)")
    parser.add_argument("--repeats", type=int, default=3, help="cached re-runs in this process (best is shown)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cells = expand(args.config)
    images = sum(len(c.run.seeds) for c in cells)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep"
        start = time.perf_counter()
        table = run_sweep(args.config, out, progress=False)
        first = time.perf_counter() - start
        cached = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            again = run_sweep(args.config, out, progress=False)
            cached.append(time.perf_counter() - start)
        assert len(again) == len(table)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "sdlab", "sweep", args.config, "--out", str(out), "--quiet"]
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        fresh = time.perf_counter() - start
    best = min(cached)
    print(
        f"\n{Path(args.config).name}: {len(cells)} cells, {images} images, {len(table)} rows; "
        f"{torch.get_num_threads()} thread(s)\n"
    )
    print("| run | wall time (s) | % of first run | target |")
    print("|---|---:|---:|:---:|")
    print(f"| first run, this process (model load included) | {first:.2f} | 100 % | |")
    print(
        f"| cached re-run, same process (best of {args.repeats}) | {best:.3f} | {100 * best / first:.2f} % | "
        f"{'<= 2 %: yes' if best <= 0.02 * first else '<= 2 %: no'} |"
    )
    print(f"| cached re-run, fresh `sdlab sweep` process (interpreter + torch start-up) | {fresh:.2f} | "
          f"{100 * fresh / first:.1f} % | |")  # fmt: skip


if __name__ == "__main__":
    main()
