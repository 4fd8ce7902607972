"""The flagship sampler report (``make demo``): every A1111 sampler on the embedded model, measured.

Runs the 20 A1111 samplers at several step counts and seeds, measures convergence (latent RMSE and SSIM to a
high-step reference, fitted power law, steps to converge, how much each step still changes the result), cost
(NFE), ancestral divergence and stability, checks each sampler's true order on an exact denoiser against its
theory, and writes ``report.html`` (small multiples per sampler family, a colour per sampler in every chart,
hover images, the images at 192 px; readable offline once ``plotly.min.js`` sits beside it) with PNG figures
and the tidy tables beside it. torch's thread count is pinned (:func:`sdlab.lab.manifest.pin_threads`), so a
rebuild on the recorded versions writes byte-identical tables; the committed files are recorded in
``MANIFEST.json`` (:func:`sdlab.lab.manifest.stale_figures` says which are stale).

>>> from sdlab.lab.report import build_report
>>> build_report("figures", smoke=True)          # ~1 minute on 2 CPU cores; smoke=False: the full report
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sdlab.experiments as ex
from sdlab import groundtruth as gt
from sdlab.lab.manifest import FIGURE_THREADS, pin_threads, record_figures
from sdlab.samplers.catalogue import A1111_SAMPLERS
from sdlab.spec import versions
from sdlab.viz.charts import (
    HOVER_IMAGE_JS,
    THUMB_SIZE,
    convergence_chart,
    cost_quality_chart,
    delta_chart,
    divergence_chart,
    order_chart,
    save_figure,
    stability_chart,
    write_plotlyjs,
)
from sdlab.viz.display import image_grid
from sdlab.viz.images import thumbnail_url
from sdlab.viz.palette import FAMILIES, sampler_color, sampler_family

__all__ = ["build_report", "ReportConfig", "report_spec", "write_table", "PRODUCER", "TIMING_COLUMNS"]

PROMPT = "two small red circles and a large blue square, sunset sky"
PRODUCER = "sdlab demo"  # the producer of the report's figures in MANIFEST.json
TIMING_COLUMNS = ("seconds", "elapsed")  # wall-clock columns: written to timings.csv, not to the result tables
IMAGE_PX = 192  # on-screen size of a 64 px image: 3x, nearest-neighbour
_SIMPLE_METRICS = ("latent_rmse", "ssim", "psnr")  # any other metric in the table is perceptual: it gets a chart


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
    step_metrics: tuple[str, ...] = ("ssim",)  # per-step image metrics, on the tiny decoder's images
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def preset(cls, smoke: bool) -> ReportConfig:
        if smoke:
            return cls(("Euler", "Euler a", "Heun", "DPM++ 2M"), (4, 8), (0,), (4, 8), (0.0, 1.0),
                       ("Euler", "Heun"), (8, 16, 32), pairs=(("Euler a", "Euler"),), reference_steps=30)  # fmt: skip
        gt = ("Euler", "Heun", "DPM2", "LMS", "DPM++ 2M", "DDIM", "PLMS", "UniPC")
        # `make demo`'s 10-minute budget on 2 CPU cores: this preset (divergence to 40 steps, eta 0/0.5/1, 100-step
        # reference, per-step SSIM on the tiny decoder, 1 torch thread) used 5 min 0 s of CPU (user time; 20 min of
        # wall time on a machine shared at load average 10)
        return cls(tuple(A1111_SAMPLERS), (4, 8, 16, 32), (0, 1), (10, 20, 40), (0.0, 0.5, 1.0), gt,
                   (16, 24, 32, 48, 64), reference_steps=100)  # fmt: skip


def report_spec(smoke: bool = False) -> dict[str, Any]:
    """The settings the report's figures are made from (their spec hash in MANIFEST.json)."""
    return {"smoke": smoke, **_jsonable(ReportConfig.preset(smoke))}


