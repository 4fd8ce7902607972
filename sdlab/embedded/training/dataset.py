"""Procedural captioned scenes: the embedded model's training data, deterministic by seed (numpy + PIL only).

A scene is a sky (day, sunset, night with stars, dawn), a ground (grass, sand, snow, water) and 1-3 objects
(circle, square, triangle, star, house, tree) in 8 colours, plain, striped or dotted, small or large, placed at
random. Fine detail (stripes, dots, stars, grass blades, waves) takes sampler steps to resolve, and the caption
never fixes where objects sit, so an ancestral sampler can move them.

>>> image, caption, attrs = make_scene(7)   # image: uint8 (64, 64, 3)
>>> caption                                 # e.g. 'a red striped circle above a small blue square, dawn sky, on sand'

Splits are seed ranges: train scenes (seeds below 1e9) never contain the :data:`HELDOUT_PAIRS` colour-kind
combinations; held-out scenes (seeds from 1e9) are drawn from the full distribution. What a scene and its caption
can hold (skies, kinds, colours, the caption words) lives in :mod:`sdlab.embedded.vocabulary`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from sdlab.embedded.vocabulary import (
    COLOURS,
    GROUNDS,
    KINDS,
    NUMBER_WORDS,
    RELATIONS,
    SIZE,
    SIZES,
    SKIES,
    SKY_PHRASES,
    TEXTURES,
    caption_vocabulary,  # noqa: F401  (read through the old path sdlab.embedded.dataset)
    plural_of,
)
from sdlab.errors import SdlabError, closest

__all__ = ["HELDOUT_PAIRS", "SPLITS", "make_scene", "scene_seeds", "make_dataset"]

_S = 2 * SIZE

# (colour, kind) pairs never shown in training captions: the held-out split tests composition.
HELDOUT_PAIRS = frozenset({("purple", "tree"), ("pink", "house"), ("green", "star"), ("orange", "square")})
# First scene seed of each split; make_dataset(n, split, seed) uses seeds base + seed * 1_000_000 + i.
SPLITS = {"train": 0, "heldout": 1_000_000_000, "classifier": 2_000_000_000}

# Sky gradients (top colour, horizon colour) and how much each sky darkens the ground.
_SKY_GRADIENT = {
    "day": ((60, 120, 215), (165, 205, 245)),
    "sunset": ((70, 50, 130), (250, 135, 60)),
    "night": ((4, 6, 24), (22, 32, 72)),
    "dawn": ((120, 150, 210), (250, 190, 185)),
}
_GROUND_LIGHT = {
    "day": (1.0, 1.0, 1.0),
    "sunset": (0.95, 0.75, 0.6),
    "night": (0.4, 0.42, 0.55),
    "dawn": (0.95, 0.85, 0.85),
}
_GROUND_COLOUR = {"grass": (60, 150, 50), "sand": (220, 195, 135), "snow": (232, 238, 248), "water": (40, 90, 170)}


def _split_of(seed: int) -> str:
    """The split a scene seed belongs to (its seed range)."""
    if seed < 0:
        raise SdlabError("scene seeds must be >= 0", seed=seed, hint="pass a non-negative integer")
    if seed >= SPLITS["classifier"]:
        return "classifier"
    return "heldout" if seed >= SPLITS["heldout"] else "train"


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: int) -> np.ndarray:
    """``rgb`` moved by up to ``amount`` per channel."""
    return np.clip(np.asarray(rgb, np.float32) + rng.integers(-amount, amount + 1, 3), 0, 255)


def _draw_sky(rng: np.random.Generator, sky: str, img: np.ndarray, horizon: int) -> None:
    """Paint the sky gradient above ``horizon`` plus sun, clouds, moon and stars (in place, 2x scale)."""
    top, bottom = (_jitter(rng, c, 12) for c in _SKY_GRADIENT[sky])
    t = np.clip(np.arange(_S, dtype=np.float32) / max(horizon, 1), 0, 1)[:, None]
    img[:] = (top * (1 - t) + bottom * t)[:, None, :]
    overlay = Image.new("L", (_S, _S), 0)
    draw = ImageDraw.Draw(overlay)
    if sky == "night":
        k = int(rng.integers(18, 45))  # stars: 1-pixel points at 64x64
        xs, ys = rng.integers(0, _S - 2, k).tolist(), rng.integers(0, max(horizon - 4, 3), k).tolist()
        for x, y, v in zip(xs, ys, rng.integers(170, 256, k).tolist(), strict=True):
            draw.rectangle((x, y, x + 1, y + 1), fill=v)
        mask = np.asarray(overlay, np.float32)[..., None] / 255.0
        img[:] = img * (1 - mask) + np.array([255, 255, 235], np.float32) * mask
        if rng.random() < 0.5:  # crescent moon
            moon = Image.new("L", (_S, _S), 0)
            md = ImageDraw.Draw(moon)
            cx, cy, r = int(rng.integers(12, _S - 12)), int(rng.integers(10, max(horizon - 20, 12))), 7
            md.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
            md.ellipse((cx - r + 5, cy - r - 2, cx + r + 5, cy + r - 2), fill=0)
            m = np.asarray(moon, np.float32)[..., None] / 255.0
            img[:] = img * (1 - m) + np.array([240, 235, 200], np.float32) * m
        return
    sun = Image.new("L", (_S, _S), 0)
    sd = ImageDraw.Draw(sun)
    if sky == "day":
        cx, cy, r, rgb = int(rng.integers(10, _S - 10)), int(rng.integers(8, 30)), 9, (255, 240, 150)
    elif sky == "sunset":
        cx, cy, r, rgb = int(rng.integers(16, _S - 16)), horizon - int(rng.integers(0, 10)), 15, (255, 110, 40)
    else:
        cx, cy, r, rgb = int(rng.integers(16, _S - 16)), horizon - int(rng.integers(2, 14)), 11, (255, 225, 200)
    if rng.random() < 0.7:
        sd.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    if sky in ("day", "dawn"):
        for _ in range(int(rng.integers(0, 3))):  # clouds: clusters of soft ellipses
            x, y = int(rng.integers(0, _S - 30)), int(rng.integers(6, max(horizon - 24, 8)))
            for k in range(3):
                w = int(rng.integers(10, 18))
                sd.ellipse((x + 8 * k, y + int(rng.integers(-3, 4)), x + 8 * k + w, y + 10), fill=200)
    m = np.asarray(sun, np.float32)[..., None] / 255.0
    cloud = np.where(m > 0.9, np.asarray(rgb, np.float32), np.array([250, 250, 252], np.float32))
    img[:] = img * (1 - m) + cloud * m


def _draw_ground(rng: np.random.Generator, ground: str, sky: str, img: np.ndarray, horizon: int) -> None:
    """Paint the ground below ``horizon`` with its texture (grass blades, sand specks, snow, waves)."""
    base = _jitter(rng, _GROUND_COLOUR[ground], 10)
    h = _S - horizon
    patch = np.broadcast_to(base, (h, _S, 3)).copy()
    shade = Image.new("L", (_S, h), 128)
    draw = ImageDraw.Draw(shade)
    if ground == "grass":  # short vertical blades, lighter and darker
        k = 160
        xs, ys = rng.integers(0, _S, k), rng.integers(0, h, k)
        x2, y2 = xs + rng.integers(-1, 2, k), ys + rng.integers(3, 7, k)
        for line, v in zip(np.stack([xs, ys, x2, y2], 1).tolist(), rng.integers(0, 2, k).tolist(), strict=True):
            draw.line(line, fill=(70, 190)[v])
    elif ground == "sand":  # specks
        k = 140
        xs, ys = rng.integers(0, _S - 1, k).tolist(), rng.integers(0, h, k).tolist()
        for x, y, v in zip(xs, ys, rng.integers(0, 2, k).tolist(), strict=True):
            draw.rectangle((x, y, x + 1, y + 1), fill=(90, 175)[v])
    elif ground == "snow":  # faint blue-grey drifts
        k = 6
        xs, ys, ws = rng.integers(-20, _S, k).tolist(), rng.integers(0, h, k).tolist(), rng.integers(20, 50, k)
        for x, y, w in zip(xs, ys, ws.tolist(), strict=True):
            draw.ellipse((x, y, x + w, y + 5), fill=100)
    else:  # water: horizontal light wave dashes
        k = 45
        xs, ys, ls = rng.integers(0, _S, k).tolist(), rng.integers(1, h, k).tolist(), rng.integers(5, 14, k)
        for x, y, n in zip(xs, ys, ls.tolist(), strict=True):
            draw.line((x, y, x + n, y), fill=200, width=1)
    s = (np.asarray(shade, np.float32)[..., None] - 128.0) / 128.0
    patch = np.where(s > 0, patch + (255 - patch) * s * 0.6, patch * (1 + s * 0.6))
    img[horizon:] = patch * np.asarray(_GROUND_LIGHT[sky], np.float32)


def _shape_masks(kind: str, cx: float, cy: float, r: float, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The object's main mask (255 inside, 128 on its 1-pixel outline) and, for house and tree, a mask of its
    extra parts (255 roof or trunk, 128 door), both ``size`` x ``size`` around centre (cx, cy) in that crop."""
    main = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(main)
    style = {"fill": 255, "outline": 128, "width": 2}
    extra = None
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), **style)
    elif kind == "square":
        a = 0.85 * r
        draw.rectangle((cx - a, cy - a, cx + a, cy + a), **style)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], **style)
    elif kind == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang)))
        draw.polygon(pts, **style)
    elif kind == "house":  # body in the colour; roof and door drawn as extra parts
        draw.rectangle((cx - 0.8 * r, cy - 0.2 * r, cx + 0.8 * r, cy + r), **style)
        extra_img = Image.new("L", (size, size), 0)
        ed = ImageDraw.Draw(extra_img)
        ed.polygon([(cx - r, cy - 0.15 * r), (cx, cy - r), (cx + r, cy - 0.15 * r)], fill=255)  # roof
        ed.rectangle((cx - 0.2 * r, cy + 0.35 * r, cx + 0.2 * r, cy + r), fill=128)  # door
        extra = np.asarray(extra_img)
    elif kind == "tree":  # crown in the colour; brown trunk as extra part
        draw.ellipse((cx - 0.75 * r, cy - r, cx + 0.75 * r, cy + 0.35 * r), **style)
        extra_img = Image.new("L", (size, size), 0)
        ImageDraw.Draw(extra_img).rectangle((cx - 0.15 * r, cy + 0.3 * r, cx + 0.15 * r, cy + r), fill=255)
        extra = np.asarray(extra_img)
    return np.asarray(main), extra


