"""Show images in notebooks: image strips and labelled grids, grids from experiment tables, PNG files, HTML.

>>> import sdlab, sdlab.viz.display as D
>>> result = sdlab.generate("a red circle above a blue square, sunset sky", seeds=[0, 1, 2])
>>> D.image_strip(result.images, titles=["seed 0", "seed 1", "seed 2"], scale=2)   # a PIL image
>>> D.show_images({"seed 0": result.images[0], "seed 1": result.images[1]})        # in Jupyter

Every function takes images in any form :mod:`sdlab.viz.images` normalises (tensors channels first, numpy arrays
channels last, PIL images, lists, ``{title: image}`` dicts; floats in ``value_range``, default (0, 1), uint8 in
[0, 255]). Small images (the embedded model makes 64x64) are enlarged by an integer ``scale`` with
nearest-neighbour sampling, so pixels stay sharp.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdlab.errors import SdlabError
from sdlab.viz.images import ValueRange, check_scale, is_single_image, png_bytes, png_data_url, to_images, to_pil

__all__ = [
    "image_strip",
    "image_grid",
    "grid_from_table",
    "images_from_table",
    "save_image",
    "show_images",
    "show_image",
    "show_grid",
    "DISPLAY_SIZE",
]

_PAD = 2  # pixels between images in strips and grids
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)
_MISSING = (235, 235, 235)  # an empty grid cell
DISPLAY_SIZE = 192  # pixels: the least an image's shorter side is shown at in HTML (a 64 px image at 3x)


# ---------------------------------------------------------------------------------------------------------------
# strips and grids


def _font(size: int = 12) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _text_size(text: str, font: Any) -> tuple[int, int]:
    from PIL import Image, ImageDraw

    if not text:
        return 0, 0
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).multiline_textbbox((0, 0), text, font=font)
    return box[2], box[3]  # from the drawing origin: glyphs start below it


def _wrap(text: str, width: int, font: Any) -> str:
    """Break ``text`` on spaces so each line fits ``width`` pixels where it can (long words stay whole)."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and _text_size(trial, font)[0] > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return "\n".join(lines)