def _jsonable(cfg: ReportConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


class _Images:
    """Each image of the page once: an ``<img id=...>`` where it is shown (or in a hidden store at the end);
    charts carry the id in their customdata and the hover script finds the image by it."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}  # data URL -> element id
        self.shown: set[str] = set()

    def key(self, url: str) -> str:
        return self.ids.setdefault(url, f"sdlab-img-{len(self.ids)}")

    def tag(self, image: Any, alt: str, *, px: int = IMAGE_PX) -> str:
        url = thumbnail_url(image, max_size=THUMB_SIZE)  # as the charts' thumbnails: one copy of each image
        key = self.key(url)
        self.shown.add(key)
        return f'<img id="{key}" src="{url}" width="{px}" height="{px}" alt="{html.escape(alt)}">'

    def keyed(self, fig: Any) -> Any:
        """A copy of ``fig`` whose thumbnails (customdata data URLs) are image ids."""
        fig = type(fig)(fig)
        for trace in fig.data:
            custom = getattr(trace, "customdata", None)
            if custom is not None and len(custom) and isinstance(custom[0], (list, tuple)):
                trace.customdata = [[self._id(c[0]), *c[1:]] if len(c) else c for c in custom]
        return fig

    @staticmethod
    def used(fig: Any) -> bool:
        """Whether a keyed figure's points carry images."""
        for trace in fig.data:
            custom = getattr(trace, "customdata", None)
            if custom is not None and any(len(c) and str(c[0]).startswith("sdlab-img-") for c in custom):
                return True
        return False

    def _id(self, value: Any) -> Any:
        return self.key(value) if isinstance(value, str) and value.startswith("data:image") else value

    def store(self) -> str:
        """The images no section showed, hidden, for the charts' hover panels."""
        rest = [f'<img id="{key}" src="{url}" alt="">' for url, key in self.ids.items() if key not in self.shown]
        return f'<div hidden class="store">{"".join(rest)}</div>' if rest else ""


class _Sections:
    """Collects the report's sections; each chart is saved as PNG (+ HTML) and embedded with its hover images."""

    def __init__(self, out: Path) -> None:
        self.out, self.parts, self.images = out, [], _Images()
        self.committed: list[Path] = []  # the files a write-up uses (recorded in MANIFEST.json)

    def title(self, title: str, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(title)}</h2><p>{text}</p>")

    def chart(self, fig: Any, name: str, caption: str = "") -> None:
        """``fig`` saved as ``name``.png (committed) and ``name``.html (a build product), and embedded."""
        written = save_figure(fig, self.out / name, plotlyjs="directory")
        self.committed += [p for p in written if p.suffix == ".png"]
        fluid = self.images.keyed(fig).update_layout(width=None, autosize=True)
        hover = HOVER_IMAGE_JS if self.images.used(fluid) else None
        div = fluid.to_html(include_plotlyjs=False, full_html=False, default_width="100%", post_script=hover,
                            div_id=f"chart-{name}",  # not a random id: a rebuild writes the same page
                            config={"responsive": True, "displaylogo": False})  # fmt: skip
        cap = f'<p class="caption">{caption}</p>' if caption else ""
        self.parts.append(f'<div class="chart">{div}</div>{cap}')

    def table(self, df: Any, name: str = "", *, shown: Any = None, max_rows: int = 60) -> None:
        """``shown`` (default ``df``) as an HTML table; with ``name``, ``df`` written as ``name``.csv."""
        if name:
            self.committed.append(write_table(df, self.out / f"{name}.csv"))
        shown = df if shown is None else shown
        if shown is not None and len(shown):
            fmt = lambda v: f"{v:.4g}"  # noqa: E731
            self.parts.append(shown.head(max_rows).to_html(index=False, float_format=fmt, border=0, na_rep=""))

    def html(self, text: str) -> None:
        self.parts.append(text)


def write_table(df: Any, path: Path) -> Path:
    """``df`` as CSV without its wall-clock columns (:data:`TIMING_COLUMNS`), so that a rebuild on the same
    versions and thread count writes the same bytes; the timings go to ``timings.csv`` beside it."""
    timing = [c for c in TIMING_COLUMNS if c in df.columns]
    if timing:
        keys = [c for c in ("experiment", "comparison", "sampler", "steps", "seed", "step", "metric") if c in df]
        _append_timings(path.with_name("timings.csv"), df[keys + timing].assign(table=path.stem))
    df.drop(columns=timing).to_csv(path, index=False)
    return path


def _append_timings(path: Path, df: Any) -> None:
    import pandas as pd

    if path.is_file():
        old = pd.read_csv(path)
        df = pd.concat([old[old["table"] != df["table"].iloc[0]], df], ignore_index=True)
    df.to_csv(path, index=False)


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
                 progress: bool = True, threads: int = FIGURE_THREADS) -> Path:  # fmt: skip
    """Measure the samplers and write ``out_dir/report.html`` plus PNG/HTML figures, CSV tables and
    ``MANIFEST.json``, with torch pinned to ``threads`` threads (restored after)."""
    cfg = ReportConfig.preset(smoke)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timings.csv").unlink(missing_ok=True)
    t_start = time.perf_counter()
    sec = _Sections(out)
    common = {"prompt": cfg.prompt, "seeds": cfg.seeds, "cfg": cfg.cfg, "model": model}
    with pin_threads(threads):
        notes = [
            *_convergence(sec, cfg, common, progress),
            *_divergence(sec, cfg, common, progress),
            *_stability(sec, cfg, model, smoke, progress),
        ]
        _ground_truth(sec, cfg, progress)
    elapsed = time.perf_counter() - t_start
    write_plotlyjs(out)
    _write_html(out / "report.html", sec, sorted(set(notes)), cfg, smoke, threads)
    (out / "report.json").write_text(
        json.dumps(
            {"seconds": round(elapsed, 1), "smoke": smoke, "threads": threads, "config": _jsonable(cfg)}, indent=2
        )  # fmt: skip
    )
    producer = PRODUCER + (" --smoke" if smoke else "")
    record_figures(out, [out / "report.html", *sec.committed], producer=producer, spec=report_spec(smoke),
                   threads=threads)  # fmt: skip
    if progress:
        print(f"[report] wrote {out / 'report.html'} in {elapsed:.0f} s")
    return out / "report.html"


