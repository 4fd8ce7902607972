"""The smoke sweep through a local 2-worker Ray cluster vs local execution on the same CPU cores.

    .venv/bin/python benchmarks/bench_ray.py [--config data/sweeps/smoke.toml] [--repeats 3] [--cpus 2]

Each run is a fresh interpreter (imports, model loading and Ray's start-up all paid as a user pays them) timing one
``run_sweep`` call into an empty folder: "local" in one process with ``--cpus`` torch threads, "ray" on a local
Ray instance the sweep starts itself (one 1-CPU worker per core: run it where ``--cpus`` is the core count).
The sweep reports Ray's start-up and shut-down (importing Ray, ``ray.init``, starting and stopping the actors);
the column "excl. start-up" subtracts them. Target: Ray's overhead excluding start-up <= 15 %. Prints markdown
(medians of ``--repeats`` runs).

``--gpu``: on a CUDA machine, images per second of the sweep (generation only) through one Ray GPU actor vs a bare
``sdlab.generate`` loop over the same specs (target >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}  # loopback only

CHILD = r"""
import json, sys, time
import torch
mode, config, out, cpus = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from sdlab.sweeps import expand, load_config, run_sweep
if mode.startswith("gpu"):  # generation only: no trajectories, no reference runs, no metrics
    config = {**load_config(config).to_dict(), "trajectory": False, "reference": "none", "device": "cuda"}
table = None
if mode in ("ray", "gpu-ray"):
    start = time.perf_counter()  # run_sweep starts a local Ray instance (all cores and GPUs) and stops it
    table = run_sweep(config, out, executor="ray", progress=False)
    wall = time.perf_counter() - start
elif mode == "gpu-bare":
    from sdlab.generation import generate, load
    cells = expand(config)
    load(None, device="cuda")  # the actor's model loading is excluded too (its start-up)
    start = time.perf_counter()
    for cell in cells:
        r = cell.run
        generate(r.prompt, negative_prompt=r.negative_prompt, sampler=r.sampler, schedule=r.schedule, steps=r.steps,
                 cfg=r.cfg, seeds=list(r.seeds), size=r.size, rng=r.rng, device="cuda", **dict(r.sampler_options))
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    images = sum(len(c.run.seeds) for c in cells)
else:
    torch.set_num_threads(cpus)
    start = time.perf_counter()
    table = run_sweep(config, out, progress=False)
    wall = time.perf_counter() - start
workers = None if table is None else table.attrs["workers"]
startup = 0.0 if table is None else table.attrs["startup_seconds"]
load = 0.0 if table is None else max(w["load_s"] for w in workers)
images = images if table is None else sum(w["images"] for w in workers)
print(json.dumps({"wall": wall, "startup": startup, "load": load, "images": images, "workers": workers}))
"""


def run(mode: str, config: str, cpus: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, mode, config, str(Path(tmp) / "out"), str(cpus)],
            env={**os.environ, **RAY_ENV}, capture_output=True, text=True, check=False,
        )  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "data" / "sweeps" / "smoke.toml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="cores for both: torch threads locally, Ray CPUs")
    parser.add_argument("--gpu", action="store_true", help="the GPU comparison (needs CUDA)")
    args = parser.parse_args()
    if args.gpu:
        gpu(args)
        return
    local = [run("local", args.config, args.cpus) for _ in range(args.repeats)]
    ray = [run("ray", args.config, args.cpus) for _ in range(args.repeats)]
    lw = statistics.median(r["wall"] for r in local)
    rw = statistics.median(r["wall"] for r in ray)
    rs = statistics.median(r["startup"] for r in ray)
    rx = statistics.median(r["wall"] - r["startup"] for r in ray)
    print(f"smoke sweep ({local[0]['images']} images, {args.config}), {args.cpus} CPUs, median of {args.repeats}\n")
    print("| executor | wall (s) | Ray start-up (s) | excl. start-up (s) | vs local, incl. | vs local, excl. |")
    print("|---|---|---|---|---|---|")
    print(f"| local ({args.cpus} torch threads) | {lw:.2f} | - | {lw:.2f} | 1.00 | 1.00 |")
    print(f"| Ray ({args.cpus} workers x 1 CPU) | {rw:.2f} | {rs:.2f} | {rx:.2f} | {rw / lw:.2f} | {rx / lw:.2f} |")
    print(f"\nRay overhead excluding start-up: {100 * (rx / lw - 1):+.1f} % (target <= +15 %)")
    print("runs (wall s): local", [round(r["wall"], 2) for r in local], "ray", [round(r["wall"], 2) for r in ray])
    print("\nper worker (last Ray run):")
    for w in ray[-1]["workers"]:
        print(f"  {w['worker']}: {w['cells']} cells, {w['images']} images, {w['images_per_s']:.2f} images/s, "
              f"model loading {w['load_s']:.2f} s")  # fmt: skip


def gpu(args: argparse.Namespace) -> None:
    import torch

    if not torch.cuda.is_available():
        sys.exit("--gpu needs CUDA")
    bare = [run("gpu-bare", args.config, 1) for _ in range(args.repeats)]
    ray = [run("gpu-ray", args.config, 1) for _ in range(args.repeats)]
    images = ray[0]["images"]
    bw = statistics.median(r["wall"] for r in bare)
    rx = statistics.median(r["wall"] - r["startup"] - r["load"] for r in ray)  # the bare loop's model is loaded
    print("| path | images/s | ratio |\n|---|---|---|")
    print(f"| bare sdlab.generate loop | {images / bw:.2f} | 1.00 |")
    print(f"| one Ray GPU actor (excl. start-up and model loading) | {images / rx:.2f} | {bw / rx:.2f} |")


if __name__ == "__main__":
    main()