def _draw_text(canvas: Any, xy: tuple[int, int], text: str, font: Any, *, anchor_center: int | None = None) -> None:
    """Draw ``text`` at ``xy`` (top left), or centred horizontally in a box of width ``anchor_center``."""
    from PIL import ImageDraw

    if not text:
        return
    draw = ImageDraw.Draw(canvas)
    x, y = xy
    if anchor_center is not None:
        x += max(0, (anchor_center - _text_size(text, font)[0]) // 2)
    draw.multiline_text((x, y), text, fill=_TEXT, font=font, align="center" if anchor_center else "left")


def _titled(
    images: Any, titles: Sequence[str] | None, value_range: ValueRange | None, caller: str
) -> tuple[list[np.ndarray], list[str] | None]:
    """At least one image as (H, W, 3) uint8 arrays, and one title per image (``titles``, else a dict's keys)."""
    arrays, keys = to_images(images, value_range=value_range)
    if not arrays:
        raise SdlabError(f"{caller} needs at least one image")
    titles = keys if titles is None else [str(t) for t in titles]
    if titles is not None and len(titles) != len(arrays):
        raise SdlabError("one title per image", titles=len(titles), images=len(arrays))
    return arrays, titles


def image_strip(
    images: Any,
    *,
    titles: Sequence[str] | None = None,
    scale: int = 1,
    pad: int = _PAD,
    font_size: int = 12,
    value_range: ValueRange | None = None,
) -> Any:
    """Images side by side in one ``PIL.Image`` (RGB), each enlarged ``scale`` times (nearest), with ``titles``
    above them (a dict's keys by default). Images may differ in size; they are aligned at the top.

    Inputs in any form the module takes: floats in ``value_range`` (default (0, 1)), uint8 in [0, 255].

    >>> strip = image_strip(torch.rand(3, 3, 64, 64), titles=["a", "b", "c"], scale=2)   # 3 images in [0, 1]
    >>> strip.width                                                                     # 3 * 128 + 2 gaps of 2
    388
    """
    from PIL import Image

    check_scale(scale)
    arrays, titles = _titled(images, titles, value_range, "image_strip")
    font = _font(font_size)
    tiles = [a.repeat(scale, axis=0).repeat(scale, axis=1) for a in arrays]
    wrapped = [_wrap(t, tile.shape[1], font) for t, tile in zip(titles, tiles, strict=True)] if titles else None
    title_h = max((_text_size(t, font)[1] for t in wrapped), default=0) + 2 * pad if wrapped else 0
    width = sum(t.shape[1] for t in tiles) + pad * (len(tiles) - 1)
    height = title_h + max(t.shape[0] for t in tiles)
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    x = 0
    for k, tile in enumerate(tiles):
        canvas.paste(Image.fromarray(tile), (x, title_h))
        if wrapped:
            _draw_text(canvas, (x, pad), wrapped[k], font, anchor_center=tile.shape[1])
        x += tile.shape[1] + pad
    return canvas


def _grid_arrays(
    caller: str,
    images: Any,
    row_labels: Sequence[str] | None,
    col_labels: Sequence[str] | None,
    value_range: ValueRange | None,
) -> tuple[list[list[Any]], list[str] | None, list[str] | None]:
    """A grid's cells as one image array each (None for an empty cell) and its row and column labels (given, or
    from the keys), checked: at least one image, one label per row and column, one image per cell."""
    cells, rows_from_keys, cols_from_keys = _grid_cells(images)
    rows = rows_from_keys if row_labels is None else [str(r) for r in row_labels]
    cols = cols_from_keys if col_labels is None else [str(c) for c in col_labels]
    n_cols = max((len(r) for r in cells), default=0)
    if not cells or not n_cols:
        raise SdlabError(f"{caller} needs at least one image")
    if rows is not None and len(rows) != len(cells):
        raise SdlabError("one row label per row", row_labels=len(rows), rows=len(cells))
    if cols is not None and len(cols) != n_cols:
        raise SdlabError("one column label per column", col_labels=len(cols), columns=n_cols)
    arrays = [[None if c is None else to_images(c, value_range=value_range)[0] for c in row] for row in cells]
    for r, row in enumerate(arrays):
        for c, a in enumerate(row):
            if a is not None and len(a) != 1:
                raise SdlabError("each grid cell takes one image", row=r, column=c, images=len(a))
    return arrays, rows, cols


def _grid_cells(images: Any) -> tuple[list[list[Any]], list[str] | None, list[str] | None]:
    """Rows of cells (None = empty) and the row / column labels a dict layout implies."""
    if isinstance(images, Mapping):
        if images and all(isinstance(k, tuple) and len(k) == 2 for k in images):  # {(row, col): image}
            rows = list(dict.fromkeys(k[0] for k in images))
            cols = list(dict.fromkeys(k[1] for k in images))
            cells = [[images.get((r, c)) for c in cols] for r in rows]
            return cells, [str(r) for r in rows], [str(c) for c in cols]
        if images and all(isinstance(v, Mapping) for v in images.values()):  # {row: {col: image}}
            rows = list(images)
            cols = list(dict.fromkeys(c for v in images.values() for c in v))
            cells = [[images[r].get(c) for c in cols] for r in rows]
            return cells, [str(r) for r in rows], [str(c) for c in cols]
        raise SdlabError(
            "a grid dict must be {row: {col: image}} or {(row, col): image}",
            hint="or pass a list of rows (each a list or a batch of images)",
        )
    if isinstance(images, (list, tuple)):
        return [_row(r) for r in images], None, None
    if type(images).__module__.startswith("torch") and images.ndim == 5:  # (rows, cols, C, H, W)
        return [list(r) for r in images], None, None
    raise SdlabError(
        "image_grid takes a list of rows, {row: {col: image}}, {(row, col): image} or a (rows, cols, C, H, W) tensor",
        type=type(images).__name__,
    )


def _row(row: Any) -> list[Any]:
    if isinstance(row, Mapping):
        raise SdlabError("grid rows as dicts need the {row: {col: image}} form")
    if isinstance(row, (list, tuple)):
        return list(row)
    if is_single_image(row):
        return [row]
    if getattr(row, "ndim", None) == 4:  # a batch: its images, left unconverted (value_range applies later)
        return list(row)
    raise SdlabError("a grid row must be a list or a batch of images", type=type(row).__name__)


def image_grid(
    images: Any,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    scale: int = 2,
    pad: int = _PAD,
    font_size: int = 12,
    title: str | None = None,
    value_range: ValueRange | None = None,
) -> Any:
    """A labelled grid of images in one ``PIL.Image`` (RGB): row labels on the left, column labels on top.

    ``images``: a list of rows (each a list or a batch of images; None leaves a cell empty),
    ``{row: {col: image}}`` or ``{(row, col): image}`` (labels from the keys, missing cells empty) or a
    ``(rows, cols, C, H, W)`` tensor. Every image is enlarged ``scale`` times (nearest); cells take the largest
    image's size. Inputs: floats in ``value_range`` (default (0, 1)), uint8 in [0, 255].

    >>> grid = image_grid({"Euler": {10: a, 20: b}, "Heun": {10: c, 20: d}}, scale=2)   # samplers x steps
    """
    from PIL import Image

    check_scale(scale)
    arrays, row_labels, col_labels = _grid_arrays("image_grid", images, row_labels, col_labels, value_range)
    n_rows, n_cols = len(arrays), max(len(r) for r in arrays)
    tiles = [[None if a is None else a[0].repeat(scale, 0).repeat(scale, 1) for a in row] for row in arrays]
    cell_h = max(t.shape[0] for row in tiles for t in row if t is not None)
    cell_w = max(t.shape[1] for row in tiles for t in row if t is not None)
    font = _font(font_size)
    cols_txt = [_wrap(c, cell_w, font) for c in col_labels] if col_labels else None
    rows_txt = [_wrap(r, max(cell_w, 160), font) for r in row_labels] if row_labels else None
    title_h = _text_size(title, font)[1] + 3 * pad if title else 0
    top = title_h + (max(_text_size(t, font)[1] for t in cols_txt) + 2 * pad if cols_txt else 0)
    left = max(_text_size(t, font)[0] for t in rows_txt) + 3 * pad if rows_txt else 0
    width = left + n_cols * cell_w + (n_cols - 1) * pad
    height = top + n_rows * cell_h + (n_rows - 1) * pad
    canvas = Image.new("RGB", (max(width, _text_size(title or "", font)[0]), height), _BACKGROUND)
    if title:
        _draw_text(canvas, (0, pad), title, font, anchor_center=canvas.width)
    for c in range(n_cols):
        if cols_txt:
            _draw_text(canvas, (left + c * (cell_w + pad), title_h + pad), cols_txt[c], font, anchor_center=cell_w)
    for r, row in enumerate(tiles):
        y = top + r * (cell_h + pad)
        if rows_txt:
            text_h = _text_size(rows_txt[r], font)[1]
            _draw_text(canvas, (pad, y + max(0, (cell_h - text_h) // 2)), rows_txt[r], font)
        for c in range(n_cols):
            x = left + c * (cell_w + pad)
            tile = row[c] if c < len(row) else None
            if tile is None:
                canvas.paste(Image.new("RGB", (cell_w, cell_h), _MISSING), (x, y))
            else:
                canvas.paste(Image.fromarray(tile), (x, y))
    return canvas


def grid_from_table(
    table: Any,
    images: Mapping[str, Any],
    *,
    rows: str = "sampler",
    cols: str = "steps",
    seed: int | None = None,
    scale: int = 2,
    title: str | None = None,
) -> Any:
    """A labelled ``rows`` x ``cols`` grid (``PIL.Image``) of the images an experiment table names.

    ``table``: a long-format table with an ``image`` column naming entries of ``images`` (as
    :class:`sdlab.experiments.ExperimentResult` has them, images (3, H, W) in [0, 1]); rows and columns follow
    the table's order. ``seed`` picks one seed (default: the first in the table).

    >>> res = sdlab.experiments.convergence(["Euler", "Heun"], steps=(5, 10), seeds=[0])
    >>> grid_from_table(res.table, res.images, rows="sampler", cols="steps")
    """
    for column in ("image", rows, cols):
        if column not in table.columns:
            raise SdlabError(f"the table has no {column!r} column", columns=list(table.columns)[:12])
    frame = table[table["image"].isin(list(images))]
    if seed is None and "seed" in frame.columns and len(frame):
        seed = frame["seed"].iloc[0]
    if seed is not None and "seed" in frame.columns:
        frame = frame[frame["seed"] == seed]
    if frame.empty:
        raise SdlabError("no table rows name an image in `images`", seed=seed, hint="pass the experiment's .images")
    frame = frame.drop_duplicates([rows, cols])
    cells = {(r, c): images[name] for r, c, name in zip(frame[rows], frame[cols], frame["image"], strict=True)}
    col_order = sorted(dict.fromkeys(frame[cols])) if frame[cols].dtype.kind in "iuf" else None
    row_keys = list(dict.fromkeys(frame[rows]))
    col_keys = col_order or list(dict.fromkeys(frame[cols]))
    grid = {r: {c: cells.get((r, c)) for c in col_keys} for r in row_keys}
    col_labels = [f"{c} {cols}" if isinstance(c, (int, np.integer)) else str(c) for c in col_keys]
    title = title if title is not None else (f"seed {seed}" if seed is not None else None)
    return image_grid(grid, col_labels=col_labels, scale=scale, title=title)


def images_from_table(
    table: Any, images: Mapping[str, Any], *, label: str = "variant", where: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``{label: image}`` for the rows of an experiment table (first row per label, in table order), e.g.
    ``image_strip(images_from_table(res.table, res.images, label="variant"))``. ``where`` keeps rows whose
    columns equal the given values (``{"comparison": "rng_source"}``)."""
    for column in ("image", label, *(where or {})):
        if column not in table.columns:
            raise SdlabError(f"the table has no {column!r} column", columns=list(table.columns)[:12])
    frame = table
    for column, value in (where or {}).items():
        frame = frame[frame[column] == value]
    frame = frame[frame["image"].isin(list(images))].drop_duplicates(label)
    return {str(k): images[name] for k, name in zip(frame[label], frame["image"], strict=True)}


def save_image(image: Any, path: Any, *, value_range: ValueRange | None = None) -> Any:
    """Write one image (a strip, a grid, a tensor ...) as a PNG at ``path`` (folders created) and return it as a
    ``PIL.Image``, so one notebook line saves and shows it. Value ranges as :func:`~sdlab.viz.images.to_uint8`."""
    pil = to_pil(image, value_range=value_range)
    if isinstance(pil, list):
        raise SdlabError("save_image takes one image", images=len(pil), hint="make a strip or grid first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path)
    return pil


# ---------------------------------------------------------------------------------------------------------------
# HTML and Jupyter


def _auto_scale(arrays: Sequence[np.ndarray], target: int = DISPLAY_SIZE) -> int:
    """The integer scale that makes the smallest image's shorter side at least ``target`` pixels (at most 8)."""
    side = min(min(a.shape[:2]) for a in arrays)
    return int(min(8, max(1, math.ceil(target / max(1, side)))))


def _html_images(arrays: Sequence[np.ndarray], titles: Sequence[str] | None, scale: int, columns: int | None) -> str:
    cells = []
    for k, a in enumerate(arrays):
        src = png_data_url(png_bytes(a))
        h, w = a.shape[:2]
        caption = f"<div style='text-align:center;font-size:12px'>{html.escape(titles[k])}</div>" if titles else ""
        cells.append(
            "<div style='display:inline-block;margin:2px;vertical-align:top'>"
            f"{caption}<img src='{src}' width='{w * scale}' height='{h * scale}' "
            "style='image-rendering:crisp-edges;image-rendering:pixelated'></div>"
        )
    if columns:
        rows = ["<div>" + "".join(cells[i : i + columns]) + "</div>" for i in range(0, len(cells), columns)]
        return "<div class='sdlab-images'>" + "".join(rows) + "</div>"
    return "<div class='sdlab-images'>" + "".join(cells) + "</div>"


def _display_html(text: str) -> None:
    """Show HTML where IPython runs (a notebook, IPython); do nothing in a plain Python process."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(HTML(text))


def show_images(
    images: Any,
    *,
    titles: Sequence[str] | None = None,
    scale: int | None = None,
    columns: int | None = None,
    value_range: ValueRange | None = None,
    return_html: bool = False,
) -> str | None:
    """Show images in a row (or ``columns`` per row) in Jupyter, as PNG ``<img>`` tags enlarged ``scale`` times
    with sharp pixels (default: enough that a 64x64 image is 192 px). Titles from ``titles`` or a dict's keys.

    Inputs in any form the module takes: floats in ``value_range`` (default (0, 1)), uint8 in [0, 255].
    ``return_html=True`` returns the HTML instead of displaying it (for tests and for pages).
    """
    arrays, titles = _titled(images, titles, value_range, "show_images")
    if scale is None:
        scale = _auto_scale(arrays)
    check_scale(scale)
    text = _html_images(arrays, titles, scale, columns)
    if return_html:
        return text
    _display_html(text)
    return None


def show_image(
    image: Any,
    *,
    title: str | None = None,
    scale: int | None = None,
    value_range: ValueRange | None = None,
    return_html: bool = False,
) -> str | None:
    """Show one image (a strip or grid too) in Jupyter; see :func:`show_images`."""
    return show_images(
        [image], titles=None if title is None else [title], scale=scale, value_range=value_range,
        return_html=return_html,
    )  # fmt: skip


_GRID_CSS = (
    "<style>.sdlab-grid{border-collapse:separate;border-spacing:3px;font:13px sans-serif;color:#222}"
    ".sdlab-grid th{font-weight:normal;padding:2px 4px;text-align:center;vertical-align:middle}"
    ".sdlab-grid td{padding:0;border:3px solid transparent}.sdlab-grid td.sdlab-pick{border-color:#d62728}"
    ".sdlab-grid img{display:block;image-rendering:crisp-edges;image-rendering:pixelated}"
    ".sdlab-grid caption{font-weight:bold;padding:2px}</style>"
)


def show_grid(
    images: Any,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    scale: int | None = None,
    highlight: tuple[int, int] | None = None,
    value_range: ValueRange | None = None,
    return_html: bool = False,
) -> str | None:
    """Show a labelled grid in Jupyter as an HTML table: each image enlarged ``scale`` times with sharp pixels
    (default: its shorter side at least 192 px), labels and ``title`` as text at display size rather than drawn
    into the pixels. ``highlight=(row, column)`` (indices) outlines one cell.

    ``images`` in the forms :func:`image_grid` takes (a list of rows, ``{row: {col: image}}``,
    ``{(row, col): image}`` or a ``(rows, cols, C, H, W)`` tensor; None leaves a cell empty).
    ``return_html=True`` returns the HTML instead of displaying it.

    >>> html = show_grid({"seed 0": {"step 6": a, "step 7": b}}, return_html=True)   # 64 px images at 192 px
    """
    arrays, row_labels, col_labels = _grid_arrays("show_grid", images, row_labels, col_labels, value_range)
    n_cols = max(len(r) for r in arrays)
    present = [a[0] for row in arrays for a in row if a is not None]
    if not present:
        raise SdlabError("show_grid needs at least one image")
    scale = _auto_scale(present) if scale is None else scale
    check_scale(scale)
    cell_h = max(a.shape[0] for a in present) * scale
    parts = [_GRID_CSS, "<table class='sdlab-grid'>"]
    if title:
        parts.append(f"<caption>{html.escape(title)}</caption>")
    if col_labels:
        corner = "<th></th>" if row_labels else ""
        parts.append("<tr>" + corner + "".join(f"<th>{html.escape(c)}</th>" for c in col_labels) + "</tr>")
    for r, row in enumerate(arrays):
        parts.append("<tr>" + (f"<th>{html.escape(row_labels[r])}</th>" if row_labels else ""))
        for c in range(n_cols):
            cell = row[c] if c < len(row) else None
            pick = " class='sdlab-pick'" if highlight is not None and tuple(highlight) == (r, c) else ""
            if cell is None:
                parts.append(f"<td{pick}><div style='height:{cell_h}px;background:#eee'></div></td>")
                continue
            a = cell[0]
            h, w = a.shape[:2]
            src = png_data_url(png_bytes(a))
            parts.append(f"<td{pick}><img src='{src}' width='{w * scale}' height='{h * scale}'></td>")
        parts.append("</tr>")
    parts.append("</table>")
    text = "".join(parts)
    if return_html:
        return text
    _display_html(text)
    return None
