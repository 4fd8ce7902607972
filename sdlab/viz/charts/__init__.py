"""Charts that sit next to the images they summarise: hover a point and see its image.

>>> import sdlab.experiments as X, sdlab.viz.charts as C
>>> res = X.convergence(["Euler", "DPM++ 2M"], steps=(5, 10, 20), seeds=[0, 1])
>>> fig = C.convergence_chart(res.table, images=res.images)   # a plotly Figure, thumbnails in its customdata
>>> C.show_chart(fig)                                         # Jupyter: FigureWidget + linked image panel
>>> C.save_figure(fig, "figures/convergence")                 # convergence.html (+ plotly.min.js) and .png

Every chart takes the experiments' long-format tables (one row per image x step x metric; columns ``sampler``,
``schedule``, ``steps``, ``seed``, ``step``, ``sigma``, ``metric``, ``value``, ``nfe``, ``comparison``,
``image`` ...; see :mod:`sdlab.experiments`) and, optionally, ``images``: ``{name: image}`` for the names in the
``image`` column (images in [0, 1], any form :mod:`sdlab.viz.images` takes). Each point then carries a small PNG
thumbnail of its image (``customdata[0]``, a data URL) and shows it when hovered.

Backends: ``backend="plotly"`` (default) returns a ``plotly.graph_objects.Figure`` that also knows its matplotlib
twin; ``backend="matplotlib"`` returns that twin, a ``matplotlib.figure.Figure`` for print. :func:`show_chart`
displays a chart interactively where ipywidgets render (a ``FigureWidget`` with hover or slider handlers) and
always carries a static fallback (plotly HTML whose small script swaps the hovered image in, plus a PNG) for
viewers without widgets. :func:`save_figure` writes ``.html`` and ``.png``; the PNG comes from the matplotlib
twin, because plotly's own ``write_image`` needs kaleido and a Chrome browser.

Many samplers are drawn as small multiples: a panel per sampler family, the other samplers in grey behind it
(``panels="auto"``: above six samplers). Each sampler keeps its :func:`~sdlab.viz.palette.sampler_color`.

Modules: :mod:`~sdlab.viz.charts.compare` (charts that compare runs), :mod:`~sdlab.viz.charts.steps` (one run
step by step), :mod:`~sdlab.viz.charts.orders` (orders of accuracy against theory), :mod:`~sdlab.viz.charts.show`
(modes, display, export), :mod:`~sdlab.viz.charts.series` and :mod:`~sdlab.viz.charts.render` (chart-neutral
series and the two backends). Colours: :mod:`sdlab.viz.palette`.
plotly, ipywidgets and matplotlib are imported inside the functions (``pip install "sdlab[notebooks]"``).
"""

from __future__ import annotations

from sdlab.viz.charts.compare import (
    convergence_chart,
    cost_quality_chart,
    divergence_chart,
    schedule_chart,
    stability_chart,
)
from sdlab.viz.charts.orders import order_chart
from sdlab.viz.charts.render import BACKENDS, DASHES
from sdlab.viz.charts.series import PANELS, SIMILARITIES, THUMB_SIZE
from sdlab.viz.charts.show import (
    CHART_MODES,
    HOVER_IMAGE_JS,
    MODE_ENV,
    PLOTLYJS_ENV,
    chart_mode,
    interactive,
    live_widgets,
    save_figure,
    set_chart_mode,
    show_chart,
    write_plotlyjs,
)
from sdlab.viz.charts.steps import delta_chart, trajectory_table
from sdlab.viz.palette import PALETTE

# the charts in teaching order; showing and saving them; the constants
__all__ = ["schedule_chart", "convergence_chart", "delta_chart", "stability_chart", "divergence_chart"]
__all__ += ["cost_quality_chart", "order_chart", "trajectory_table"]
__all__ += ["show_chart", "save_figure", "write_plotlyjs", "interactive", "set_chart_mode", "chart_mode"]
__all__ += ["live_widgets"]
__all__ += ["CHART_MODES", "HOVER_IMAGE_JS", "MODE_ENV", "PLOTLYJS_ENV", "BACKENDS", "DASHES", "PANELS"]
__all__ += ["SIMILARITIES", "THUMB_SIZE", "PALETTE"]
