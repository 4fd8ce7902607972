"""The flagship sampler report (``make demo``): every A1111 sampler on the embedded model, measured.

Runs the 20 A1111 samplers at several step counts and seeds, measures convergence (distance to a high-step
reference, fitted power law, steps to converge), cost (NFE, time), ancestral divergence and stability, checks
each sampler's true order on an exact denoiser, and writes ``report.html`` (interactive charts beside image grids,
readable offline) with PNG figures and the tidy tables beside it.

>>> from sdlab.lab.report import build_report
>>> build_report("figures", smoke=True)          # ~1 minute on 2 CPU cores; smoke=False: the full report
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sdlab.experiments as ex
from sdlab import groundtruth as gt
from sdlab.samplers.catalogue import A1111_SAMPLERS
from sdlab.spec import versions
from sdlab.viz.charts import convergence_chart, cost_quality_chart, divergence_chart, save_figure, stability_chart
from sdlab.viz.display import image_grid
from sdlab.viz.images import png_bytes, png_data_url

__all__ = ["build_report", "ReportConfig"]

PROMPT = "two small red circles and a large blue square, sunset sky"


@dataclass(frozen=True)
class ReportConfig:
    """What the report measures. ``smoke`` shrinks everything for CI."""

    samplers: tuple[str, ...]
    steps: tuple[int, ...]
    seeds: tuple[int, ...]
    divergence_steps: tuple[int, ...]
    eta: tuple[float, ...]
    gt_samplers: tuple[str, ...]
    gt_steps: tuple[int, ...]
    pairs: tuple[tuple[str, str], ...] | None = None  # ancestral/deterministic twins (None: all)
    reference_steps: int = 100  # DPM++ 2M Karras at this many steps is the convergence reference
    prompt: str = PROMPT
    cfg: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def preset(cls, smoke: bool) -> ReportConfig:
        if smoke:
            return cls(("Euler", "Euler a", "Heun", "DPM++ 2M"), (4, 8), (0,), (4, 8), (0.0, 1.0),
                       ("Euler", "Heun"), (8, 16, 32), pairs=(("Euler a", "Euler"),), reference_steps=30)  # fmt: skip
        gt = ("Euler", "Heun", "DPM2", "LMS", "DPM++ 2M", "DDIM", "PLMS", "UniPC")
        # `make demo`'s 10-minute budget on 2 CPU cores: 2 min 51 s measured with divergence at (10, 20), eta (0, 1)
        # and a 60-step reference; this preset (divergence to 40 steps, eta 0/0.5/1, 100-step reference): 4 min 6 s
        return cls(tuple(A1111_SAMPLERS), (4, 8, 16, 32), (0, 1), (10, 20, 40), (0.0, 0.5, 1.0), gt,
                   (16, 24, 32, 48, 64), reference_steps=100)  # fmt: skip


def _data_url(image: Any) -> str:
    return png_data_url(png_bytes(image))


def _table_html(df: Any, *, floatfmt: str = "{:.4g}", max_rows: int = 60) -> str:
    return df.head(max_rows).to_html(index=False, float_format=lambda v: floatfmt.format(v), border=0, na_rep="")


class _Sections:
    """Collects report sections; each chart is saved as HTML + PNG and embedded beside its images."""

    def __init__(self, out: Path) -> None:
        self.out, self.parts, self.figures = out, [], []

    def add(self, title: str, text: str, *, chart: Any = None, name: str = "", image: Any = None,
            table: Any = None, csv: Any = None) -> None:  # fmt: skip
        """One section: ``chart`` saved as ``name``.html/.png, ``image`` as ``name``_images.png, ``table`` shown
        below them, ``csv`` (the full table) written as ``name``.csv."""
        if csv is not None:
            csv.to_csv(self.out / f"{name}.csv", index=False)
        single = chart is None or image is None
        body = [f"<h2>{html.escape(title)}</h2>", f"<p>{text}</p>", f'<div class="row{" single" if single else ""}">']
        if chart is not None:
            self.figures += save_figure(chart, self.out / name, plotlyjs="directory")
            fluid = type(chart)(chart).update_layout(width=None, autosize=True)  # fits its column, beside the images
            html_chart = fluid.to_html(
                include_plotlyjs=False, full_html=False, default_width="100%", config={"responsive": True}
            )
            body.append(f'<div class="chart">{html_chart}</div>')
        if image is not None:
            image.save(self.out / f"{name}_images.png")
            self.figures.append(self.out / f"{name}_images.png")
            body.append(f'<div class="images"><img src="{_data_url(image)}" alt="{name}"></div>')
        body.append("</div>")
        if table is not None and len(table):
            body.append(_table_html(table))
        self.parts.append("\n".join(body))


def _timed(label: str, progress: bool, run: Callable[[], Any]) -> Any:
    """``run()``, announced and timed on the console when ``progress``."""
    t0 = time.perf_counter()
    if progress:
        print(f"[report] {label} ...", flush=True)
    result = run()
    if progress:
        print(f"[report] {label}: {time.perf_counter() - t0:.1f} s", flush=True)
    return result


def build_report(out_dir: str | Path = "figures", *, smoke: bool = False, model: Any = None,
                 progress: bool = True) -> Path:  # fmt: skip
    """Measure the samplers and write ``out_dir/report.html`` plus PNG/HTML figures and CSV tables."""
    cfg = ReportConfig.preset(smoke)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    sec = _Sections(out)
    common = {"prompt": cfg.prompt, "seeds": cfg.seeds, "cfg": cfg.cfg, "model": model}
    notes = [
        *_convergence(sec, cfg, common, progress),
        *_divergence(sec, cfg, common, progress),
        *_stability(sec, cfg, model, smoke, progress),
    ]
    _ground_truth(sec, cfg, progress)
    elapsed = time.perf_counter() - t_start
    _write_html(out / "report.html", sec.parts, sorted(set(notes)), cfg, elapsed, smoke)
    (out / "report.json").write_text(
        json.dumps({"seconds": round(elapsed, 1), "smoke": smoke, "config": _jsonable(cfg)}, indent=2)
    )
    if progress:
        print(f"[report] wrote {out / 'report.html'} in {elapsed:.0f} s")
    return out / "report.html"


def _convergence(sec: _Sections, cfg: ReportConfig, common: dict[str, Any], progress: bool) -> list[str]:
    """Convergence to the reference and cost against quality: two sections (and the reference image); the notes."""
    label = f"convergence: {len(cfg.samplers)} samplers x steps {cfg.steps} x seeds {cfg.seeds}"
    reference = ex.Reference(steps=cfg.reference_steps)
    conv = _timed(label, progress, lambda: ex.convergence(
        cfg.samplers, cfg.steps, reference=reference, progress=progress, **common))  # fmt: skip
    final = conv.table[(conv.table["comparison"] == "reference")]
    first_seed = cfg.seeds[0]
    grid = {s: {} for s in cfg.samplers}
    for name, img in conv.images.items():
        parts = name.split("/")
        if parts[0] in grid and name.endswith(f"seed={first_seed}"):
            grid[parts[0]][parts[2].removeprefix("steps=")] = img
    ref_img = conv.images.get(f"reference/seed={first_seed}")
    grid_img = image_grid(grid, scale=2, title=f"seed {first_seed}: sampler x steps")
    fits = conv.summary
    if "metric" in fits.columns:  # the fitted exponents of the latent distance (image metrics are not fitted)
        fits = fits[fits["metric"] == "latent_rmse"]
        keep = ["sampler", "schedule_resolved", "b", "b_low", "b_high", "r2", "threshold", "steps_to_converge"]
        fits = fits[[c for c in keep if c in fits.columns]].rename(columns={"b": "exponent b"})
    sec.add(
        "Convergence: distance to a high-step reference",
        f"Each sampler on its A1111 default schedule (Automatic) at {', '.join(map(str, cfg.steps))} steps, "
        f"CFG {cfg.cfg:g}, compared with {html.escape(reference.label)} on the same seed (latent RMSE). "
        "Deterministic samplers approach the reference as steps grow; ancestral ones keep their own path. "
        "Hover a point to see its image. The table: the fitted exponent b of distance ~ steps^b with its 95 % "
        "interval, and the fewest steps from which the distance stays below the threshold (blank: never).",
        chart=convergence_chart(final, images=conv.images), name="convergence", image=grid_img,
        table=fits, csv=conv.table,
    )  # fmt: skip
    if ref_img is not None:
        sec.parts.append(f'<p>Reference image (seed {first_seed}): <img class="ref" '
                         f'src="{_data_url(image_grid([[ref_img]], scale=3))}"></p>')  # fmt: skip
    sec.add(
        "Cost vs quality",
        "Model evaluations (NFE) per image against the distance to the reference: second-order samplers "
        "(Heun, DPM2, DPM++ SDE, DPM++ 2S a, Restart) spend two evaluations per step.",
        chart=cost_quality_chart(final, images=conv.images), name="cost_quality",
        table=final.groupby("sampler", sort=False)[["nfe", "seconds"]].mean().reset_index(),
    )  # fmt: skip
    return list(conv.notes)


def _divergence(sec: _Sections, cfg: ReportConfig, common: dict[str, Any], progress: bool) -> list[str]:
    """Ancestral samplers against their deterministic twins: one section; the notes."""
    pairs = {"pairs": cfg.pairs} if cfg.pairs else {}
    div = _timed("ancestral divergence", progress, lambda: ex.ancestral_divergence(
        steps=cfg.divergence_steps, eta=cfg.eta, progress=progress, **pairs, **common))  # fmt: skip
    sec.add(
        "Ancestral divergence",
        "Each ancestral or SDE sampler against its deterministic twin on the same seed, as steps grow and as "
        "eta goes from 0 (the deterministic sampler exactly) to 1 (A1111's default).",
        chart=divergence_chart(div.table), name="divergence", table=div.summary, csv=div.table,
    )  # fmt: skip
    return list(div.notes)


def _stability(sec: _Sections, cfg: ReportConfig, model: Any, smoke: bool, progress: bool) -> list[str]:
    """Same seed, same image? One section; the notes."""
    stab = _timed("stability", progress, lambda: ex.stability(
        cfg.prompt, sampler="DPM++ 2M", steps=10 if smoke else 20, cfg=cfg.cfg, seed=cfg.seeds[0], model=model,
        reruns=2 if smoke else 3, batch_sizes=(1, 2) if smoke else (1, 4), rng_sources=("GPU", "CPU", "NV"),
        dtypes=("float32", "bfloat16"), progress=progress,
    ))  # fmt: skip
    sec.add(
        "Stability: same seed, same image?",
        "Reruns, batch size and position, RNG source (A1111's GPU / CPU / NV), weights dtype and a 1e-3 "
        "perturbation of the initial noise, each against the plain run.",
        chart=stability_chart(stab.table), name="stability", table=stab.summary, csv=stab.table,
    )  # fmt: skip
    return list(stab.notes)


def _ground_truth(sec: _Sections, cfg: ReportConfig, progress: bool) -> None:
    """Each sampler's true order on an exact denoiser: one section (a table)."""
    table = _timed("ground truth: true orders on an exact denoiser", progress, lambda: _orders(cfg))
    sec.add(
        "Ground truth: each sampler's true order",
        "On a 2-D Gaussian mixture the denoiser is exact and the probability-flow ODE has a true solution "
        "(DOP853, float64): the fitted slope of the true error vs steps (Karras, stopping at sigma_min) is "
        "the sampler's real order of accuracy, free of network error.",
        name="ground_truth_orders", table=table, csv=table,
    )  # fmt: skip


