"""Charts that sit next to the images they summarise: hover a point and see its image.

>>> import sdlab.experiments as X, sdlab.charts as C
>>> res = X.convergence(["Euler", "DPM++ 2M"], steps=(5, 10, 20), seeds=[0, 1])
>>> fig = C.convergence_chart(res.table, images=res.images)   # a plotly Figure, thumbnails in its customdata
>>> C.show_chart(fig)                                         # Jupyter: FigureWidget + linked image panel
>>> C.save_figure(fig, "figures/convergence")                 # convergence.html (+ plotly.min.js) and .png

Every chart takes the experiments' long-format tables (one row per image x step x metric; columns ``sampler``,
``schedule``, ``steps``, ``seed``, ``step``, ``sigma``, ``metric``, ``value``, ``nfe``, ``comparison``,
``image`` ...; see :mod:`sdlab.experiments`) and, optionally, ``images``: ``{name: image}`` for the names in the
``image`` column (images in [0, 1], any form :mod:`sdlab.display` takes). Each point then carries a small PNG
thumbnail of its image (``customdata[0]``, a data URL) and shows it when hovered.

Backends: ``backend="plotly"`` (default) returns a ``plotly.graph_objects.Figure`` that also knows its matplotlib
twin; ``backend="matplotlib"`` returns that twin, a ``matplotlib.figure.Figure`` for print. :func:`show_chart`
displays a chart interactively where ipywidgets render (a ``FigureWidget`` with hover or slider handlers) and
always carries a static fallback (plotly HTML whose small script swaps the hovered image in, plus a PNG) for
viewers without widgets. :func:`save_figure` writes ``.html`` and ``.png``; the PNG comes from the matplotlib
twin, because plotly's own ``write_image`` needs kaleido and a Chrome browser.

plotly, ipywidgets and matplotlib are imported inside the functions (``pip install "sdlab[notebooks]"``).
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sdlab.errors import SdlabError, closest

__all__ = [
    "schedule_chart",
    "convergence_chart",
    "delta_chart",
    "stability_chart",
    "divergence_chart",
    "cost_quality_chart",
    "trajectory_table",
    "show_chart",
    "save_figure",
    "interactive",
    "set_chart_mode",
    "chart_mode",
    "CHART_MODES",
    "HOVER_IMAGE_JS",
]

BACKENDS = ("plotly", "matplotlib")
CHART_MODES = ("auto", "widget", "static", "none")
MODE_ENV = "SDLAB_CHARTS"  # "widget", "static" or "none" overrides the mode (the notebook runner sets "static")
PLOTLYJS_ENV = "SDLAB_PLOTLYJS"  # default ``plotlyjs`` of save_figure (the notebook runner: one shared copy)
SIMILARITIES = frozenset({"ssim", "psnr", "identical"})  # higher is closer: linear axes
THUMB_SIZE = 128  # largest side of a hover thumbnail, in pixels (64x64 images stay 64x64)
# tab10 then its light partners: 20 distinct colours, one per A1111 sampler
PALETTE = (
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"),
)
DASHES = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-."}

_CONFIG = {"mode": "auto"}

# Runs in the exported HTML after the plot is drawn: an image panel beside the plot shows the hovered point's
# thumbnail (the first customdata entry that is a PNG data URL).
HOVER_IMAGE_JS = """
(function () {
  var gd = document.getElementById('{plot_id}');
  if (!gd || !gd.on) { return; }
  var wrap = gd.parentNode;
  wrap.style.display = 'flex';
  wrap.style.alignItems = 'flex-start';
  var panel = document.createElement('div');
  panel.style.cssText = 'flex:0 0 auto;width:140px;margin:40px 0 0 8px;font:12px sans-serif;color:#555';
  var img = document.createElement('img');
  img.style.cssText = 'width:128px;height:128px;image-rendering:pixelated;border:1px solid #ddd;display:none';
  var label = document.createElement('div');
  label.textContent = 'hover a point to see its image';
  panel.appendChild(img);
  panel.appendChild(label);
  wrap.appendChild(panel);
  if (window.Plotly && Plotly.Plots) { Plotly.Plots.resize(gd); }
  gd.on('plotly_hover', function (ev) {
    var p = ev.points && ev.points[0];
    if (!p || !p.customdata) { return; }
    var cd = Array.isArray(p.customdata) ? p.customdata : [p.customdata];
    for (var i = 0; i < cd.length; i++) {
      if (typeof cd[i] === 'string' && cd[i].indexOf('data:image') === 0) {
        img.src = cd[i];
        img.style.display = 'block';
        label.textContent = (p.data.name || '') + ' @ ' + p.x;
        return;
      }
    }
  });
})();
"""


# ---------------------------------------------------------------------------------------------------------------
# mode


def set_chart_mode(mode: str) -> contextlib.AbstractContextManager[None]:
    """How :func:`show_chart` displays: ``"auto"`` (widgets inside a Jupyter kernel with ipywidgets, else static),
    ``"widget"``, ``"static"`` (plotly HTML + PNG, no widgets) or ``"none"`` (show nothing). Also a context
    manager: ``with set_chart_mode("static"): ...`` restores the previous mode on exit. Env ``SDLAB_CHARTS``
    overrides ``"auto"``."""
    if mode not in CHART_MODES:
        raise SdlabError(f"unknown chart mode {mode!r}", mode=mode, hint=closest(mode, CHART_MODES))
    previous = _CONFIG["mode"]
    _CONFIG["mode"] = mode

    @contextlib.contextmanager
    def restore() -> Iterator[None]:
        try:
            yield
        finally:
            _CONFIG["mode"] = previous

    return restore()


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _has_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def chart_mode() -> str:
    """The display mode in effect here: ``"widget"``, ``"static"`` or ``"none"`` (see :func:`set_chart_mode`)."""
    mode = _CONFIG["mode"]
    if mode == "auto":
        mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
        if mode not in CHART_MODES:
            raise SdlabError(f"{MODE_ENV} must be one of {CHART_MODES}", value=mode)
    if mode == "auto":
        import importlib.util

        widgets = all(importlib.util.find_spec(m) is not None for m in ("ipywidgets", "anywidget"))
        mode = "widget" if _in_kernel() and widgets else "static"
    return mode


# ---------------------------------------------------------------------------------------------------------------
# chart-neutral series, drawn by either backend


@dataclass
class _Line:
    name: str
    x: list[float]
    y: list[float]
    lo: list[float] | None = None  # band across seeds
    hi: list[float] | None = None
    color: str = PALETTE[0]
    dash: str = "solid"
    thumbs: list[str] | None = None  # PNG data URL per point ("" when none)
    hover: list[str] | None = None  # extra hover text per point
    group: str = ""


@dataclass
class _Bar:
    label: str
    value: float
    color: str
    text: str
    thumb: str = ""
    group: str = ""


@dataclass
class _Axes:
    title: str
    xlabel: str
    ylabel: str
    xlog: bool = False
    ylog: bool = False
    xreverse: bool = False
    notes: list[str] = field(default_factory=list)


def _colors(keys: Sequence[Any]) -> dict[Any, str]:
    """A palette colour per distinct key, in order of first appearance."""
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(dict.fromkeys(keys))}


def _need(table: pd.DataFrame, columns: Sequence[str], chart: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise SdlabError(f"{chart} takes a pandas DataFrame", type=type(table).__name__, hint="pass result.table")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SdlabError(
            f"{chart} needs column(s) {', '.join(missing)}",
            columns=list(table.columns)[:16],
            hint="pass the long-format table of an sdlab.experiments result",
        )


def _metric_rows(table: pd.DataFrame, metric: str, chart: str) -> pd.DataFrame:
    rows = table[table["metric"] == metric]
    if rows.empty:
        have = sorted(table["metric"].dropna().unique().tolist())
        raise SdlabError(f"no rows for metric {metric!r}", chart=chart, hint=closest(metric, have) if have else None)
    return rows


def _thumbs(names: Sequence[Any], images: Mapping[str, Any] | None) -> list[str] | None:
    """A thumbnail data URL for each image name ("" where there is none), or None without images."""
    if not images:
        return None
    from sdlab.display import thumbnail_url

    cache: dict[str, str] = {}
    out = []
    for name in names:
        if isinstance(name, str) and name in images:
            if name not in cache:
                cache[name] = thumbnail_url(images[name], max_size=THUMB_SIZE)
            out.append(cache[name])
        else:
            out.append("")
    return out


def _fmt(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else str(v)


def _summarise(
    rows: pd.DataFrame, x: str, *, log_y: bool, images: Mapping[str, Any] | None, hover: Callable[[Any], str] | None
) -> tuple[list[float], list[float], list[float], list[float], list[str] | None, list[str]]:
    """Per x: median over the rows (seeds), min and max as the band, the first row's image and hover text."""
    vals = rows[np.isfinite(rows["value"].astype(float))]
    if log_y:
        vals = vals[vals["value"] > 0]
    xs, ys, lo, hi, names, texts = [], [], [], [], [], []
    for xv, g in vals.groupby(x, sort=True):
        v = g["value"].astype(float)
        xs.append(float(xv))
        ys.append(float(v.median()))
        lo.append(float(v.min()))
        hi.append(float(v.max()))
        names.append(g["image"].iloc[0] if "image" in g.columns else None)
        n = g["seed"].nunique() if "seed" in g.columns else len(g)
        extra = hover(g) if hover else ""
        texts.append(f"{n} seed{'s' if n != 1 else ''}: min {_fmt(lo[-1])}, max {_fmt(hi[-1])}{extra}")
    return xs, ys, lo, hi, _thumbs(names, images), texts


