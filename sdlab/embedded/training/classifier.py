"""The attribute classifier: a small CNN that reads a scene image back into the attributes a caption names.

Global heads predict the sky, the ground and the number of objects; a dense head predicts, for each cell of
an 8x8 grid (8-pixel cells), the colour, kind, texture and size of the object centred there (or none), like
a tiny CenterNet. Per-cell supervision binds colour to shape from few samples. :func:`predict` turns the
grid into one score, texture, size and centre per (colour, kind) pair; :func:`check_caption` turns those
into pass/fail checks of each attribute a caption prompted, which :mod:`sdlab.embedded.training.evaluate` averages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sdlab.embedded import classifier_dir
from sdlab.embedded.vocabulary import COLOURS, GROUNDS, KINDS, SIZE, SIZES, SKIES, TEXTURES

__all__ = [
    "PAIRS",
    "attribute_targets",
    "build_classifier",
    "load_classifier",
    "predict",
    "check_caption",
    "relation_holds",
]

PAIRS = [(c, k) for c in COLOURS for k in KINDS]  # 48 (colour, kind) pairs
_PAIR_INDEX = {p: i for i, p in enumerate(PAIRS)}
GRID = 8  # dense heads: an 8x8 grid of 8-pixel cells
CELL = SIZE // GRID
NONE_WEIGHT = 0.1  # weight of the 'no object here' class in the per-cell losses (it covers most cells)
HEADS = {"sky": len(SKIES), "ground": len(GROUNDS), "count": 3}
DENSE = {"colour": len(COLOURS) + 1, "kind": len(KINDS) + 1, "texture": len(TEXTURES), "size": len(SIZES)}


def attribute_targets(attrs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Training targets: global labels, and per cell the attributes of the object centred near it.

    A cell belongs to the nearest object whose centre is within ``max(0.6 r, 6)`` pixels of the cell's
    centre (so every object owns at least one cell); other cells are 'none' (the last class).
    """
    n = len(attrs)
    t = {
        "sky": np.array([SKIES.index(a["sky"]) for a in attrs], np.int64),
        "ground": np.array([GROUNDS.index(a["ground"]) for a in attrs], np.int64),
        "count": np.array([a["n_objects"] - 1 for a in attrs], np.int64),
        "colour": np.full((n, GRID, GRID), len(COLOURS), np.int64),
        "kind": np.full((n, GRID, GRID), len(KINDS), np.int64),
        "texture": np.zeros((n, GRID, GRID), np.int64),
        "size": np.zeros((n, GRID, GRID), np.int64),
        "owned": np.zeros((n, GRID, GRID), np.float32),
    }
    centres = (np.arange(GRID) + 0.5) * CELL
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    colours = list(COLOURS)
    for i, a in enumerate(attrs):
        best = np.full((GRID, GRID), np.inf)
        for o in a["objects"]:
            d = np.hypot(cx - o["x"], cy - o["y"])
            mine = (d < max(0.6 * o["r"], 6.0)) & (d < best)
            best[mine] = d[mine]
            t["colour"][i][mine] = colours.index(o["colour"])
            t["kind"][i][mine] = KINDS.index(o["kind"])
            t["texture"][i][mine] = TEXTURES.index(o["texture"])
            t["size"][i][mine] = SIZES.index(o["size"])
            t["owned"][i][mine] = 1.0
    return t


def build_classifier() -> Any:
    """The CNN (about 1.4 M parameters): 64x64 RGB in [-1, 1] -> global logits and (B, C, 8, 8) dense logits."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU())

    class AttributeClassifier(nn.Module):
        """Strided 4x4 stem to 32x32 (it sees every pixel: stripes, dots), conv trunk to 8x8, then a 1x1
        dense head per cell and a pooled global head."""

        def __init__(self) -> None:
            super().__init__()
            stem = nn.Sequential(nn.Conv2d(3, 48, 4, 2, 1), nn.GroupNorm(8, 48), nn.SiLU())
            self.trunk = nn.Sequential(stem, block(48, 96, 2), block(96, 96, 1), block(96, 160, 2), block(160, 160, 1))
            self.dense = nn.Conv2d(160, sum(DENSE.values()), 1)
            self.pool = nn.Sequential(block(160, 160, 2), nn.Flatten(), nn.Linear(160 * 16, 256), nn.SiLU())
            self.heads = nn.ModuleDict({k: nn.Linear(256, v) for k, v in HEADS.items()})

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            h = self.trunk(x)
            g = self.pool(h)
            out = {k: head(g) for k, head in self.heads.items()}
            return out | dict(zip(DENSE, self.dense(h).split(list(DENSE.values()), dim=1), strict=True))

    return AttributeClassifier()


def classifier_loss(out: dict[str, Any], t: dict[str, Any]) -> Any:
    """Cross-entropy for the global heads and per cell (colour and kind down-weighting 'none'; texture
    and size only on cells that an object owns)."""
    import torch.nn.functional as F

    loss = F.cross_entropy(out["sky"], t["sky"]) + F.cross_entropy(out["ground"], t["ground"])
    loss = loss + F.cross_entropy(out["count"], t["count"])
    for name, n_classes in (("colour", DENSE["colour"]), ("kind", DENSE["kind"])):
        weight = out[name].new_ones(n_classes)
        weight[-1] = NONE_WEIGHT
        loss = loss + 2.0 * F.cross_entropy(out[name], t[name], weight=weight)
    owned = t["owned"]
    for name in ("texture", "size"):
        per_cell = F.cross_entropy(out[name], t[name], reduction="none")
        loss = loss + (per_cell * owned).sum() / owned.sum().clamp(min=1)
    return loss


def save_classifier(model: Any, folder: str | Path) -> Path:
    """Write ``model.safetensors`` (float16) and ``config.json`` into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").half().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    config = {"heads": HEADS, "dense": DENSE, "grid": GRID, "kinds": KINDS, "colours": list(COLOURS)}
    config |= {"skies": SKIES, "grounds": GROUNDS, "textures": TEXTURES, "sizes": SIZES}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