# ---------------------------------------------------------------------------------------------------------------
# sections


def _convergence(sec: _Sections, cfg: ReportConfig, common: dict[str, Any], progress: bool) -> list[str]:
    """Convergence to the reference (latent RMSE, SSIM, any perceptual metric), the per-step changes, the images
    and cost against quality; the notes."""
    label = f"convergence: {len(cfg.samplers)} samplers x steps {cfg.steps} x seeds {cfg.seeds}"
    reference = ex.Reference(steps=cfg.reference_steps)
    conv = _timed(label, progress, lambda: ex.convergence(
        cfg.samplers, cfg.steps, reference=reference, step_image_metrics=cfg.step_metrics, step_decode="tiny",
        progress=progress, **common))  # fmt: skip
    table = conv.table
    final = table[table["comparison"] == "reference"]
    first_seed = cfg.seeds[0]
    steps_text = ", ".join(map(str, cfg.steps))
    sec.title(
        "Convergence: distance to a high-step reference",
        f"Each sampler on its A1111 default schedule (Automatic) at {steps_text} steps, CFG {cfg.cfg:g}, against "
        f"{html.escape(reference.label)} on the same seed. One panel per sampler family, the other samplers in "
        "grey behind it; a sampler has the same colour in every chart. Deterministic samplers approach the "
        "reference as steps grow; ancestral and SDE samplers keep their own path. Hover a point to see its image "
        f"(seed {first_seed}).",
    )
    sec.chart(convergence_chart(final, images=conv.images, panels="family"), "convergence",
              "Latent RMSE to the reference (log-log): line the median over seeds, band min to max.")  # fmt: skip
    for metric in ("ssim", *_perceptual(final)):
        what = "SSIM (1 = the reference's image)" if metric == "ssim" else f"{html.escape(metric)} (perceptual)"
        sec.chart(convergence_chart(final, metric=metric, images=conv.images, panels="family"),
                  f"convergence_{metric}", f"{what} against steps, on the decoded images.")  # fmt: skip
    sec.table(table[table["comparison"] == "reference"], "convergence", shown=_fits(conv.summary))
    write_table(table[table["comparison"] != "reference"], sec.out / "convergence_steps.csv")  # bulky: not committed
    _step_changes(sec, table, cfg)
    ref = conv.images.get(f"reference/seed={first_seed}")
    _image_grid(sec, conv.images, cfg, ref)
    sec.title(
        "Cost vs quality",
        "Model evaluations (NFE) per image against the latent distance to the reference: second-order samplers "
        "(Heun, DPM2, DPM++ SDE, DPM++ 2S a, Restart) spend two evaluations per step. Wall-clock seconds per run "
        "are in timings.csv (they change from machine to machine and run to run, so the page does not show them).",
    )
    sec.chart(cost_quality_chart(final, images=conv.images, panels="family"), "cost_quality")
    sec.table(final.groupby("sampler", sort=False)[["nfe"]].mean().reset_index())
    return list(conv.notes)


def _perceptual(final: Any) -> list[str]:
    """The perceptual metrics in the table (LPIPS, or an offline one where sdlab.measure has it), if any."""
    return [m for m in dict.fromkeys(final["metric"]) if m not in _SIMPLE_METRICS]


def _fits(summary: Any) -> Any:
    """The fitted exponents of the latent distance (image metrics are not fitted) and steps to converge."""
    if "metric" not in summary.columns:
        return summary
    fits = summary[summary["metric"] == "latent_rmse"]
    keep = ["sampler", "schedule_resolved", "b", "b_low", "b_high", "r2", "threshold", "steps_to_converge"]
    return fits[[c for c in keep if c in fits.columns]].rename(columns={"b": "exponent b"})