def _series_label(keys: tuple[Any, ...], varying: Sequence[bool]) -> str:
    parts = [str(k) for k, v in zip(keys, varying, strict=True) if v]
    return " / ".join(parts) if parts else str(keys[0])


# ---------------------------------------------------------------------------------------------------------------
# rendering: plotly


def _plotly_lines(lines: Sequence[_Line], axes: _Axes, *, bars: Sequence[_Bar] = ()) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for line in lines:
        if line.lo is not None and line.hi is not None and line.lo != line.hi:
            fig.add_trace(
                go.Scatter(
                    x=line.x, y=line.hi, mode="lines", line={"width": 0, "color": line.color}, hoverinfo="skip",
                    showlegend=False, legendgroup=line.name,
                )
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(
                    x=line.x, y=line.lo, mode="lines", line={"width": 0, "color": line.color}, fill="tonexty",
                    fillcolor=_rgba(line.color, 0.18), hoverinfo="skip", showlegend=False, legendgroup=line.name,
                )
            )  # fmt: skip
        custom = [
            [(line.thumbs[i] if line.thumbs else ""), (line.hover[i] if line.hover else "")] for i in range(len(line.x))
        ]
        fig.add_trace(
            go.Scatter(
                x=line.x, y=line.y, name=line.name, mode="lines+markers", legendgroup=line.name,
                line={"color": line.color, "dash": line.dash}, marker={"size": 6}, customdata=custom,
                hovertemplate="<b>%{fullData.name}</b><br>x %{x}<br>y %{y:.4g}<br>%{customdata[1]}<extra></extra>",
            )
        )  # fmt: skip
    if bars:
        fig.add_trace(
            go.Bar(
                y=[b.label for b in bars], x=[b.value for b in bars], orientation="h",
                marker={"color": [b.color for b in bars]}, text=[b.text for b in bars], textposition="outside",
                customdata=[[b.thumb, b.group] for b in bars], showlegend=False,
                hovertemplate="<b>%{y}</b><br>%{x:.4g}<br>%{customdata[1]}<extra></extra>",
            )
        )  # fmt: skip
        fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title={"text": axes.title, "font": {"size": 15}},
        template="plotly_white",
        height=max(420, 26 * len(bars) + 160) if bars else 460,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        hovermode="closest",
        legend={"font": {"size": 10}},
    )
    fig.update_xaxes(title=axes.xlabel, type="log" if axes.xlog else None)
    fig.update_yaxes(title=axes.ylabel, type="log" if axes.ylog else None)
    if axes.xreverse:
        fig.update_xaxes(autorange="reversed")
    if axes.notes:
        fig.add_annotation(
            text="<br>".join(axes.notes), xref="paper", yref="paper", x=0, y=-0.16, showarrow=False,
            align="left", font={"size": 10, "color": "#666"},
        )  # fmt: skip
        fig.update_layout(margin={"b": 90})
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# ---------------------------------------------------------------------------------------------------------------
# rendering: matplotlib