def load_classifier(folder: str | Path | None = None) -> Any:
    """The shipped classifier (checksums verified), or the one saved in ``folder``, in eval mode, float32."""
    from safetensors.torch import load_file

    if folder is None:
        folder = classifier_dir()
    model = build_classifier()
    state = load_file(str(Path(folder) / "model.safetensors"))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def predict(model: Any, images: Any, *, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Predictions for images in [0, 1], shape (B, 3, 64, 64): sky/ground/count probabilities and, per
    (colour, kind) pair, ``present`` (best cell's P(colour) x P(kind)), ``texture`` and ``size`` probabilities
    at that cell, and ``position`` (x, y in [0, 1]: centroid of the cells scoring over half the best)."""
    import torch

    outs: list[dict[str, Any]] = []
    images = torch.as_tensor(images, dtype=torch.float32)
    centres = (torch.arange(GRID, dtype=torch.float32) + 0.5) / GRID
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            out = model(images[i : i + batch_size] * 2 - 1)
            b = out["sky"].shape[0]
            colour = out["colour"].softmax(1)[:, :-1]  # (B, 8, G, G)
            kind = out["kind"].softmax(1)[:, :-1]  # (B, 6, G, G)
            score = (colour[:, :, None] * kind[:, None]).reshape(b, len(PAIRS), GRID * GRID)
            best, cell = score.max(-1)
            texture = out["texture"].softmax(1).reshape(b, len(TEXTURES), -1)
            size = out["size"].softmax(1).reshape(b, len(SIZES), -1)
            w = score * (score >= 0.5 * best[..., None])
            w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
            xs, ys = centres.repeat(GRID), centres.repeat_interleave(GRID)
            outs.append(
                {
                    "sky": out["sky"].softmax(-1),
                    "ground": out["ground"].softmax(-1),
                    "count": out["count"].softmax(-1),
                    "present": best,
                    "texture": _at_cells(texture, cell),
                    "size": _at_cells(size, cell),
                    "position": torch.stack([(w * xs).sum(-1), (w * ys).sum(-1)], -1),
                }
            )
    return {k: torch.cat([o[k] for o in outs]).numpy() for k in outs[0]}


def _at_cells(maps: Any, cell: Any) -> Any:
    """(B, C, cells) maps read at one cell per pair, (B, pairs) -> (B, pairs, C)."""
    return maps.gather(2, cell[:, None].expand(-1, maps.shape[1], -1)).transpose(1, 2)


def relation_holds(relation: str, a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether position ``a`` is ``relation`` position ``b`` (image coordinates: y grows downwards)."""
    (xa, ya), (xb, yb) = a, b
    return {"above": ya < yb, "below": ya > yb, "left of": xa < xb, "right of": xa > xb}[relation]


def check_caption(pred: dict[str, np.ndarray], i: int, attrs: dict[str, Any]) -> dict[str, list[bool]]:
    """Pass/fail of every attribute caption ``i`` prompted, grouped by kind of attribute.

    Checked: sky, ground, object count, each named (colour, kind) present, its texture when the caption names
    one (striped/dotted), its size when named, and the relation between the first two objects when named.
    """
    checks: dict[str, list[bool]] = {"sky": [], "ground": [], "count": [], "object": [], "texture": []}
    checks |= {"size": [], "relation": []}
    checks["sky"].append(int(pred["sky"][i].argmax()) == SKIES.index(attrs["sky"]))
    checks["ground"].append(int(pred["ground"][i].argmax()) == GROUNDS.index(attrs["ground"]))
    checks["count"].append(int(pred["count"][i].argmax()) + 1 == attrs["n_objects"])
    found = {}
    for o in attrs["objects"]:
        j = _PAIR_INDEX[(o["colour"], o["kind"])]
        if j in found:  # 'two red circles': one pair, checked once
            continue
        found[j] = bool(pred["present"][i, j] > 0.5)
        checks["object"].append(found[j])
        if o["texture"] != "plain":
            ok = found[j] and int(pred["texture"][i, j].argmax()) == TEXTURES.index(o["texture"])
            checks["texture"].append(ok)
        if o["size_mentioned"]:
            checks["size"].append(found[j] and int(pred["size"][i, j].argmax()) == SIZES.index(o["size"]))
    if attrs["relation"] is not None:
        a, b = (_PAIR_INDEX[(o["colour"], o["kind"])] for o in attrs["objects"][:2])
        (xa, ya), (xb, yb) = pred["position"][i, a], pred["position"][i, b]
        ok = found[a] and found[b]
        ok = ok and relation_holds(attrs["relation"], (xa, ya), (xb, yb))
        checks["relation"].append(bool(ok))
    return checks
