"""From long-format tables to chart-neutral series: the lines, bars and axes every chart is drawn from, by either
backend (:mod:`sdlab.viz.charts.render`), and the table helpers the charts share.

A :class:`ChartLine` is one series: x, y (the median over seeds), an optional min-max band, a colour and dash,
and per point a PNG thumbnail data URL and hover text. :func:`summarise` makes those from the rows of one
series; :func:`image_thumbs` turns the ``image`` column's names into thumbnails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sdlab.errors import SdlabError, closest
from sdlab.measure.metrics import HIGHER_IS_CLOSER
from sdlab.viz.images import thumbnail_url
from sdlab.viz.palette import FAMILIES, PALETTE, sampler_family

__all__ = [
    "ChartLine",
    "ChartBar",
    "ChartAxes",
    "SIMILARITIES",
    "THUMB_SIZE",
    "need_columns",
    "metric_rows",
    "final_rows",
    "group_columns",
    "image_thumbs",
    "summarise",
    "series_label",
    "fmt_value",
    "PANELS",
    "panel_of",
    "by_panel",
]

SIMILARITIES = HIGHER_IS_CLOSER | {"identical"}  # higher is closer: linear axes
THUMB_SIZE = 128  # largest side of a hover thumbnail, in pixels (64x64 images stay 64x64)


@dataclass
class ChartLine:
    """One series of a line chart (a band across seeds where ``lo`` and ``hi`` are given)."""

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
    panel: str = ""  # small multiples: the panel this line is drawn in colour (grey in the others)
    context: bool = True  # small multiples: drawn in grey behind the other panels' lines


@dataclass
class ChartBar:
    """One bar of a horizontal bar chart, with its text, thumbnail and hover group."""

    label: str
    value: float
    color: str
    text: str
    thumb: str = ""
    group: str = ""


@dataclass
class ChartAxes:
    """Title, axis labels and scales of a chart, and notes printed under it."""

    title: str
    xlabel: str
    ylabel: str
    xlog: bool = False
    ylog: bool = False
    xreverse: bool = False
    notes: list[str] = field(default_factory=list)


def need_columns(table: pd.DataFrame, columns: Sequence[str], chart: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise SdlabError(f"{chart} takes a pandas DataFrame", type=type(table).__name__, hint="pass result.table")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SdlabError(
            f"{chart} needs column(s) {', '.join(missing)}",
            columns=list(table.columns)[:16],
            hint="pass the long-format table of an sdlab.experiments result",
        )


def metric_rows(table: pd.DataFrame, metric: str, chart: str) -> pd.DataFrame:
    rows = table[table["metric"] == metric]
    if rows.empty:
        have = sorted(table["metric"].dropna().unique().tolist())
        raise SdlabError(f"no rows for metric {metric!r}", chart=chart, hint=closest(metric, have) if have else None)
    return rows


def image_thumbs(names: Sequence[Any], images: Mapping[str, Any] | None) -> list[str] | None:
    """A thumbnail data URL for each image name ("" where there is none), or None without images."""
    if not images:
        return None
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


def fmt_value(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else str(v)


def summarise(
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
        texts.append(f"{n} seed{'s' if n != 1 else ''}: min {fmt_value(lo[-1])}, max {fmt_value(hi[-1])}{extra}")
    return xs, ys, lo, hi, image_thumbs(names, images), texts


def series_label(keys: tuple[Any, ...], varying: Sequence[bool]) -> str:
    parts = [str(k) for k, v in zip(keys, varying, strict=True) if v]
    return " / ".join(parts) if parts else str(keys[0])


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows measuring final images against the reference (not the reference against itself)."""
    rows = table
    if "comparison" in rows.columns:
        rows = rows[rows["comparison"] == "reference"]
    if "step" in rows.columns:
        rows = rows[rows["step"] == -1]
    if {"spec_key", "against_key"} <= set(rows.columns):
        rows = rows[rows["spec_key"] != rows["against_key"]]
    return rows


def group_columns(rows: pd.DataFrame, by: Sequence[str]) -> tuple[list[str], list[bool]]:
    cols = [c for c in by if c in rows.columns]
    if not cols:
        raise SdlabError("none of the grouping columns is in the table", by=list(by))
    varying = [rows[c].nunique(dropna=False) > 1 for c in cols]
    if not any(varying):
        varying[0] = True
    return cols, varying


PANELS = ("auto", "family", None)  # small multiples of samplers: "auto" is "family" above six samplers
_AUTO_PANELS = 6


def panel_of(panels: str | None, samplers: Sequence[Any]) -> Callable[[Any], str]:
    """The panel of each sampler: its family, or "" (one chart) as ``panels`` says."""
    if panels not in PANELS:
        raise SdlabError(f"unknown panels {panels!r}", panels=panels, hint="'auto', 'family' or None")
    if panels == "family" or (panels == "auto" and len(set(samplers)) > _AUTO_PANELS):
        return lambda sampler: sampler_family(str(sampler))
    return lambda sampler: ""


def by_panel(lines: list[ChartLine]) -> list[ChartLine]:
    """Lines ordered by panel in :data:`~sdlab.viz.palette.FAMILIES` order (a stable sort: the rest keep theirs)."""
    order = {family: k for k, family in enumerate(FAMILIES)}
    return sorted(lines, key=lambda line: order.get(line.panel, len(order)))
