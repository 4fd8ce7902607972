"""The shared matplotlib helpers: new figures, panel grids, plain-number log ticks, PNG bytes and files, and the
two static charts the measurements draw (median lines per series, labelled horizontal bars).

>>> from sdlab.viz import mpl
>>> fig = mpl.line_chart(table, title="Error against steps", ylabel="RMSE")   # one line per sampler
>>> mpl.save_png(fig, "figures/error.png")                                   # folders created
>>> png = mpl.figure_png(fig)                                                # bytes, for HTML

matplotlib is imported inside each function (``pip install "sdlab[notebooks]"``). Figures are made with
``matplotlib.figure.Figure`` (no pyplot state) except :func:`subplot_grid`, which uses pyplot so a notebook shows
the figure. Colours come from :mod:`sdlab.viz.palette`: a sampler has the same colour in every chart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sdlab.viz.palette import series_colors

__all__ = [
    "new_figure",
    "subplot_grid",
    "plain_log_ticks",
    "log_y_ticks",
    "figure_png",
    "save_png",
    "small_png",
    "line_chart",
    "bar_chart",
    "LINE_STYLES",
]

LINE_STYLES = ("-", "--", ":", "-.")  # a line style per value of a second series column
_REFERENCE_GREYS = ("#555", "#999", "#bbb")  # horizontal reference lines of line_chart
_REFERENCE_COLORS = ("#d62728", "#ff7f0e", "#555")  # vertical reference lines of bar_chart
_BAR = "#4c78a8"


def new_figure(width: float = 7.5, height: float = 4.2) -> tuple[Any, Any]:
    """A matplotlib ``Figure`` (constrained layout, no pyplot state) and its one ``Axes``; sizes in inches."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def subplot_grid(n: int, ncols: int, size: float = 3.2) -> tuple[Any, list[Any]]:
    """A pyplot figure of ``n`` square panels (``size`` inches), ``ncols`` per row; returns the figure and the
    ``n`` axes in reading order (spare panels of the last row are hidden)."""
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def plain_log_ticks(ax: Any, values: Iterable[float], *, spread: float = 1.15, max_ticks: int = 10) -> None:
    """Label a log x axis with plain numbers: the ``values`` themselves when at most ``max_ticks`` and each at
    least ``spread`` times the one before (steps 4, 8, 16 ...), else 1-2-5 ticks."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    xs = sorted(set(values))
    if 0 < len(xs) <= max_ticks and all(b / a >= spread for a, b in zip(xs, xs[1:], strict=False)):
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
    else:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def log_y_ticks(ax: Any) -> None:
    """A log y axis with 1-2-5 ticks labelled as plain numbers (0.01, 0.02, 0.05 ...)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def figure_png(fig: Any, *, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes (for ``<img>`` data URLs and notebook bundles)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def small_png(png: bytes) -> bytes:
    """A chart's PNG bytes with at most 256 colours (median cut, no dithering): about a third of the size, the
    same to the eye for lines and text (not for photographs). The same bytes in, the same bytes out."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    buf = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        buf, "PNG", optimize=True
    )
    return buf.getvalue()


def save_png(fig: Any, path: str | Path | None, *, dpi: int = 110, crop: bool = True, small: bool = True) -> Any:
    """Save a matplotlib figure at ``path`` as a PNG, cropped to its content unless ``crop=False``, in at most 256
    colours (:func:`small_png`) unless ``small=False`` (figures of images); folders created. Returns the figure,
    so a plotting function can end with ``return save_png(fig, path)``. ``path=None`` saves nothing."""
    if path is not None:
        import io

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if crop else None)
        path.write_bytes(small_png(buf.getvalue()) if small else buf.getvalue())
    return fig


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}g}"


def line_chart(
    table: pd.DataFrame,
    *,
    x: str = "steps",
    series: Sequence[str] = ("sampler",),
    title: str,
    ylabel: str,
    xlabel: str | None = None,
    logx: bool = True,
    logy: bool = True,
    hlines: Mapping[str, float] | None = None,
    scale: float = 1.0,
) -> Any:
    """One line per ``series`` (the median of ``value`` per ``x``), values divided by ``scale``: a colour per value
    of the first series column (a sampler's own colour when that column is ``"sampler"``), a line style per value
    of the second; dashed grey ``hlines`` ``{label: y}``. Returns a matplotlib ``Figure``."""
    fig, ax = new_figure(width=9.0)
    cols = [c for c in series if c in table.columns]
    groups = list(table.groupby(cols, sort=False)) if cols else [((), table)]
    firsts = list(dict.fromkeys(k[0] if isinstance(k, tuple) else k for k, _ in groups))
    seconds = list(dict.fromkeys(k[1] for k, _ in groups if isinstance(k, tuple) and len(k) > 1))
    colors = series_colors(firsts, samplers=bool(cols) and cols[0] == "sampler")
    for keys, g in groups:
        keys = keys if isinstance(keys, tuple) else (keys,)
        curve = g.groupby(x)["value"].median().sort_index() / scale
        curve = curve[curve > 0] if logy else curve
        if len(curve):
            color = colors[keys[0]] if keys else None
            style = LINE_STYLES[seconds.index(keys[1]) % len(LINE_STYLES)] if len(keys) > 1 else "-"
            ax.plot(curve.index, curve.to_numpy(), style, marker="o", ms=3.5, color=color,
                    label=" / ".join(str(k) for k in keys))  # fmt: skip
    for k, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, color=_REFERENCE_GREYS[k % 3], ls="--", lw=1, label=label)
    ax.set(title=title, xlabel=xlabel or x, ylabel=ylabel)
    if logx:
        ax.set_xscale("log")
        ticks = sorted(table[x].dropna().unique())
        if 0 < len(ticks) <= 12:
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
    if logy:
        log_y_ticks(ax)
    ax.grid(True, which="both", alpha=0.25)
    fig.legend(fontsize=7, loc="outside right upper")  # beside the plot: never over a line
    return fig


def bar_chart(values: Mapping[str, float], *, title: str, xlabel: str, lines: Mapping[str, float] | None = None) -> Any:
    """Horizontal bars, one per label of ``{label: value}`` (top to bottom, the value written beside each; a
    value that is not finite draws no bar and reads "n/a"), with dashed reference ``lines`` ``{label: x}``."""
    fig, ax = new_figure(height=max(2.6, 0.42 * len(values) + 1.2))
    labels = list(values)
    ax.barh(labels, [values[k] if math.isfinite(values[k]) else 0 for k in labels], color=_BAR)
    for k, label in enumerate(labels):
        ax.annotate(f" {_fmt(values[label])}", (values[label] if math.isfinite(values[label]) else 0, k), va="center",
                    fontsize=8)  # fmt: skip
    for k, (label, x) in enumerate((lines or {}).items()):
        ax.axvline(x, color=_REFERENCE_COLORS[k % 3], ls="--", lw=1, label=label)
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel)
    ax.tick_params(axis="y", labelsize=8)
    if lines:
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, axis="x", alpha=0.25)
    return fig
