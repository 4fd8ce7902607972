"""What a scene and its caption can hold: the embedded model's image size, skies, grounds, object kinds, colours,
textures, sizes and relations, and every word a caption can contain (the tokenizer holds each as one token).

The scenes themselves are drawn by :mod:`sdlab.embedded.training.dataset`; the tokenizer of
:mod:`sdlab.embedded.arch` is built from :func:`caption_vocabulary`.
"""

from __future__ import annotations

__all__ = [
    "SIZE",
    "SKIES",
    "SKY_PHRASES",
    "GROUNDS",
    "KINDS",
    "COLOURS",
    "TEXTURES",
    "SIZES",
    "RELATIONS",
    "NUMBER_WORDS",
    "plural_of",
    "caption_vocabulary",
]

SIZE = 64  # output resolution; scenes are drawn at 2x and box-filtered down for smooth edges

SKIES = ("day", "sunset", "night", "dawn")
SKY_PHRASES = {"day": "day sky", "sunset": "sunset sky", "night": "night sky with stars", "dawn": "dawn sky"}
GROUNDS = ("grass", "sand", "snow", "water")
KINDS = ("circle", "square", "triangle", "star", "house", "tree")
COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (245, 220, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
    "pink": (245, 130, 190),
    "white": (245, 245, 245),
}
TEXTURES = ("plain", "striped", "dotted")
SIZES = ("small", "large")
RELATIONS = ("above", "below", "left of", "right of")
NUMBER_WORDS = {1: "a", 2: "two", 3: "three"}  # 'two red circles': how a caption counts objects


def plural_of(kind: str) -> str:
    """The plural of an object kind as a caption writes it ('circles', 'stars')."""
    return kind + ("es" if kind.endswith("s") else "s")


def caption_vocabulary() -> list[str]:
    """Every word a caption can contain, sorted (the tokenizer holds each as one token)."""
    words = {"a", "an", "two", "three", "and", "sky", "with", "on", "of", "stars"}
    words |= set(SIZES) | set(COLOURS) | set(TEXTURES) - {"plain"} | set(GROUNDS) | set(SKIES)
    words |= set(KINDS) | {plural_of(k) for k in KINDS}
    for rel in RELATIONS:
        words |= set(rel.split())
    return sorted(words)