def _texture(texture: str, rgb: np.ndarray, size: int, phase: int) -> np.ndarray:
    """A (size, size, 3) fill: plain colour, diagonal stripes or a dot grid in a lighter/darker shade."""
    fill = np.broadcast_to(rgb, (size, size, 3))
    if texture == "plain":
        return fill
    light = rgb + (255 - rgb) * 0.55 if rgb.mean() < 170 else rgb * 0.55
    yy, xx = np.ogrid[0:size, 0:size]
    stripes = ((xx + yy + phase) // 3) % 2 == 0  # diagonal stripes, period 3 pixels at 64x64
    dots = (((xx + phase) % 8) < 3) & (((yy + phase) % 8) < 3)  # 1.5-pixel dots every 4 pixels at 64x64
    on = stripes if texture == "striped" else dots
    return np.where(on[..., None], light, fill)


def _draw_object(img: np.ndarray, obj: dict[str, Any], rng: np.random.Generator) -> None:
    """Composite one object (outline, texture, extra parts) into ``img`` (2x scale) in place."""
    rgb = _jitter(rng, COLOURS[obj["colour"]], 8)
    r = 2.0 * obj["r"]
    half = int(math.ceil(r)) + 3
    x0, y0 = int(round(2.0 * obj["x"])) - half, int(round(2.0 * obj["y"])) - half
    size = 2 * half
    main, extra = _shape_masks(obj["kind"], 2.0 * obj["x"] - x0, 2.0 * obj["y"] - y0, r, size)
    # clip the crop to the canvas
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + size, _S), min(y0 + size, _S)
    sl = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    region = img[cy0:cy1, cx0:cx1]
    if obj["kind"] == "tree":  # trunk behind the crown
        region[extra[sl] > 0] = (110, 70, 35)
    tex = _texture(obj["texture"], rgb, size, int(rng.integers(0, 8)))[sl]
    m = main[sl]
    region[m == 255] = tex[m == 255]
    region[m == 128] = rgb * 0.5  # dark outline, 1 pixel at 64x64
    if obj["kind"] == "house":  # roof (dark shade of the colour) and door over the body
        e = extra[sl]
        region[e == 255] = rgb * 0.55
        region[e == 128] = (40, 28, 20)