def _step_changes(sec: _Sections, table: Any, cfg: ReportConfig) -> None:
    """How much each step still changes the result, at the most steps, for the first seed."""
    n, seed = max(cfg.steps), cfg.seeds[0]
    rows = table[(table["comparison"] == "next") & (table["steps"] == n) & (table["seed"] == seed)]
    sec.title(
        "Per-step deltas: how much each step still changes the result",
        f"Within one run ({n} steps, seed {seed}): the denoised prediction at step i against the one at step i+1. "
        "A sampler that has converged changes little late in the run; ancestral and SDE samplers keep "
        "changing because they add fresh noise at every step. SSIM is on the tiny decoder's images.",
    )
    for metric in ("latent_rmse", *[m for m in cfg.step_metrics if m in set(rows["metric"])]):
        name = "step_deltas" if metric == "latent_rmse" else f"step_deltas_{metric}"
        title = f"Step i vs step i+1 ({metric}), {n} steps"
        sec.chart(delta_chart(rows, metric=metric, comparisons=("next",), panels="family", title=title), name)


def _image_grid(sec: _Sections, images: Mapping[str, Any], cfg: ReportConfig, ref: Any) -> None:
    """The first seed's images, sampler x steps, a table per family at 192 px; the same grid as a PNG."""
    seed = cfg.seeds[0]
    grid: dict[str, dict[str, Any]] = {s: {} for s in cfg.samplers}
    for name, img in images.items():
        parts = name.split("/")
        if parts[0] in grid and name.endswith(f"seed={seed}"):
            grid[parts[0]][parts[2].removeprefix("steps=")] = img
    image_grid(grid, scale=2, title=f"seed {seed}: sampler x steps").save(sec.out / "convergence_images.png")
    sec.committed.append(sec.out / "convergence_images.png")
    sec.title("Images: sampler x steps", f"Seed {seed}, each image 64 px shown at {IMAGE_PX} px.")
    if ref is not None:
        sec.html(f'<figure class="ref">{sec.images.tag(ref, "reference")}<figcaption>the reference '
                 f"({cfg.reference_steps} steps)</figcaption></figure>")  # fmt: skip
    families = {f: [s for s in cfg.samplers if sampler_family(s) == f] for f in [*FAMILIES, "other"]}
    tables = []
    for family, samplers in families.items():
        if not samplers:
            continue
        head = "".join(f"<th>{n} steps</th>" for n in cfg.steps)
        body = []
        for s in samplers:
            label = f'<th class="sampler"><span style="background:{sampler_color(s)}"></span>{html.escape(s)}</th>'
            cells = [grid[s].get(str(n)) for n in cfg.steps]
            tds = "".join(f"<td>{sec.images.tag(c, f'{s}, {n} steps')}</td>" if c is not None else "<td></td>"
                          for c, n in zip(cells, cfg.steps, strict=True))  # fmt: skip
            body.append(f"<tr>{label}{tds}</tr>")
        tables.append(f'<table class="grid"><caption>{html.escape(family)}</caption><tr><th></th>{head}</tr>'
                      f"{''.join(body)}</table>")  # fmt: skip
    sec.html(f'<div class="grids">{"".join(tables)}</div>')


def _divergence(sec: _Sections, cfg: ReportConfig, common: dict[str, Any], progress: bool) -> list[str]:
    """Ancestral samplers against their deterministic twins: one section; the notes."""
    pairs = {"pairs": cfg.pairs} if cfg.pairs else {}
    div = _timed("ancestral divergence", progress, lambda: ex.ancestral_divergence(
        steps=cfg.divergence_steps, eta=cfg.eta, progress=progress, **pairs, **common))  # fmt: skip
    sec.title(
        "Ancestral divergence",
        "Each ancestral or SDE sampler against its deterministic twin on the same seed, as steps grow and as "
        "eta goes from 0 (the deterministic sampler exactly) to 1 (A1111's default).",
    )
    return _chart_section(sec, "divergence", divergence_chart(div.table), div)


