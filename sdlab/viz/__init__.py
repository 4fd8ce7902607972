"""Pictures of sdlab's results: images in any form, strips and grids, charts beside their images, one palette.

>>> import sdlab, sdlab.viz as V
>>> result = sdlab.generate("a red circle above a blue square, sunset sky", seeds=[0, 1, 2])
>>> V.image_strip(result.images, titles=["seed 0", "seed 1", "seed 2"], scale=2)   # a PIL image
>>> res = sdlab.experiments.convergence(["Euler", "DPM++ 2M"], steps=(5, 10, 20), seeds=[0, 1])
>>> V.show_chart(V.convergence_chart(res.table, images=res.images))               # hover a point: its image
>>> V.sampler_color("DPM++ 2M")                                                   # the same in every chart

Modules: :mod:`~sdlab.viz.images` (the one normaliser; PNG bytes and data URLs), :mod:`~sdlab.viz.display`
(strips, grids, HTML), :mod:`~sdlab.viz.charts` (plotly charts with matplotlib twins), :mod:`~sdlab.viz.mpl`
(the shared matplotlib helpers), :mod:`~sdlab.viz.palette` (a colour per sampler) and
:mod:`~sdlab.viz.groundtruth` (pictures of the ground-truth experiments). plotly, matplotlib and ipywidgets are
imported inside the functions that draw (``pip install "sdlab[notebooks]"``).
"""

from __future__ import annotations

from sdlab.viz.charts import (
    chart_mode,
    convergence_chart,
    cost_quality_chart,
    delta_chart,
    divergence_chart,
    interactive,
    order_chart,
    save_figure,
    schedule_chart,
    set_chart_mode,
    show_chart,
    stability_chart,
    trajectory_table,
)
from sdlab.viz.display import (
    grid_from_table,
    image_grid,
    image_strip,
    images_from_table,
    save_image,
    show_image,
    show_images,
)
from sdlab.viz.images import (
    image_data_url,
    png_bytes,
    png_data_url,
    thumbnail_url,
    to_images,
    to_pil,
    to_uint8,
    upscale,
)
from sdlab.viz.palette import FAMILIES, PALETTE, sampler_color, sampler_family

# in teaching order: images in and out; strips and grids; charts; colours
__all__ = ["to_uint8", "to_pil", "to_images", "upscale", "png_bytes", "png_data_url", "image_data_url"]
__all__ += ["thumbnail_url", "image_strip", "image_grid", "grid_from_table", "images_from_table", "save_image"]
__all__ += ["show_images", "show_image", "schedule_chart", "convergence_chart", "cost_quality_chart"]
__all__ += ["divergence_chart", "stability_chart", "delta_chart", "order_chart", "trajectory_table", "show_chart"]
__all__ += ["save_figure", "interactive", "set_chart_mode", "chart_mode", "sampler_color", "sampler_family"]
__all__ += ["PALETTE", "FAMILIES"]
