"""Train the embedded model's tiny decoder (TAESD-style) by distilling its VAE.

See sdlab/embedded/training/tiny_decoder.py.

python scripts/train_tiny_decoder.py [--out sdlab/embedded/weights/mini-sd-taesd] [--steps 1500] [--threads 2]
"""

from __future__ import annotations

import argparse
import json

from sdlab.embedded import WEIGHTS_DIR
from sdlab.embedded.training.tiny_decoder import TinyDecoderConfig, train_tiny_decoder


def main() -> None:
    defaults = TinyDecoderConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(WEIGHTS_DIR / "mini-sd-taesd"))
    for name in ("scenes", "captions", "steps", "batch", "seed", "threads"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--cache", default=None, help="a .pt file keeping the distillation data between runs")
    args = parser.parse_args()
    cfg = TinyDecoderConfig(**{k: v for k, v in vars(args).items() if k not in ("out", "cache")})
    summary = train_tiny_decoder(args.out, cfg, cache=args.cache)
    print(json.dumps({k: v for k, v in summary.items() if k != "log"}, indent=1))


if __name__ == "__main__":
    main()
