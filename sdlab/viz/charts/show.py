"""Showing and saving charts: the chart mode (widgets, static HTML + PNG, or nothing), :func:`show_chart`,
:func:`interactive` widgets with a hovered-image panel, and :func:`save_figure` (``.html`` and ``.png``).

Every displayed chart carries a static fallback (plotly HTML whose small script swaps the hovered image in,
plus a PNG from the matplotlib twin) for viewers without widgets. plotly, ipywidgets, IPython and matplotlib are
imported inside the functions.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from sdlab.errors import SdlabError, closest
from sdlab.viz.charts.render import mpl_twin
from sdlab.viz.mpl import figure_png, save_png

__all__ = [
    "show_chart",
    "save_figure",
    "interactive",
    "set_chart_mode",
    "chart_mode",
    "live_widgets",
    "CHART_MODES",
    "HOVER_IMAGE_JS",
    "MODE_ENV",
    "PLOTLYJS_ENV",
    "write_plotlyjs",
]

CHART_MODES = ("auto", "widget", "static", "none")
MODE_ENV = "SDLAB_CHARTS"  # "widget", "static" or "none" overrides the mode (the notebook runner sets "static")
PLOTLYJS_ENV = "SDLAB_PLOTLYJS"  # default ``plotlyjs`` of save_figure (the notebook runner: one shared copy)

_CONFIG = {"mode": "auto"}

# Runs in the exported HTML after the plot is drawn: an image panel beside the plot shows the hovered point's
# thumbnail (the first customdata entry that is a PNG data URL, or the id of an <img> on the page, where a page
# keeps each image once). Before the first hover it shows the last point of the first line that has one.
HOVER_IMAGE_JS = """
(function () {
  var gd = document.getElementById('{plot_id}');
  if (!gd || !gd.on) { return; }
  function source(cd) {
    cd = Array.isArray(cd) ? cd : [cd];
    for (var i = 0; i < cd.length; i++) {
      var v = cd[i];
      if (typeof v !== 'string') { continue; }
      if (v.indexOf('data:image') === 0) { return v; }
      var el = v.indexOf('sdlab-img-') === 0 ? document.getElementById(v) : null;
      if (el && el.src) { return el.src; }
    }
    return null;
  }
  var wrap = gd.parentNode;
  wrap.style.display = 'flex';
  wrap.style.alignItems = 'flex-start';
  var panel = document.createElement('div');
  panel.style.cssText = 'flex:0 0 auto;width:200px;margin:40px 0 0 8px;font:13px sans-serif;color:#333';
  var img = document.createElement('img');
  img.style.cssText = 'width:192px;height:192px;image-rendering:pixelated;border:1px solid #ddd;display:none';
  var label = document.createElement('div');
  label.textContent = 'hover a point to see its image';
  panel.appendChild(img);
  panel.appendChild(label);
  wrap.appendChild(panel);
  function show(src, text) {
    img.src = src;
    img.style.display = 'block';
    label.textContent = text;
  }
  function first() {
    for (var t = 0; t < gd.data.length; t++) {
      var d = gd.data[t], n = d.customdata ? d.customdata.length : 0, src = n ? source(d.customdata[n - 1]) : null;
      if (src) { show(src, (d.name || '') + ' @ ' + d.x[n - 1] + ' (hover a point for its image)'); return; }
    }
  }
  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', first); } else { first(); }
  if (window.Plotly && Plotly.Plots) { Plotly.Plots.resize(gd); }
  gd.on('plotly_hover', function (ev) {
    var p = ev.points && ev.points[0];
    var src = p && p.customdata ? source(p.customdata) : null;
    if (src) { show(src, (p.data.name || '') + ' @ ' + p.x); }
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


def live_widgets(static: bool | None = None) -> Any:
    """The ``ipywidgets`` module when a function should show live widgets, else None (show static output):
    ``static=None`` asks :func:`chart_mode` (not ``"widget"`` under papermill or outside a kernel); None too when
    ipywidgets is missing. The one rule every widget of sdlab follows."""
    if static is None:
        static = chart_mode() != "widget"
    if static:
        return None
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


# ---------------------------------------------------------------------------------------------------------------
# display and export


def _trace_has_thumbs(trace: Any) -> bool:
    custom = getattr(trace, "customdata", None)
    return custom is not None and any(
        isinstance(c, (list, tuple, np.ndarray)) and len(c) and str(c[0]).startswith("data:image") for c in custom
    )


def _has_thumbs(fig: Any) -> bool:
    return any(_trace_has_thumbs(trace) for trace in fig.data)


def _is_plotly(fig: Any) -> bool:
    return type(fig).__module__.startswith("plotly")


def _is_mpl(fig: Any) -> bool:
    return type(fig).__module__.startswith("matplotlib")


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
    image = widgets.Image(format="png", width=192, height=192, layout=widgets.Layout(border="1px solid #ddd"))
    image.add_class("sdlab-pixelated")
    label = widgets.Label("hover a point to see its image")
    handler = _hover_handler(image, label)
    first = next(t for t in widget.data if _trace_has_thumbs(t))
    last = len(first.customdata) - 1
    handler(first, SimpleNamespace(point_inds=[last], xs=[first.x[last]]), None)  # an image before any hover
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
        twin = mpl_twin(fig)
        if twin is not None:
            bundle["image/png"] = base64.b64encode(figure_png(twin)).decode("ascii")
    display(bundle, raw=True)


def _plotlyjs_for(html_path: Path, plotlyjs: str | bool | None) -> str | bool:
    """plotly's ``include_plotlyjs`` for one file; a relative ``.js`` path gets its copy of plotly.js written."""
    if plotlyjs is None:
        plotlyjs = os.environ.get(PLOTLYJS_ENV) or "directory"
    if isinstance(plotlyjs, str) and plotlyjs.endswith(".js") and "://" not in plotlyjs:
        target = (html_path.parent / plotlyjs).resolve()
        if not target.exists():
            write_plotlyjs(target.parent, name=target.name)
    return plotlyjs


def write_plotlyjs(folder: str | Path, *, name: str = "plotly.min.js") -> Path:
    """Copy the installed plotly's ``plotly.min.js`` into ``folder`` (created) unless the same file is there, so
    that saved charts and ``report.html`` beside it work offline; returns its path. The file is a build product
    (4.6 MB), kept out of git: ``make install`` writes it into ``figures/``."""
    from plotly.offline import get_plotlyjs

    target = Path(folder) / name
    text = get_plotlyjs()
    if not target.is_file() or target.stat().st_size != len(text.encode("utf-8")):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return target


def save_figure(
    fig: Any, path: str | Path, *, plotlyjs: str | bool | None = None, png: bool = True, dpi: int = 130
) -> list[Path]:
    """Write a chart as ``<path>.html`` and ``<path>.png`` (folders created); returns the paths written.

    A plotly figure: the HTML keeps it interactive (hover images included). ``plotlyjs``: ``"directory"``
    (default) writes one shared ``plotly.min.js`` beside it, so the folder works offline; a relative path ending
    in ``.js`` (``"../plotly.min.js"``) links that file, written there once; ``True`` inlines plotly.js (4.8 MB
    per file); ``"cdn"`` links the CDN. Env ``SDLAB_PLOTLYJS`` changes the default (the notebook runner sets
    ``../plotly.min.js``: one copy for all of ``figures/``). The PNG comes from the chart's matplotlib twin, in
    256 colours (:func:`~sdlab.viz.mpl.small_png`); a plotly figure without one is written with plotly's
    ``write_image`` when kaleido (and the Chrome it needs) is installed, else without PNG. A matplotlib figure:
    the PNG only. A trailing ``.html`` or ``.png`` in ``path`` is ignored.
    """
    path = Path(path)
    if path.suffix.lower() in (".html", ".png"):
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if _is_mpl(fig):
        save_png(fig, path.with_suffix(".png"), dpi=dpi, crop=False)
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
        twin = mpl_twin(fig)
        if twin is not None:
            save_png(twin, png_path, dpi=dpi, crop=False)
            written.append(png_path)
        else:
            try:
                fig.write_image(png_path)
                written.append(png_path)
            except Exception as e:  # kaleido missing, or no Chrome for it: several exception types
                import warnings

                warnings.warn(f"no PNG for {path.name}: plotly's write_image failed ({e})", stacklevel=2)
    return written