def _relation_holds(rel: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether object ``a`` is clearly ``rel`` object ``b`` (centres, with a margin)."""
    dx, dy = b["x"] - a["x"], b["y"] - a["y"]
    gap = 0.5 * (a["r"] + b["r"])
    if rel == "above":
        return dy > gap and abs(dx) < dy
    if rel == "below":
        return -dy > gap and abs(dx) < -dy
    if rel == "left of":
        return dx > gap and abs(dy) < dx
    return -dx > gap and abs(dy) < -dx


def _place(rng: np.random.Generator, objs: list[dict[str, Any]], relation: str | None) -> None:
    """Pick object centres (64x64 pixels) inside the frame, apart, and obeying ``relation`` between the first two."""
    for _ in range(200):
        for o in objs:
            o["x"] = float(rng.uniform(o["r"] + 1, SIZE - o["r"] - 1))
            o["y"] = float(rng.uniform(o["r"] + 1, SIZE - o["r"] - 1))
        apart = all(
            math.hypot(a["x"] - b["x"], a["y"] - b["y"]) > 0.8 * (a["r"] + b["r"])
            for i, a in enumerate(objs)
            for b in objs[i + 1 :]
        )
        if apart and (relation is None or _relation_holds(relation, objs[0], objs[1])):
            return
    for o in objs:  # shrink and retry: always terminates with a valid layout for small objects
        o["r"] = max(5.0, 0.85 * o["r"])
    _place(rng, objs, relation)


def _phrase(o: dict[str, Any], *, article: str = "a", plural: bool = False) -> str:
    """'a small red striped circle' (size only when mentioned, texture only when not plain)."""
    words = []
    if o["size_mentioned"]:
        words.append(o["size"])
    words.append(o["colour"])
    if o["texture"] != "plain":
        words.append(o["texture"])
    words.append(plural_of(o["kind"]) if plural else o["kind"])
    if article == "a" and words[0][0] in "aeiou":
        article = "an"
    return " ".join([article, *words])


def make_scene(seed: int) -> tuple[np.ndarray, str, dict[str, Any]]:
    """One scene from its seed: (uint8 image (64, 64, 3), caption, attributes).

    The attributes hold everything the caption says and more: ``sky``, ``ground``, ``horizon`` (pixel row),
    ``objects`` (kind, colour, texture, size, size_mentioned, centre ``x``/``y`` and radius ``r`` in pixels),
    ``relation`` (between objects 0 and 1, or None), ``count_mode`` (caption says 'two red circles'),
    ``n_objects``, ``split`` and ``seed``.
    """
    split = _split_of(int(seed))
    rng = np.random.default_rng([int(seed), 20240601])
    sky = SKIES[int(rng.integers(len(SKIES)))]
    ground = GROUNDS[int(rng.integers(len(GROUNDS)))]
    n = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    count_mode = n > 1 and rng.random() < 0.25

    def draw_pair(taken: set[tuple[str, str]]) -> tuple[str, str]:
        while True:
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            kind = KINDS[int(rng.integers(len(KINDS)))]
            if (colour, kind) in taken or (split == "train" and (colour, kind) in HELDOUT_PAIRS):
                continue
            return colour, kind

    objs: list[dict[str, Any]] = []
    taken: set[tuple[str, str]] = set()
    shared_texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    colour, kind = draw_pair(taken)
    for i in range(n):
        if not count_mode and i > 0:
            colour, kind = draw_pair(taken)
        taken.add((colour, kind))
        size = SIZES[int(rng.integers(2))]
        objs.append(
            {
                "kind": kind,
                "colour": colour,
                "texture": shared_texture if count_mode else TEXTURES[int(rng.integers(len(TEXTURES)))],
                "size": size,
                "size_mentioned": (not count_mode) and bool(rng.random() < 0.5),
                "r": float(rng.uniform(6.0, 8.0) if size == "small" else rng.uniform(10.5, 13.0)),
            }
        )
    relation = RELATIONS[int(rng.integers(len(RELATIONS)))] if n == 2 and not count_mode else None
    _place(rng, objs, relation)
    horizon = int(rng.integers(78, 106))

    img = np.zeros((_S, _S, 3), np.float32)
    _draw_sky(rng, sky, img, horizon)
    _draw_ground(rng, ground, sky, img, horizon)
    for o in sorted(objs, key=lambda o: o["y"] + o["r"]):  # nearer (lower) objects drawn last
        _draw_object(img, o, rng)
    small = img.reshape(SIZE, 2, SIZE, 2, 3).mean(axis=(1, 3))
    image = np.clip(np.rint(small), 0, 255).astype(np.uint8)

    if count_mode:
        subject = _phrase(objs[0], article=NUMBER_WORDS[n], plural=True)
    elif relation is not None:
        subject = f"{_phrase(objs[0])} {relation} {_phrase(objs[1])}"
    else:
        parts = [_phrase(o) for o in objs]
        subject = parts[0] if n == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    caption = f"{subject}, {SKY_PHRASES[sky]}, on {ground}"
    attrs = {
        "sky": sky,
        "ground": ground,
        "horizon": horizon // 2,
        "objects": objs,
        "relation": relation,
        "count_mode": bool(count_mode),
        "n_objects": n,
        "split": split,
        "seed": int(seed),
    }
    return image, caption, attrs


def scene_seeds(n: int, split: str = "train", seed: int = 0) -> list[int]:
    """The scene seeds :func:`make_dataset` uses: ``SPLITS[split] + seed * 1_000_000 + i`` for ``i < n``."""
    if split not in SPLITS:
        raise SdlabError(f"unknown split {split!r}", split=split, hint=closest(split, SPLITS))
    if not 0 <= n <= 1_000_000 or not 0 <= seed < 1000:
        raise SdlabError(
            "need 0 <= n <= 1_000_000 and 0 <= seed < 1000", n=n, seed=seed, hint="use another seed for more"
        )
    base = SPLITS[split] + seed * 1_000_000
    return list(range(base, base + n))


def make_dataset(
    n: int, split: str = "train", seed: int = 0, *, workers: int = 0
) -> tuple[np.ndarray, list[str], list[dict[str, Any]]]:
    """``n`` scenes of a split: (uint8 images (n, 64, 64, 3), captions, attributes).

    ``workers > 1`` draws them in that many processes (same result, faster for large ``n``).
    """
    seeds = scene_seeds(n, split, seed)
    if workers > 1 and n >= 256:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            scenes = pool.map(make_scene, seeds, chunksize=256)
    else:
        scenes = [make_scene(s) for s in seeds]
    images = np.stack([s[0] for s in scenes]) if scenes else np.zeros((0, SIZE, SIZE, 3), np.uint8)
    return images, [s[1] for s in scenes], [s[2] for s in scenes]
