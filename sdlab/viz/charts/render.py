"""Drawing chart-neutral series (:mod:`sdlab.viz.charts.series`) with plotly or matplotlib.

:func:`render` gives the chart in the backend asked for; a plotly figure also remembers how to draw its
matplotlib twin (:func:`mpl_twin`), the static PNG that :func:`~sdlab.viz.charts.show.save_figure` writes and
notebooks without widgets show. :func:`slider_figure` is the plotly chart with a step slider and an image panel.
plotly and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sdlab.errors import SdlabError, closest
from sdlab.viz.charts.series import ChartAxes, ChartBar, ChartLine
from sdlab.viz.images import image_data_url
from sdlab.viz.mpl import log_y_ticks, plain_log_ticks
from sdlab.viz.palette import GREY, rgba

__all__ = ["BACKENDS", "DASHES", "plotly_figure", "mpl_figure", "slider_figure", "render", "set_twin", "mpl_twin"]

BACKENDS = ("plotly", "matplotlib")
DASHES = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-."}  # plotly dash -> matplotlib line style
_TWIN = "_sdlab_mpl"  # the attribute of a plotly figure that builds its matplotlib twin


# ---------------------------------------------------------------------------------------------------------------
# plotly


def _line_traces(line: ChartLine, legendgroup: str) -> list[Any]:
    """One line's plotly traces: its min-max band (two traces, when it has one) and the line with hover data."""
    import plotly.graph_objects as go

    traces = []
    if line.lo is not None and line.hi is not None and line.lo != line.hi:
        for edge, fill in ((line.hi, None), (line.lo, "tonexty")):
            traces.append(
                go.Scatter(
                    x=line.x, y=edge, mode="lines", line={"width": 0, "color": line.color}, hoverinfo="skip",
                    showlegend=False, legendgroup=legendgroup, fill=fill,
                    fillcolor=rgba(line.color, 0.18) if fill else None,
                )
            )  # fmt: skip
    thumbs, hover = line.thumbs or [""] * len(line.x), line.hover or [""] * len(line.x)
    custom = [[thumbs[i], hover[i]] for i in range(len(line.x))]
    traces.append(
        go.Scatter(
            x=line.x, y=line.y, name=line.name, mode="lines+markers", legendgroup=legendgroup,
            line={"color": line.color, "dash": line.dash}, marker={"size": 6}, customdata=custom,
            hovertemplate="<b>%{fullData.name}</b><br>x %{x}<br>y %{y:.4g}<br>%{customdata[1]}<extra></extra>",
        )
    )  # fmt: skip
    return traces


def _panel_grid(n: int) -> tuple[int, int]:
    """Rows and columns of ``n`` small multiples: at most three panels a row."""
    ncols = min(3, n)
    return math.ceil(n / ncols), ncols