def _mpl_lines(
    lines: Sequence[_Line], axes: _Axes, *, bars: Sequence[_Bar] = (), strip: Sequence[tuple[str, Any]] = ()
) -> Any:
    """The same chart in matplotlib; ``strip``: (title, image) pairs drawn in a row under the chart."""
    from matplotlib.figure import Figure

    height = max(4.2, 0.32 * len(bars) + 1.5) if bars else 4.6
    width = 8.0 + (2.2 if len(lines) > 6 else 0.0) + (2.0 if len(lines) > 16 else 0.0)
    fig = Figure(figsize=(width, height + (1.9 if strip else 0.0)), layout="constrained")
    if strip:
        grid = fig.add_gridspec(2, len(strip), height_ratios=[height, 1.7])
        ax = fig.add_subplot(grid[0, :])
        for k, (title, image) in enumerate(strip):
            iax = fig.add_subplot(grid[1, k])
            iax.imshow(image, interpolation="nearest")
            iax.set_title(title, fontsize=8)
            iax.axis("off")
    else:
        ax = fig.add_subplot()
    for line in lines:
        if line.lo is not None and line.hi is not None and line.lo != line.hi:
            ax.fill_between(line.x, line.lo, line.hi, color=line.color, alpha=0.18, linewidth=0)
        ax.plot(line.x, line.y, DASHES.get(line.dash, "-"), marker="o", ms=3.5, color=line.color, label=line.name)
    if bars:
        labels = [b.label for b in bars]
        ax.barh(labels, [b.value for b in bars], color=[b.color for b in bars])
        ax.invert_yaxis()
        for k, b in enumerate(bars):
            ax.annotate(
                f" {b.text}", (b.value if math.isfinite(b.value) else 0, k), va="center", fontsize=8, color="#333"
            )
        ax.tick_params(axis="y", labelsize=8)
    ax.set_title(axes.title, fontsize=11)
    ax.set_xlabel(axes.xlabel)
    ax.set_ylabel(axes.ylabel)
    xs = sorted({v for line in lines for v in line.x})
    if axes.xlog:
        ax.set_xscale("log")
        _plain_ticks(ax, xs)
    elif xs and all(float(v).is_integer() for v in xs):  # steps: whole-number ticks
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if axes.ylog:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    if axes.xreverse:
        ax.invert_xaxis()
    ax.grid(True, which="both", alpha=0.25)
    if len(lines) > 6:  # many series: the legend goes beside the chart, not over the data
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=2 if len(lines) > 16 else 1)
    elif lines:
        ax.legend(fontsize=7)
    if axes.notes:
        ax.text(0, -0.16, "\n".join(axes.notes), transform=ax.transAxes, fontsize=7, color="#666", va="top")
    return fig