def _orders(cfg: ReportConfig) -> Any:
    """The fitted order of each ground-truth sampler (a table)."""
    df = gt.error_vs_steps(list(cfg.gt_samplers), steps=cfg.gt_steps, dist=gt.toy_mixture(), n=64)
    fits = gt.fit_order(df, metric="median_error", steps_range=(min(cfg.gt_steps), max(cfg.gt_steps)))
    keep = [c for c in ("sampler", "schedule", "x", "order", "ci_low", "ci_high", "r2", "n_points") if c in fits]
    return fits[keep] if keep else fits


def _jsonable(cfg: ReportConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
.row { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.5em; align-items: start; }
.row.single { grid-template-columns: minmax(0, 1fr); }
.images { max-height: 900px; overflow-y: auto; }
.images img { image-rendering: pixelated; width: 100%; height: auto; border: 1px solid #ddd; }
img.ref { image-rendering: pixelated; vertical-align: middle; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0 1.5em; }
td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; }
h2 { border-top: 1px solid #ccc; padding-top: 0.8em; }
.notes { color: #555; font-size: 0.9em; }
"""


def _write_html(path: Path, parts: list[str], notes: list[str], cfg: ReportConfig, elapsed: float,
                smoke: bool) -> None:  # fmt: skip
    head = (
        f"<h1>sdlab sampler report{' (smoke mode)' if smoke else ''}</h1>"
        f"<p>Embedded miniature Stable Diffusion, prompt <em>{html.escape(cfg.prompt)}</em>, CFG {cfg.cfg:g}, "
        f"seeds {list(cfg.seeds)}, {len(cfg.samplers)} samplers. Built in {elapsed:.0f} s. Versions: "
        f"{html.escape(json.dumps(versions()))}. Tables: convergence.csv, divergence.csv, stability.csv, "
        "ground_truth_orders.csv.</p>"
    )
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    doc = (
        "<!doctype html><html><head><meta charset='utf-8'><title>sdlab sampler report</title>"
        f"<script src='plotly.min.js'></script><style>{CSS}</style></head><body>{head}"
        + "\n".join(parts)
        + f"<h2>Notes</h2><ul class='notes'>{note_html}</ul></body></html>"
    )
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
