"""CUDA checks of the sampler core (run on a GPU machine): fp16 by default, device generators, NV = GPU seeds, speed.

Usage: python scripts/gpu_check.py [--out FILE]. Prints a markdown report.
"""

from __future__ import annotations

import argparse
import time

import torch

import sdlab
from sdlab.generation import load
from sdlab.samplers.catalogue import A1111_SAMPLERS

PROMPT = "a red circle above a blue square, sunset sky"


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    lines = [f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}"]
    fp16 = load(None, device="cuda")
    fp32 = load(None, device="cuda", dtype=torch.float32)
    lines.append(f"default dtype on CUDA: {fp16.dtype}")
    lines += ["", "| sampler | finite (fp16) | s per batch of 4, 20 steps | NFE |", "|---|---|---|---|"]
    for name in A1111_SAMPLERS:

        def gen(name=name):
            return sdlab.generate(PROMPT, sampler=name, steps=20, cfg=5, seeds=[0, 1, 2, 3], model=fp16)

        gen()
        r, s = timed(gen)
        lines.append(f"| {name} | {bool(torch.isfinite(r.images).all())} | {s:.3f} | {r.nfe} |")
    a = sdlab.generate(PROMPT, sampler="DPM++ 2M Karras", steps=20, cfg=5, seeds=[0, 1], model=fp16).images
    b = sdlab.generate(PROMPT, sampler="DPM++ 2M Karras", steps=20, cfg=5, seeds=[0, 1], model=fp32).images
    lines.append(f"\nfp16 vs fp32 (DPM++ 2M Karras): max |diff| {float((a - b).abs().max()):.4f}, "
                 f"mean {float((a - b).abs().mean()):.5f} (images in [0,1])")  # fmt: skip
    for sampler in ("Euler a", "DPM++ 2M"):
        gpu = sdlab.generate(PROMPT, sampler=sampler, steps=20, cfg=5, seeds=[5, 6], rng="GPU", model=fp32)
        nv = sdlab.generate(PROMPT, sampler=sampler, steps=20, cfg=5, seeds=[5, 6], rng="NV", model=fp32)
        cpu = sdlab.generate(PROMPT, sampler=sampler, steps=20, cfg=5, seeds=[5, 6], rng="CPU", model=fp32)
        lines.append(f"{sampler}: GPU vs NV max |diff| {float((gpu.images - nv.images).abs().max()):.2e}; "
                     f"GPU vs CPU {float((gpu.images - cpu.images).abs().max()):.3f}")  # fmt: skip
    rerun = [sdlab.generate(PROMPT, sampler="Euler a", steps=20, cfg=5, seeds=[1, 2], model=fp16).images
             for _ in range(2)]  # fmt: skip
    lines.append(f"Euler a rerun on CUDA fp16 bit-identical: {torch.equal(*rerun)}")
    one = sdlab.generate(PROMPT, sampler="DPM++ SDE", steps=20, cfg=5, seeds=[7], model=fp32).images
    many = sdlab.generate(PROMPT, sampler="DPM++ SDE", steps=20, cfg=5, seeds=[3, 7, 9], model=fp32).images
    lines.append(f"DPM++ SDE batch 3 vs single (CUDA fp32): max |diff| {float((one[0] - many[1]).abs().max()):.2e}")
    lines += ["", "| dtype | batch 8, 20 steps, CFG 5 (s) | images/s |", "|---|---|---|"]
    for label, m in (("float16", fp16), ("float32", fp32)):

        def gen(m=m):
            return sdlab.generate(PROMPT, sampler="DPM++ 2M", steps=20, cfg=5, seeds=list(range(8)), model=m)

        gen()
        _, s = timed(gen)
        lines.append(f"| {label} | {s:.3f} | {8 / s:.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