def _plain_ticks(ax: Any, xs: Sequence[float]) -> None:
    """Label a log x axis with plain numbers: the data's own x values when there are few, else 1-2-5."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    if 0 < len(xs) <= 10 and all(b / a >= 1.15 for a, b in zip(xs, xs[1:], strict=False)):
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
    else:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _finish(lines: Sequence[_Line], axes: _Axes, backend: str, **extra: Any) -> Any:
    """The chart in ``backend``; a plotly figure remembers how to draw its matplotlib twin."""
    if backend not in BACKENDS:
        raise SdlabError(f"unknown backend {backend!r}", backend=backend, hint=closest(backend, BACKENDS))
    strip = extra.pop("strip", ())
    if backend == "matplotlib":
        return _mpl_lines(lines, axes, strip=strip, **extra)
    fig = _plotly_lines(lines, axes, **extra)
    fig._sdlab_mpl = lambda: _mpl_lines(lines, axes, strip=strip, **extra)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# the charts


def schedule_chart(
    schedules: Mapping[str, Any],
    *,
    log: bool = True,
    title: str = "Noise schedules: sigma at each step",
    backend: str = "plotly",
) -> Any:
    """Sigma against step index for each schedule (``{name: sigmas}``, 1-D tensors or arrays, as
    :func:`sdlab.get_sigmas` returns them). On the log axis the final sigma 0 cannot be drawn and is left out.

    >>> schedule_chart({k: sdlab.get_sigmas(k, 20) for k in ("Karras", "Exponential", "Uniform")})
    """
    if not isinstance(schedules, Mapping) or not schedules:
        raise SdlabError("schedule_chart takes {name: sigmas}", hint='e.g. {"Karras": sdlab.get_sigmas("Karras", 20)}')
    colors = _colors(list(schedules))
    lines, dropped = [], False
    for name, sigmas in schedules.items():
        s = np.asarray(sigmas.detach().cpu() if hasattr(sigmas, "detach") else sigmas, dtype=float).ravel()
        idx = np.arange(len(s))
        keep = s > 0 if log else np.ones(len(s), bool)
        dropped |= bool((~keep).any())
        texts = [f"sigma {v:.4g}" for v in s[keep]]
        lines.append(_Line(str(name), idx[keep].tolist(), s[keep].tolist(), color=colors[name], hover=texts))
    notes = ["the final sigma = 0 is not drawn on the log axis"] if dropped else []
    axes = _Axes(title, "step i", "sigma_i", ylog=log, notes=notes)
    return _finish(lines, axes, backend)


def _final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows measuring final images against the reference (not the reference against itself)."""
    rows = table
    if "comparison" in rows.columns:
        rows = rows[rows["comparison"] == "reference"]
    if "step" in rows.columns:
        rows = rows[rows["step"] == -1]
    if {"spec_key", "against_key"} <= set(rows.columns):
        rows = rows[rows["spec_key"] != rows["against_key"]]
    return rows


def _group_columns(rows: pd.DataFrame, by: Sequence[str]) -> tuple[list[str], list[bool]]:
    cols = [c for c in by if c in rows.columns]
    if not cols:
        raise SdlabError("none of the grouping columns is in the table", by=list(by))
    varying = [rows[c].nunique(dropna=False) > 1 for c in cols]
    if not any(varying):
        varying[0] = True
    return cols, varying