def _stability(sec: _Sections, cfg: ReportConfig, model: Any, smoke: bool, progress: bool) -> list[str]:
    """Same seed, same image? One section; the notes."""
    stab = _timed("stability", progress, lambda: ex.stability(
        cfg.prompt, sampler="DPM++ 2M", steps=10 if smoke else 20, cfg=cfg.cfg, seed=cfg.seeds[0], model=model,
        reruns=2 if smoke else 3, batch_sizes=(1, 2) if smoke else (1, 4), rng_sources=("GPU", "CPU", "NV"),
        dtypes=("float32", "bfloat16"), progress=progress,
    ))  # fmt: skip
    sec.title(
        "Stability: same seed, same image?",
        "Reruns, batch size and position, RNG source (A1111's GPU / CPU / NV), weights dtype and a 1e-3 "
        "perturbation of the initial noise, each against the plain run.",
    )
    return _chart_section(sec, "stability", stability_chart(stab.table), stab)


def _chart_section(sec: _Sections, name: str, chart: Any, result: Any) -> list[str]:
    """A result's chart, its summary shown and its table written as ``name``.csv; its notes."""
    sec.chart(chart, name)
    sec.table(result.table, name, shown=result.summary)
    return list(result.notes)


def _ground_truth(sec: _Sections, cfg: ReportConfig, progress: bool) -> None:
    """Each sampler's true order on an exact denoiser, against its theory: a chart and a table."""
    errors, fits = _timed("ground truth: true orders on an exact denoiser", progress, lambda: _orders(cfg))
    sec.title(
        "Ground truth: each sampler's true order",
        "On a 2-D Gaussian mixture the denoiser is exact and the probability-flow ODE has a true solution "
        "(DOP853, float64): the slope of the true error against steps (Karras, stopping at sigma_min) is the "
        "sampler's real order of accuracy, free of network error. Dashed: the slope its stated order predicts.",
    )
    sec.chart(order_chart(errors, fits=fits), "ground_truth_orders")
    keep = [c for c in ("sampler", "schedule", "x", "order", "ci_low", "ci_high", "r2", "n_points") if c in fits]
    sec.table(fits[keep] if keep else fits, "ground_truth_orders")


def _orders(cfg: ReportConfig) -> tuple[Any, Any]:
    """The ground-truth samplers' errors against steps, and their fitted orders."""
    df = gt.error_vs_steps(list(cfg.gt_samplers), steps=cfg.gt_steps, dist=gt.toy_mixture(), n=64)
    fits = gt.fit_order(df, metric="median_error", steps_range=(min(cfg.gt_steps), max(cfg.gt_steps)))
    return df, fits


# ---------------------------------------------------------------------------------------------------------------
# the page


CSS = f"""
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1500px; padding: 0 1em; color: #222; }}
h2 {{ border-top: 1px solid #ccc; padding-top: 0.8em; }}
.chart {{ margin: 0.5em 0; }}
.caption, .notes {{ color: #555; font-size: 0.9em; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0 1.5em; }}
td, th {{ padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; }}
img {{ image-rendering: pixelated; }}
.grids {{ display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }}
table.grid {{ margin: 0; font-size: 0.95em; }}
table.grid td {{ padding: 2px; border: 0; }}
table.grid img {{ width: {IMAGE_PX}px; height: {IMAGE_PX}px; display: block; }}
table.grid caption {{ font-weight: 600; text-align: left; padding: 4px 0; }}
table.grid th {{ border: 0; font-weight: normal; text-align: center; }}
table.grid th.sampler {{ text-align: right; white-space: nowrap; }}
table.grid th.sampler span {{ display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; }}
figure.ref {{ display: inline-block; margin: 0 0 1em; }}
figure.ref figcaption {{ text-align: center; color: #555; }}
"""


def _write_html(path: Path, sec: _Sections, notes: list[str], cfg: ReportConfig, smoke: bool, threads: int) -> None:
    head = (
        f"<h1>sdlab sampler report{' (smoke mode)' if smoke else ''}</h1>"
        f"<p>Embedded miniature Stable Diffusion, prompt <em>{html.escape(cfg.prompt)}</em>, CFG {cfg.cfg:g}, "
        f"seeds {list(cfg.seeds)}, {len(cfg.samplers)} samplers. Built with {threads} torch "
        f"thread{'s' if threads != 1 else ''} (build times in timings.csv, so a rebuild writes the same page). "
        f"Versions: {html.escape(json.dumps(versions()))}. Tables: "
        "convergence.csv (final images against the reference), convergence_steps.csv (per step), divergence.csv, "
        "stability.csv, ground_truth_orders.csv; MANIFEST.json records them.</p>"
    )
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    doc = (
        "<!doctype html><html><head><meta charset='utf-8'><title>sdlab sampler report</title>"
        f"<script src='plotly.min.js'></script><style>{CSS}</style></head><body>{head}"
        + "\n".join(sec.parts)
        + f"<h2>Notes</h2><ul class='notes'>{note_html}</ul>{sec.images.store()}</body></html>"
    )
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
