"""The one palette: a stable colour per sampler across every chart, and colours for other series.

>>> from sdlab.viz.palette import sampler_color, series_colors
>>> sampler_color("DPM++ 2M")            # the same colour in every chart, matplotlib or plotly
'#1f77b4'
>>> sampler_color("dpmpp_2m") == sampler_color("DPM++ 2M Karras") == sampler_color("DPM++ 2M")
True
>>> series_colors(["Karras", "Exponential", "Karras"])      # other series: palette order of first appearance
{'Karras': '#1f77b4', 'Exponential': '#ff7f0e'}

A sampler's colour follows its algorithm's place in the catalogue (:data:`sdlab.samplers.catalogue.SAMPLERS`):
the 20 A1111 samplers, in A1111's menu order, get the 20 colours of :data:`PALETTE` (tab10, then its light
partners, greys replaced); ComfyUI's further algorithms get :data:`EXTRA`'s. A1111 and ComfyUI names of the same
algorithm (``"Euler a"``, ``"euler_ancestral"``, ``"k_euler_a"``) share their colour. Names the catalogue does not know
get a colour picked from their text, the same in every run.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from sdlab.errors import SdlabError
from sdlab.samplers.catalogue import SAMPLERS, resolve_sampler

__all__ = [
    "PALETTE",
    "EXTRA",
    "HIGHLIGHT",
    "GREY",
    "FAMILIES",
    "sampler_color",
    "sampler_family",
    "series_colors",
    "rgba",
    "rgb",
]

# tab10 then its light partners: 20 distinct colours, one per A1111 sampler; no greys (grey is the context behind
# small multiples): tab10's grey is near-black here (Euler), its light grey a magenta (PLMS)
PALETTE: tuple[str, ...] = (
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#222222", "#bcbd22", "#17becf"),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#e7298a", "#dbdb8d", "#9edae5"),
)
# tab20b: the catalogue's further (ComfyUI-only) algorithms, after the 20 A1111 ones
EXTRA: tuple[str, ...] = (
    *("#393b79", "#5254a3", "#6b6ecf", "#9c9ede", "#637939", "#8ca252", "#b5cf6b", "#cedb9c", "#8c6d31", "#bd9e39"),
    *("#e7ba52", "#e7cb94", "#843c39", "#ad494a", "#d6616b", "#e7969c", "#7b4173", "#a55194", "#ce6dbd", "#de9ed6"),
)
HIGHLIGHT = "#d62728"  # tab10 red: what a chart or an image strip marks (the largest jump)
GREY = "#c8c8c8"  # the other samplers behind a small multiple's highlighted few

# the panels of small multiples: each A1111 sampler's family, by sdlab key, in the order the panels are drawn
FAMILIES: dict[str, tuple[str, ...]] = {
    "single-step ODE": ("euler", "heun", "dpm_2", "ddim", "ddim_cfgpp"),
    "multistep ODE": ("dpmpp_2m", "lms", "plms", "unipc"),
    "ancestral": ("euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral"),
    "SDE": ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"),
    "adaptive, restart, LCM": ("dpm_fast", "dpm_adaptive", "restart", "lcm"),
}

_SAMPLER_COLORS = PALETTE + EXTRA
_ORDER = {key: k for k, key in enumerate(SAMPLERS)}  # catalogue order: A1111's menu first


def sampler_color(name: str) -> str:
    """The colour of a sampler, by any of its names (A1111, ComfyUI, ``k_``, sdlab key), as ``"#rrggbb"``."""
    try:
        key = resolve_sampler(name).info.key
    except SdlabError:
        key = None
    index = _ORDER.get(key) if key is not None else None
    if index is None:  # not in the catalogue (a diffusers scheduler, a label like "reference")
        return _SAMPLER_COLORS[zlib.crc32(str(name).encode("utf-8")) % len(_SAMPLER_COLORS)]
    return _SAMPLER_COLORS[index % len(_SAMPLER_COLORS)]


def sampler_family(name: str) -> str:
    """The family (a key of :data:`FAMILIES`) of a sampler by any of its names; ``"other"`` when it has none.

    >>> sampler_family("Euler a"), sampler_family("dpmpp_2m"), sampler_family("reference")
    ('ancestral', 'multistep ODE', 'other')
    """
    try:
        key = resolve_sampler(name).info.key
    except SdlabError:
        return "other"
    return next((family for family, keys in FAMILIES.items() if key in keys), "other")


def series_colors(keys: Iterable[Any], *, samplers: bool = False) -> dict[Any, str]:
    """A colour per distinct key: with ``samplers=True`` each key's :func:`sampler_color`, else the palette in
    order of first appearance (cycling after 20)."""
    distinct = list(dict.fromkeys(keys))
    if samplers:
        return {k: sampler_color(str(k)) for k in distinct}
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(distinct)}


def rgb(hex_color: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` as an (r, g, b) tuple of 0-255 integers (for PIL)."""
    h = hex_color.lstrip("#")
    if len(h) != 6:
        raise SdlabError("a colour must be '#rrggbb'", color=hex_color)
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return r, g, b


def rgba(hex_color: str, alpha: float) -> str:
    """``"#rrggbb"`` with opacity ``alpha`` in [0, 1] as a CSS ``rgba(...)`` string (plotly bands)."""
    r, g, b = rgb(hex_color)
    return f"rgba({r},{g},{b},{alpha})"