def convergence_chart(
    table: pd.DataFrame,
    *,
    metric: str = "latent_rmse",
    x: str = "steps",
    images: Mapping[str, Any] | None = None,
    by: Sequence[str] = ("sampler", "schedule_resolved"),
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Distance to the reference against steps (or ``x="nfe"``) per sampler, log-log, the median over seeds as
    the line and their min-max as a band. Rows: ``comparison == "reference"`` at the final step
    (:func:`sdlab.experiments.convergence`). Similarities (ssim, psnr) get a linear y axis.
    """
    _need(table, ["metric", "value", x, *by[:1]], "convergence_chart")
    rows = _metric_rows(_final_rows(table), metric, "convergence_chart")
    cols, varying = _group_columns(rows, by)
    log_y = metric not in SIMILARITIES
    colors = _colors([k for k in rows[cols[0]]])
    lines = []
    for keys, g in rows.groupby(cols, sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        xs, ys, lo, hi, thumbs, texts = _summarise(g, x, log_y=log_y, images=images, hover=None)
        if xs:
            name = _series_label(keys, varying)
            lines.append(_Line(name, xs, ys, lo, hi, colors[keys[0]], thumbs=thumbs, hover=texts, group=str(keys[0])))
    against = rows["against"].iloc[0] if "against" in rows.columns and len(rows) else "the reference"
    axes = _Axes(
        title or f"Distance to {against}",
        "model evaluations (NFE)" if x == "nfe" else x,
        f"{metric} to the reference" + (" (higher is closer)" if not log_y else ""),
        xlog=True,
        ylog=log_y,
        notes=["line: median over seeds; band: min to max"],
    )
    return _finish(lines, axes, backend)


def cost_quality_chart(
    table: pd.DataFrame,
    *,
    metric: str = "latent_rmse",
    cost: str = "nfe",
    images: Mapping[str, Any] | None = None,
    by: Sequence[str] = ("sampler", "schedule_resolved"),
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """What each sampler pays for its quality: distance to the reference (median over seeds) against model
    evaluations (``cost="nfe"``) or seconds per image (``cost="seconds"``), one point per step count, log-log.
    """
    _need(table, ["metric", "value", "steps", cost, *by[:1]], "cost_quality_chart")
    rows = _metric_rows(_final_rows(table), metric, "cost_quality_chart")
    cols, varying = _group_columns(rows, by)
    log_y = metric not in SIMILARITIES
    colors = _colors(list(rows[cols[0]]))
    lines = []
    for keys, g in rows.groupby(cols, sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        per_steps = g.groupby("steps", sort=True)
        cost_of = per_steps[cost].median()
        g = g.assign(_cost=g["steps"].map(cost_of))
        xs, ys, lo, hi, thumbs, texts = _summarise(
            g, "_cost", log_y=log_y, images=images, hover=lambda r: f"<br>{int(r['steps'].iloc[0])} steps"
        )
        if xs:
            name = _series_label(keys, varying)
            lines.append(_Line(name, xs, ys, lo, hi, colors[keys[0]], thumbs=thumbs, hover=texts, group=str(keys[0])))
    axes = _Axes(
        title or "Cost against quality",
        "model evaluations per image (NFE)" if cost == "nfe" else f"{cost} per image",
        f"{metric} to the reference",
        xlog=True,
        ylog=log_y,
        notes=["one point per step count; lower left is cheaper and closer"],
    )
    return _finish(lines, axes, backend)


def divergence_chart(
    table: pd.DataFrame,
    *,
    metric: str = "latent_rmse",
    x: str = "steps",
    comparisons: Sequence[str] | None = None,
    images: Mapping[str, Any] | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """How far stochastic samplers land from their deterministic twins (solid, ``vs_deterministic``) and how
    much each sampler still moves from N to N+1 steps (dashed, ``n_to_n+1``), against steps, log-log; with
    ``x="eta"`` the eta sweep instead (:func:`sdlab.experiments.ancestral_divergence`). Median over seeds, band
    min-max.
    """
    if comparisons is None:
        comparisons = ("eta",) if x == "eta" else ("vs_deterministic", "n_to_n+1")
    _need(table, ["metric", "value", "comparison", "sampler", x], "divergence_chart")
    rows = _metric_rows(table[table["comparison"].isin(list(comparisons))], metric, "divergence_chart")
    log_y = metric not in SIMILARITIES
    colors = _colors(list(rows["sampler"]))
    dash = {"vs_deterministic": "solid", "n_to_n+1": "dash", "eta": "solid"}
    what = {"vs_deterministic": "vs its twin", "n_to_n+1": "N vs N+1", "eta": "vs its twin"}
    lines = []
    for (comparison, sampler), g in rows.groupby(["comparison", "sampler"], sort=False):
        if comparison == "n_to_n+1":  # each sampler once, whatever pair it came with
            g = g.drop_duplicates([c for c in ("seed", "steps", "sampler") if c in g.columns])
        xs, ys, lo, hi, thumbs, texts = _summarise(g, x, log_y=log_y, images=images, hover=None)
        if xs:
            name = f"{sampler}: {what.get(comparison, comparison)}"
            lines.append(
                _Line(name, xs, ys, lo, hi, colors[sampler], dash=dash.get(comparison, "dot"), thumbs=thumbs,
                      hover=texts)
            )  # fmt: skip
    axes = _Axes(
        title or ("Stochastic samplers against eta" if x == "eta" else "Stochastic samplers: distance and settling"),
        x,
        metric + ("" if log_y else " (higher is closer)"),
        xlog=x != "eta",
        ylog=log_y,
        notes=["solid: distance to the deterministic twin; dashed: change from N to N+1 steps"] if x != "eta" else [],
    )
    return _finish(lines, axes, backend)


def stability_chart(
    table: pd.DataFrame,
    *,
    metric: str = "max_abs",
    images: Mapping[str, Any] | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Same seed, same image? One bar per variant (rerun, batch position, RNG source, dtype, perturbation) with
    its ``metric`` against the base run (mean over seeds), labelled "identical" where latents and image are
    bit-identical (:func:`sdlab.experiments.stability`). ``max_abs`` is in [0, 1] image units.
    """
    _need(table, ["metric", "value", "comparison", "variant"], "stability_chart")
    rows = _metric_rows(table, metric, "stability_chart")
    same = table[table["metric"] == "identical"].groupby("variant")["value"].min()
    colors = _colors(list(rows["comparison"]))
    bars = []
    for (comparison, variant), g in rows.groupby(["comparison", "variant"], sort=False):
        value = float(g["value"].astype(float).mean())
        identical = bool(same.get(variant, 0.0) == 1.0)
        text = "identical" if identical else _fmt(value)
        name = g["image"].iloc[0] if "image" in g.columns else None
        thumb = (_thumbs([name], images) or [""])[0]
        bars.append(_Bar(str(variant), value, colors[comparison], text, thumb, f"{comparison}: {text}"))
    axes = _Axes(title or "Same seed, same image? Difference from the base run", f"{metric}", "")
    return _finish([], axes, backend, bars=bars)


def delta_chart(
    table: pd.DataFrame,
    *,
    images: Any = None,
    metric: str = "latent_rmse",
    comparisons: Sequence[str] = ("next", "final"),
    x: str = "step",
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Per-step change within a run: the denoised prediction at step i against step i+1 (solid, ``next``) and
    against the final result (dashed, ``final``), log y. ``table``: per-step rows (``step >= 0``), e.g.
    :func:`trajectory_table` or a convergence table's ``next`` / ``final`` rows.

    ``images``: the denoised image at each step ((steps, 3, H, W) in [0, 1], e.g. ``trajectory.decode(model)``).
    With them the plotly chart gets an image panel and a step slider (plotly frames) that moves a marker along
    the curves and shows that step's image; the matplotlib twin draws six of them under the chart.
    """
    _need(table, ["metric", "value", "step", "comparison"], "delta_chart")
    rows = table[(table["step"] >= 0) & table["comparison"].isin(list(comparisons))]
    rows = _metric_rows(rows, metric, "delta_chart")
    series = [c for c in ("sampler", "schedule_resolved", "steps", "seed") if c in rows.columns]
    varying = [rows[c].nunique() > 1 for c in series]
    colors = _colors([tuple(k) for k in rows[series].itertuples(index=False)] if series else [()])
    dash = {"next": "solid", "final": "dash"}
    lines = []
    groups = rows.groupby([*series, "comparison"], sort=False) if series else rows.groupby(["comparison"])
    for keys, g in groups:
        keys = keys if isinstance(keys, tuple) else (keys,)
        *ident, comparison = keys
        g = g.sort_values("step")
        g = g[(g["value"] > 0) & np.isfinite(g["value"].astype(float))]
        if g.empty:
            continue
        shown = [(c, k) for c, k, v in zip(series, ident, varying, strict=True) if v]
        label = " / ".join(f"seed {k}" if c == "seed" else f"{k} steps" if c == "steps" else str(k) for c, k in shown)
        what = "step i vs i+1" if comparison == "next" else f"step i vs {comparison}"
        name = f"{label}: {what}" if label else what
        sig = g["sigma"].tolist() if "sigma" in g.columns else [math.nan] * len(g)
        texts = [f"sigma {s:.4g}" for s in sig]
        xs = g[x].astype(float).tolist()
        lines.append(
            _Line(name, xs, g["value"].astype(float).tolist(), color=colors[tuple(ident)],
                  dash=dash.get(comparison, "dot"), hover=texts, group=str(comparison))
        )  # fmt: skip
    axes = _Axes(
        title or f"Per-step change of the denoised prediction ({metric})",
        "step i" if x == "step" else x,
        metric,
        xlog=x == "sigma",
        ylog=True,
        xreverse=x == "sigma",
    )
    if images is None:
        return _finish(lines, axes, backend)
    from sdlab.display import to_images

    frames, _ = to_images(images)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(6, len(frames))).round().astype(int))
    strip = [(f"step {i}", frames[i]) for i in picks]
    if backend == "matplotlib":
        return _finish(lines, axes, backend, strip=strip)
    fig = _slider_figure(lines, axes, frames)
    fig._sdlab_mpl = lambda: _mpl_lines(lines, axes, strip=strip)
    return fig


def _slider_figure(lines: Sequence[_Line], axes: _Axes, frames: Sequence[np.ndarray]) -> Any:
    """Curves (left) and the image at the slider's step (right), one plotly frame per step."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from sdlab.display import image_data_url

    fig = make_subplots(rows=1, cols=2, column_widths=[0.64, 0.36], horizontal_spacing=0.1)
    for line in _plotly_lines(lines, _Axes("", "", "")).data:
        fig.add_trace(line, row=1, col=1)
    urls = [image_data_url(f) for f in frames]

    def at(k: int) -> tuple[list[float], list[float]]:
        pts = [(line.x[line.x.index(k)], line.y[line.x.index(k)]) for line in lines if float(k) in line.x]
        return [p[0] for p in pts], [p[1] for p in pts]

    mx, my = at(0)
    marker = go.Scatter(
        x=mx, y=my, mode="markers", showlegend=False, hoverinfo="skip",
        marker={"size": 13, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "black"}},
    )  # fmt: skip
    fig.add_trace(marker, row=1, col=1)
    fig.add_trace(go.Image(source=urls[0], hoverinfo="skip"), row=1, col=2)
    i_marker, i_image = len(fig.data) - 2, len(fig.data) - 1
    fig.frames = [
        go.Frame(
            name=str(k),
            data=[go.Scatter(x=at(k)[0], y=at(k)[1]), go.Image(source=urls[k])],
            traces=[i_marker, i_image],
        )
        for k in range(len(frames))
    ]
    now = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    steps = [{"method": "animate", "label": str(k), "args": [[str(k)], now]} for k in range(len(frames))]
    fig.update_layout(
        title={"text": axes.title, "font": {"size": 15}},
        template="plotly_white",
        height=500,
        margin={"l": 60, "r": 20, "t": 90, "b": 40},
        legend={"font": {"size": 10}, "orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        sliders=[{"active": 0, "currentvalue": {"prefix": "step "}, "pad": {"t": 40}, "steps": steps}],
        hovermode="closest",
    )
    fig.update_xaxes(title=axes.xlabel, row=1, col=1)
    fig.update_yaxes(title=axes.ylabel, type="log", row=1, col=1)
    fig.update_xaxes(visible=False, row=1, col=2)
    fig.update_yaxes(visible=False, scaleanchor="x2", row=1, col=2)
    return fig


def trajectory_table(
    result: Any,
    *,
    model: Any = None,
    image_metrics: Sequence[str] = (),
    decode: str = "preview",
) -> pd.DataFrame:
    """Per-step deltas of every image of a :class:`~sdlab.generation.GenerateResult` made with
    ``trajectory=True``, as one long table: sampler, schedule, seed, step, sigma, comparison ("next" / "final"),
    metric, value, nfe, elapsed. Latent RMSE always; ``image_metrics`` (ssim, psnr, lpips) on the decoded
    predictions (``model`` decodes them; ``decode="preview"`` is cheap, ``"tiny"`` close to the VAE, ``"full"`` the
    VAE).
    """
    from sdlab.experiments import step_deltas

    if getattr(result, "trajectories", None) is None:
        raise SdlabError("the result has no trajectories", hint="run sdlab.generate(..., trajectory=True)")
    rows = []
    for k, (spec, traj) in enumerate(zip(result.specs, result.trajectories, strict=True)):
        for row in step_deltas(traj, result.latents[k], model=model, image_metrics=image_metrics, decode=decode):
            rows.append(
                {
                    "sampler": spec.sampler,
                    "schedule_resolved": spec.schedule_resolved,
                    "steps": spec.steps,
                    "seed": spec.seed,
                    **row,
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# display and export


def _has_thumbs(fig: Any) -> bool:
    for trace in fig.data:
        custom = getattr(trace, "customdata", None)
        if custom is not None and any(
            isinstance(c, (list, tuple, np.ndarray)) and len(c) and str(c[0]).startswith("data:image") for c in custom
        ):
            return True
    return False


def _is_plotly(fig: Any) -> bool:
    return type(fig).__module__.startswith("plotly")


def _is_mpl(fig: Any) -> bool:
    return type(fig).__module__.startswith("matplotlib")


def _mpl_twin(fig: Any) -> Any:
    build = getattr(fig, "_sdlab_mpl", None) if _is_plotly(fig) else None
    return build() if build is not None else None


def _png_bytes(mpl_fig: Any, dpi: int = 110) -> bytes:
    import io

    buf = io.BytesIO()
    mpl_fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _static_html(fig: Any, include_plotlyjs: str | bool = "cdn", full_html: bool = False) -> str:
    return fig.to_html(
        include_plotlyjs=include_plotlyjs,
        full_html=full_html,
        auto_play=False,  # a step slider starts at step 0 (playing its frames on load can lose the image)
        post_script=HOVER_IMAGE_JS if _has_thumbs(fig) else None,
        config={"displaylogo": False},
    )


def _hover_handler(image: Any, label: Any) -> Callable[[Any, Any, Any], None]:
    """A FigureWidget ``on_hover`` callback that puts the hovered point's thumbnail into ``image``."""

    def on_hover(trace: Any, points: Any, state: Any) -> None:
        if not points.point_inds:
            return
        custom = trace.customdata[points.point_inds[0]]
        src = str(custom[0]) if custom is not None and len(custom) else ""
        if src.startswith("data:image"):
            image.value = base64.b64decode(src.split(",", 1)[1])
            label.value = f"{trace.name or ''} @ {points.xs[0]}"

    return on_hover


def interactive(fig: Any) -> Any:
    """The chart as ipywidgets: a ``FigureWidget`` plus an image panel that shows the hovered point's image; a
    chart with a step slider (:func:`delta_chart`) gets an ``IntSlider`` that updates marker and image."""
    import ipywidgets as widgets
    import plotly.graph_objects as go

    if not _is_plotly(fig):
        raise SdlabError("interactive takes a plotly figure", type=type(fig).__name__)
    if fig.frames:
        frames = list(fig.frames)
        base = go.Figure(data=fig.data, layout=fig.layout)
        base.layout.sliders = ()
        widget = go.FigureWidget(base)
        slider = widgets.IntSlider(value=0, min=0, max=len(frames) - 1, description="step", continuous_update=True)

        def show(change: Any) -> None:
            frame = frames[change["new"]]
            with widget.batch_update():
                for index, data in zip(frame.traces, frame.data, strict=True):
                    update = {k: v for k, v in data.to_plotly_json().items() if k != "type"}
                    widget.data[index].update(update)

        slider.observe(show, names="value")
        return widgets.VBox([widget, slider])
    widget = go.FigureWidget(fig)
    if not _has_thumbs(fig):
        return widget
    image = widgets.Image(format="png", width=128, height=128, layout=widgets.Layout(border="1px solid #ddd"))
    image.add_class("sdlab-pixelated")
    label = widgets.Label("hover a point to see its image")
    handler = _hover_handler(image, label)
    for trace in widget.data:
        if getattr(trace, "customdata", None) is not None and hasattr(trace, "on_hover"):
            trace.on_hover(handler)
    style = widgets.HTML("<style>.sdlab-pixelated img, img.sdlab-pixelated {image-rendering: pixelated}</style>")
    return widgets.HBox([widget, widgets.VBox([style, image, label])])


def show_chart(fig: Any, *, mode: str | None = None) -> None:
    """Display a chart in Jupyter: interactive widgets in ``"widget"`` mode, plotly HTML with hover images plus a
    PNG (from the matplotlib twin) in ``"static"`` mode; every output carries a static fallback, so viewers
    without widgets or JavaScript still show the chart. A matplotlib figure is shown as it is. Outside
    IPython nothing is shown. ``mode`` defaults to :func:`chart_mode`.
    """
    if not _has_ipython():
        return
    from IPython.display import display

    mode = chart_mode() if mode is None else mode
    if mode not in CHART_MODES:
        raise SdlabError(f"unknown chart mode {mode!r}", mode=mode, hint=closest(mode, CHART_MODES))
    if mode == "none":
        return
    if _is_mpl(fig):
        display(fig)
        return
    if not _is_plotly(fig):
        raise SdlabError("show_chart takes a plotly or matplotlib figure", type=type(fig).__name__)
    bundle: dict[str, Any] = {"text/html": _static_html(fig), "text/plain": f"<{fig.layout.title.text or 'chart'}>"}
    if mode == "widget":
        bundle.update(interactive(fig)._repr_mimebundle_())
        bundle["text/html"] = _static_html(fig)
    else:
        bundle["application/vnd.plotly.v1+json"] = {**fig.to_plotly_json(), "config": {"displaylogo": False}}
        twin = _mpl_twin(fig)
        if twin is not None:
            bundle["image/png"] = base64.b64encode(_png_bytes(twin)).decode("ascii")
    display(bundle, raw=True)


def _plotlyjs_for(html_path: Path, plotlyjs: str | bool | None) -> str | bool:
    """plotly's ``include_plotlyjs`` for one file; a relative ``.js`` path gets its copy of plotly.js written."""
    if plotlyjs is None:
        plotlyjs = os.environ.get(PLOTLYJS_ENV) or "directory"
    if isinstance(plotlyjs, str) and plotlyjs.endswith(".js") and "://" not in plotlyjs:
        target = (html_path.parent / plotlyjs).resolve()
        if not target.exists():
            from plotly.offline import get_plotlyjs

            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(get_plotlyjs(), encoding="utf-8")
    return plotlyjs


def save_figure(
    fig: Any, path: str | Path, *, plotlyjs: str | bool | None = None, png: bool = True, dpi: int = 130
) -> list[Path]:
    """Write a chart as ``<path>.html`` and ``<path>.png`` (folders created); returns the paths written.

    A plotly figure: the HTML keeps it interactive (hover images included). ``plotlyjs``: ``"directory"``
    (default) writes one shared ``plotly.min.js`` beside it, so the folder works offline; a relative path ending
    in ``.js`` (``"../plotly.min.js"``) links that file, written there once; ``True`` inlines plotly.js (4.8 MB
    per file); ``"cdn"`` links the CDN. Env ``SDLAB_PLOTLYJS`` changes the default (the notebook runner sets
    ``../plotly.min.js``: one copy for all of ``figures/``). The PNG comes from the chart's matplotlib twin; a
    plotly figure without one is written with plotly's ``write_image`` when kaleido (and the Chrome it needs)
    is installed, else without PNG. A matplotlib figure: the PNG only. A trailing ``.html`` or ``.png`` in
    ``path`` is ignored.
    """
    path = Path(path)
    if path.suffix.lower() in (".html", ".png"):
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if _is_mpl(fig):
        fig.savefig(path.with_suffix(".png"), dpi=dpi)
        return [path.with_suffix(".png")]
    if not _is_plotly(fig):
        raise SdlabError("save_figure takes a plotly or matplotlib figure", type=type(fig).__name__)
    html_path = Path(f"{path}.html")
    fig.write_html(
        html_path,
        include_plotlyjs=_plotlyjs_for(html_path, plotlyjs),
        full_html=True,
        auto_play=False,
        post_script=HOVER_IMAGE_JS if _has_thumbs(fig) else None,
        config={"displaylogo": False},
    )
    written.append(html_path)
    if png:
        png_path = Path(f"{path}.png")
        twin = _mpl_twin(fig)
        if twin is not None:
            twin.savefig(png_path, dpi=dpi)
            written.append(png_path)
        else:
            try:
                fig.write_image(png_path)
                written.append(png_path)
            except Exception as e:  # kaleido missing, or no Chrome for it: several exception types
                import warnings

                warnings.warn(f"no PNG for {path.name}: plotly's write_image failed ({e})", stacklevel=2)
    return written
