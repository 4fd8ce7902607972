"""Train sdlab's embedded miniature Stable Diffusion (see sdlab/embedded/MODEL_CARD.md).

    python scripts/train_embedded.py                      # CPU, full recipe, writes sdlab/embedded/weights
    python scripts/train_embedded.py --device cuda --time-budget 300
    python scripts/train_embedded.py --fast --out /tmp/w  # smoke run in seconds

Re-running resumes from the last checkpoint in --work-dir (pass --no-resume to start over).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdlab.embedded.training.train import TrainConfig, train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="runs/embedded", help="checkpoints and caches (default runs/embedded)")
    parser.add_argument(
        "--out", default=None, help="where mini-sd/ and classifier/ go (default sdlab/embedded/weights)"
    )
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True, help="resume (default on)")
    parser.add_argument("--fast", action="store_true", help="smoke run: tiny data, a few steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    for field in dataclasses.fields(TrainConfig):
        if field.name == "fast":
            continue
        kind = {"int": int, "float": float, "str": str, "float | None": float, "str | None": str}[str(field.type)]
        parser.add_argument("--" + field.name.replace("_", "-"), type=kind, default=field.default)
    args = parser.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name != "fast"}
    config = TrainConfig(**values, fast=args.fast)
    out = args.out or str(Path(__file__).resolve().parents[1] / "sdlab" / "embedded" / "weights")
    log = train(args.work_dir, config, out_dir=out, resume=args.resume, progress=not args.no_progress)
    summary = {k: log[k] for k in ("device", "wall_s", "data_s", "parameters", "reproduce", "scaling_factor")}
    summary["final_losses"] = {s: v["losses"][-1] if v["losses"] else None for s, v in log["stages"].items()}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
