"""Does the embedded model use the relation word? A probe for the weakest attribute of `sdlab eval-model`.

    python scripts/probe_relations.py                     # shipped weights, 160 held-out relation captions
    python scripts/probe_relations.py --model runs/x/mini-sd --n 80

Each held-out caption that names a relation ("a red circle above a blue square, ...") is generated twice with the same
seed: as written, and with the relation swapped (above <-> below, left of <-> right of), so only one word differs.
The attribute classifier finds both objects and reads their positions. Among images where both objects are found,
a model that ignores the word is right about half the time either way; one that uses it is right well above half
as written and with the word swapped. "On axis" tells a model that knows vertical from horizontal but not the
direction (on axis well above half, right about half) from one that ignores the word altogether (both about half).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import sdlab  # noqa: E402
from sdlab.embedded.training.classifier import PAIRS, load_classifier, predict  # noqa: E402
from sdlab.embedded.training.classifier import relation_holds as holds  # noqa: E402
from sdlab.embedded.training.dataset import make_dataset  # noqa: E402
from sdlab.generation import load  # noqa: E402

OPPOSITE = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}
SAMPLER, STEPS = "DPM++ 2M Karras", 20


def on_axis(relation: str, a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether ``a`` and ``b`` lie farther apart along the relation's axis (vertical or horizontal) than across it."""
    dx, dy = abs(a[0] - b[0]), abs(a[1] - b[1])
    return dy > dx if relation in ("above", "below") else dx > dy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a mini-sd pipeline folder (default: the shipped one)")
    parser.add_argument("--n", type=int, default=160, help="relation captions (default 160)")
    parser.add_argument("--seed", type=int, default=7, help="which held-out scenes (default 7)")
    parser.add_argument("--cfg", type=float, nargs="+", default=[5.0, 1.0])
    args = parser.parse_args(argv)
    model = load(args.model)
    _, captions, attrs = make_dataset(20 * args.n, "heldout", args.seed)
    cases = [(c, a) for c, a in zip(captions, attrs, strict=True) if a["relation"] is not None][: args.n]
    pair = {p: i for i, p in enumerate(PAIRS)}
    classifier = load_classifier()
    print(f"{len(cases)} relation captions, {SAMPLER}, {STEPS} steps; among the images with both objects:")
    print("right = the relation holds; on axis = the pair lies along the relation's axis (by chance about half)")
    print("| CFG | prompt | both objects found | relation right | share right | on axis |")
    print("|---|---|---:|---:|---:|---:|")
    for cfg in args.cfg:
        for swapped in (False, True):
            prompts, wanted = [], []
            for caption, a in cases:
                rel = OPPOSITE[a["relation"]] if swapped else a["relation"]
                prompts.append(caption.replace(f" {a['relation']} ", f" {rel} ", 1))
                wanted.append(rel)
            images = []
            for i in range(0, len(prompts), 16):
                batch = prompts[i : i + 16]
                seeds = list(range(9000 + i, 9000 + i + len(batch)))
                out = sdlab.generate(batch, sampler=SAMPLER, steps=STEPS, cfg=cfg, seeds=seeds, model=model)
                images.append(out.images.float())
            pred = predict(classifier, torch.cat(images))
            both = right = axis = 0
            for k, ((_, a), rel) in enumerate(zip(cases, wanted, strict=True)):
                ia, ib = (pair[(o["colour"], o["kind"])] for o in a["objects"][:2])
                if pred["present"][k, ia] > 0.5 and pred["present"][k, ib] > 0.5:
                    both += 1
                    a_xy, b_xy = tuple(pred["position"][k, ia]), tuple(pred["position"][k, ib])
                    right += holds(rel, a_xy, b_xy)
                    axis += on_axis(rel, a_xy, b_xy)
            label = "relation swapped" if swapped else "as written"
            share, axis_share = right / max(both, 1), axis / max(both, 1)
            print(f"| {cfg:g} | {label} | {both} / {len(cases)} | {right} | {share:.1%} | {axis_share:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
