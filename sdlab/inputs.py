"""Checking and normalising what callers pass: whole numbers (not bools), lists (not strings), one string per
image, an image size. Floor 0: each bad value raises one :class:`SdlabError` naming the setting, and nothing is
converted silently (``"512"`` is not a width).

>>> parse_size("512x768")
(512, 768)
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import numpy as np

from sdlab.errors import SdlabError

__all__ = ["integer", "whole", "seed_list", "listed", "parse_size", "per_image"]


def integer(value: Any) -> int | None:
    """``value`` as an int when it is a whole number type (int, NumPy or 0-d integer tensor; not bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def whole(name: str, value: Any, minimum: int, sampler: str, *, hint: str) -> int:
    number = integer(value)
    if number is None or number < minimum:
        raise SdlabError(f"{name} must be an integer >= {minimum}", sampler=sampler, **{name: value}, hint=hint)
    return number


def seed_list(seeds: Any) -> list[Any]:
    """One seed or a list of them (checked one by one later); a string is neither."""
    number = integer(seeds)
    if number is not None or isinstance(seeds, bool):
        return [seeds if number is None else number]
    items = listed(seeds)
    if items is None:
        raise SdlabError(
            "seeds must be an int or a list of ints, one per image", seeds=seeds, hint="e.g. seeds=[1, 2, 3]"
        )
    return items


def listed(value: Any) -> list[Any] | None:
    """The items of a list-like ``value``; None for a string, bytes, a mapping or something that cannot be iterated."""
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        return None
    try:
        return list(value)
    except TypeError:  # a 0-d tensor or array claims to be iterable
        return None


def parse_size(size: Any, *, sampler: str | None = None) -> tuple[int, int] | None:
    """(width, height) from ``size`` = (W, H) or "WxH", positive multiples of 8; None for the model's default."""
    if size is None:
        return None
    if isinstance(size, str):
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise SdlabError("size must look like WIDTHxHEIGHT", size=size, hint="e.g. 512x512") from None
    else:
        values = listed(size) or []
        if len(values) != 2:
            raise SdlabError(
                "size must be (width, height) or 'WIDTHxHEIGHT'", sampler=sampler, size=size, hint="e.g. (512, 512)"
            )
        w, h = (integer(v) for v in values)
        if w is None or h is None:
            raise SdlabError(
                "width and height must be whole numbers of pixels", sampler=sampler, size=size, hint="e.g. (512, 512)"
            )
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        raise SdlabError("width and height must be positive multiples of 8", sampler=sampler, size=f"{w}x{h}")
    return int(w), int(h)


def per_image(value: Any, seeds: list[int], name: str) -> list[str]:
    """One string for every seed, or a list of strings with one per seed."""
    if isinstance(value, str):
        return [value] * len(seeds)
    items = listed(value)
    if items is None:
        raise SdlabError(
            f"{name} must be a string or a list of strings, one per seed",
            **{name: value},
            hint='pass "" for none' if name == "negative_prompt" else 'e.g. "a red cat"',
        )
    value = items
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise SdlabError(f"every {name} must be a string", **{name: bad[0]}, hint="pass one string per seed")
    if len(value) != len(seeds):
        raise SdlabError(f"{name} list must have one entry per seed", **{name: len(value)}, seeds=len(seeds))
    return value