def _plotly_panels(lines: Sequence[ChartLine], axes: ChartAxes) -> Any:
    """Small multiples: one panel per ``line.panel``, its lines in colour over all the others in grey."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = list(dict.fromkeys(line.panel for line in lines))
    nrows, ncols = _panel_grid(len(panels))
    fig = make_subplots(
        rows=nrows, cols=ncols, subplot_titles=panels, shared_xaxes="all", shared_yaxes="all",
        horizontal_spacing=0.04, vertical_spacing=0.14 if nrows > 1 else 0.1,
    )  # fmt: skip
    for k, panel in enumerate(panels):
        at = {"row": k // ncols + 1, "col": k % ncols + 1}
        for line in lines:
            if line.panel != panel and line.context:
                grey = {"color": GREY, "width": 1, "dash": line.dash}
                fig.add_trace(go.Scatter(x=line.x, y=line.y, mode="lines", line=grey, hoverinfo="skip",
                                         showlegend=False), **at)  # fmt: skip
        for j, line in enumerate(ln for ln in lines if ln.panel == panel):
            for trace in _line_traces(line, panel):
                if j == 0 and trace.showlegend is not False:
                    trace.legendgrouptitle = {"text": panel}
                fig.add_trace(trace, **at)
    notes = "".join(f"<br><span style='font-size:11px;color:#666'>{n}</span>" for n in axes.notes)
    fig.update_layout(
        title={"text": axes.title + notes, "font": {"size": 15}},
        template="plotly_white",
        height=290 * nrows + 140,
        margin={"l": 60, "r": 20, "t": 90 + 14 * len(axes.notes), "b": 50},
        hovermode="closest",
        legend={"font": {"size": 10}, "groupclick": "toggleitem", "tracegroupgap": 6, "traceorder": "grouped"},
    )
    fig.update_xaxes(type="log" if axes.xlog else None, **_plain_ticks(lines, axes))
    fig.update_yaxes(type="log" if axes.ylog else None)
    for c in range(1, ncols + 1):
        fig.update_xaxes(title=axes.xlabel, row=nrows, col=c)
    for r in range(1, nrows + 1):
        fig.update_yaxes(title=axes.ylabel, row=r, col=1)
    return fig


def _plain_ticks(lines: Sequence[ChartLine], axes: ChartAxes, most: int = 10) -> dict[str, Any]:
    """A log x axis with few distinct values (steps 4, 8, 16, 32) ticked at those values, as plain numbers; of
    values closer than a factor 1.2 (NFE 31 and 32) only the larger is labelled, so labels never collide."""
    xs = sorted({v for line in lines for v in line.x})
    if not axes.xlog or not 0 < len(xs) <= most or xs[0] <= 0:
        return {}
    kept = [xs[-1]]
    for v in reversed(xs[:-1]):
        if kept[-1] / v >= 1.2:
            kept.append(v)
    xs = kept[::-1]
    return {"tickvals": xs, "ticktext": [f"{v:g}" for v in xs]}


def _notes(fig: Any, axes: ChartAxes) -> None:
    """The axes' notes in small grey type under the chart, below the x-axis title (placed in pixels, so no chart
    height puts them on it)."""
    if axes.notes:
        fig.add_annotation(
            text="<br>".join(axes.notes), xref="paper", yref="paper", x=0, y=0, xanchor="left", yanchor="top",
            yshift=-52, showarrow=False, align="left", font={"size": 10, "color": "#666"},
        )  # fmt: skip
        fig.update_layout(margin={"b": 64 + 14 * len(axes.notes)})


def plotly_figure(lines: Sequence[ChartLine], axes: ChartAxes, *, bars: Sequence[ChartBar] = ()) -> Any:
    """The chart as a ``plotly.graph_objects.Figure``: lines with bands and hover thumbnails, or bars; lines
    with a ``panel`` as small multiples."""
    import plotly.graph_objects as go

    if lines and any(line.panel for line in lines):
        return _plotly_panels(lines, axes)
    fig = go.Figure()
    for line in lines:
        for trace in _line_traces(line, line.name):
            fig.add_trace(trace)
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
    fig.update_xaxes(title=axes.xlabel, type="log" if axes.xlog else None, **_plain_ticks(lines, axes))
    fig.update_yaxes(title=axes.ylabel, type="log" if axes.ylog else None)
    if axes.xreverse:
        fig.update_xaxes(autorange="reversed")
    _notes(fig, axes)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# matplotlib


def mpl_figure(
    lines: Sequence[ChartLine],
    axes: ChartAxes,
    *,
    bars: Sequence[ChartBar] = (),
    strip: Sequence[tuple[str, Any]] = (),
) -> Any:
    """The same chart in matplotlib; ``strip``: (title, image) pairs drawn in a row under the chart."""
    from matplotlib.figure import Figure

    if lines and any(line.panel for line in lines) and not bars and not strip:
        return _mpl_panels(lines, axes)
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
    _mpl_axes_style(ax, axes, sorted({v for line in lines for v in line.x}))
    if len(lines) > 6:  # many series: the legend goes beside the chart, not over the data
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=2 if len(lines) > 16 else 1)
    elif lines:
        ax.legend(fontsize=7)
    if axes.notes:
        ax.text(0, -0.16, "\n".join(axes.notes), transform=ax.transAxes, fontsize=7, color="#666", va="top")
    return fig


def _mpl_axes_style(ax: Any, axes: ChartAxes, xs: Sequence[float]) -> None:
    """Log scales with plain-number ticks, reversed x and a light grid, as ``axes`` asks."""
    if axes.xlog:
        ax.set_xscale("log")
        plain_log_ticks(ax, xs)
    elif xs and all(float(v).is_integer() for v in xs):  # steps: whole-number ticks
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if axes.ylog:
        log_y_ticks(ax)
    if axes.xreverse:
        ax.invert_xaxis()
    ax.grid(True, which="both", alpha=0.25)


def _mpl_panels(lines: Sequence[ChartLine], axes: ChartAxes) -> Any:
    """Small multiples in matplotlib: a panel per ``line.panel``, its lines in colour over the others in grey."""
    from matplotlib.figure import Figure

    panels = list(dict.fromkeys(line.panel for line in lines))
    nrows, ncols = _panel_grid(len(panels))
    fig = Figure(figsize=(4.0 * ncols, 3.1 * nrows + 0.8), layout="constrained")
    grid = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    xs = sorted({v for line in lines for v in line.x})
    for k, ax in enumerate(grid.flat):
        if k >= len(panels):
            ax.axis("off")
            continue
        for line in lines:
            if line.panel != panels[k] and line.context:
                ax.plot(line.x, line.y, DASHES.get(line.dash, "-"), color=GREY, lw=0.8, zorder=1)
        for line in (ln for ln in lines if ln.panel == panels[k]):
            if line.lo is not None and line.hi is not None and line.lo != line.hi:
                ax.fill_between(line.x, line.lo, line.hi, color=line.color, alpha=0.18, linewidth=0, zorder=2)
            ax.plot(line.x, line.y, DASHES.get(line.dash, "-"), marker="o", ms=3, color=line.color,
                    label=line.name, zorder=3)  # fmt: skip
        ax.set_title(panels[k], fontsize=10)
        ax.legend(fontsize=7)
        _mpl_axes_style(ax, axes, xs)
        if k % ncols == 0:
            ax.set_ylabel(axes.ylabel, fontsize=9)
        if k // ncols == nrows - 1 or k + ncols >= len(panels):
            ax.set_xlabel(axes.xlabel, fontsize=9)
    fig.suptitle(axes.title, fontsize=12)
    if axes.notes:
        fig.supxlabel("\n".join(axes.notes), fontsize=7, color="#666")
    return fig


def render(lines: Sequence[ChartLine], axes: ChartAxes, backend: str, **extra: Any) -> Any:
    """The chart in ``backend``; a plotly figure remembers how to draw its matplotlib twin."""
    if backend not in BACKENDS:
        raise SdlabError(f"unknown backend {backend!r}", backend=backend, hint=closest(backend, BACKENDS))
    strip = extra.pop("strip", ())
    if backend == "matplotlib":
        return mpl_figure(lines, axes, strip=strip, **extra)
    return set_twin(plotly_figure(lines, axes, **extra), lambda: mpl_figure(lines, axes, strip=strip, **extra))


def set_twin(fig: Any, build: Callable[[], Any]) -> Any:
    """Remember ``build`` (no arguments, returns a matplotlib figure) as the plotly figure's matplotlib twin."""
    setattr(fig, _TWIN, build)
    return fig


def mpl_twin(fig: Any) -> Any:
    """The matplotlib twin of a plotly chart made here, drawn now; None for other figures."""
    build = getattr(fig, _TWIN, None) if type(fig).__module__.startswith("plotly") else None
    return build() if build is not None else None


def slider_figure(lines: Sequence[ChartLine], axes: ChartAxes, frames: Sequence[np.ndarray]) -> Any:
    """Curves (left) and the image at the slider's step (right), one plotly frame per step."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, column_widths=[0.64, 0.36], horizontal_spacing=0.1)
    for line in plotly_figure(lines, ChartAxes("", "", "")).data:
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
