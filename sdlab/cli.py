"""The ``sdlab`` command line: generate images, list samplers and schedules, evaluate the embedded model."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from sdlab.embedded.training import evaluate as embedded_eval
from sdlab.errors import SdlabError
from sdlab.generation import generate
from sdlab.lab.report import build_report
from sdlab.rerun import rerun
from sdlab.samplers import list_samplers
from sdlab.schedules import list_schedules
from sdlab.sweeps import run_sweep, summarize
from sdlab.viz.display import image_grid, save_image

__all__ = ["main"]


# generate's defaults for the flags that --from leaves to the image unless given
_GENERATE_DEFAULTS = {
    "negative": "", "sampler": "DPM++ 2M", "schedule": "Automatic", "steps": 20, "cfg": 7.0, "rng": "GPU",
    "clip_skip": 1,
}  # fmt: skip
# flag -> generate's argument
_GENERATE_NAMES = {
    "prompt": "prompt", "negative": "negative_prompt", "sampler": "sampler", "schedule": "schedule",
    "steps": "steps", "cfg": "cfg", "seed": "seeds", "size": "size", "rng": "rng", "clip_skip": "clip_skip",
    "ensd": "ensd", "subseed": "subseeds", "subseed_strength": "subseed_strength",
}  # fmt: skip


def _cmd_generate(args: argparse.Namespace) -> int:
    options = dict(_option(item) for item in args.option or [])
    given = {name: getattr(args, flag) for flag, name in _GENERATE_NAMES.items() if getattr(args, flag) is not None}
    run = dict(model=args.model, device=args.device, progress=not args.quiet)
    if args.source is not None:  # re-run an image, with the flags given overriding its fields
        result = rerun(args.source, ignore=args.ignore or (), **given, **options, **run)
    else:
        if args.prompt is None:
            raise SdlabError("generate needs --prompt (or --from IMAGE.png)", hint="e.g. --prompt 'a cat'")
        if args.ignore:
            raise SdlabError("--ignore is for --from", hint="leave --ignore out")
        defaults = {_GENERATE_NAMES[flag]: value for flag, value in _GENERATE_DEFAULTS.items()}
        result = generate(**{**defaults, "seeds": [0], **given, **options}, **run)
    for path in result.save(args.out):
        print(path)
    return 0


def _option(item: str) -> tuple[str, Any]:
    """``NAME=VALUE`` with VALUE read as a number (1, .5, 1e-3, nan, inf), true/false, a JSON list or a string.

    A number that is out of the option's domain (nan, a negative eta, ...) is refused by the sampler's check.
    """
    name, sep, text = item.partition("=")
    name, text = name.strip(), text.strip()
    if not sep or not name:
        raise SdlabError("--option takes NAME=VALUE", option=item, hint="e.g. --option eta=0.5")
    if text.lower() in ("true", "false"):
        return name, text.lower() == "true"
    for kind in (int, float):
        try:
            return name, kind(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return name, json.loads(text)
        except json.JSONDecodeError as e:
            raise SdlabError(f"--option {name}: not valid JSON ({e.msg})", option=item) from None
    return name, text


def _cmd_samplers(args: argparse.Namespace) -> int:
    rows = list_samplers()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = f"{'A1111':<18} {'ComfyUI':<28} {'order':<5} {'NFE/step':<8} {'stochastic':<10} {'Automatic schedule'}"
    print(head)
    print("-" * len(head))
    for r in rows:
        comfy = ", ".join(r["comfy"]) or "-"
        print(
            f"{r['a1111'] or '-':<18} {comfy:<28} {r['order']:<5} {r['nfe_per_step']:<8} {r['stochastic']:<10} "
            f"{r['default_schedule']}"
        )
    return 0


def _cmd_schedules(args: argparse.Namespace) -> int:
    rows = [info if isinstance(info, dict) else vars(info) for info in list_schedules()]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for r in rows:
            print(f"{r.get('name', ''):<20} {r.get('source', ''):<12} {r.get('description', '')}")
    return 0


def _cmd_eval_model(args: argparse.Namespace) -> int:
    metrics = embedded_eval.evaluate_model(n=args.n, seed=args.seed, progress=not args.quiet, folder=args.model)
    print(
        json.dumps(embedded_eval.metrics_json(metrics), indent=2) if args.json else embedded_eval.format_table(metrics)
    )
    if args.grid:  # 12 held-out captions (rows) at CFG 5 and CFG 1 (columns), cells enlarged twice
        rows, captions = embedded_eval.sample_rows(metrics, 12)
        grid = image_grid(rows, row_labels=captions, col_labels=list(embedded_eval.SAMPLE_COLUMNS), scale=2)
        save_image(grid, args.grid)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    import pandas as pd

    ray = args.ray is not None
    table = run_sweep(
        args.config, args.out, executor="ray" if ray else "local", address=args.ray or None,
        workers=args.workers, progress=not args.quiet, verify=args.verify,
    )  # fmt: skip
    summary = summarize(table)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(summary) else "(no rows)")
    print(f"{table['cell_key'].nunique()} cells, {len(table)} rows -> {args.out}/results.parquet")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    path = build_report(args.out, smoke=args.smoke, model=args.model, progress=not args.quiet)
    print(path)
    return 0


def _add_generate(sub: Any, common: argparse.ArgumentParser) -> None:
    """``sdlab generate``: its flags, A1111's settings by name."""
    g = sub.add_parser("generate", parents=[common], help="generate PNGs (A1111 infotext + sdlab spec inside)")
    g.add_argument("--prompt", default=None, help="required unless --from")
    g.add_argument(
        "--from", dest="source", default=None, metavar="IMAGE",
        help="re-run a PNG from A1111 or sdlab (or an infotext file's text); the flags given override its fields",
    )  # fmt: skip
    g.add_argument("--ignore", action="append", metavar="FIELD", help="with --from: run without this infotext field")
    g.add_argument("--negative", default=None)
    g.add_argument("--sampler", default=None, help="A1111, ComfyUI or k_ name, e.g. 'Euler a', dpmpp_2m (DPM++ 2M)")
    g.add_argument("--schedule", default=None, help="e.g. Karras, Exponential, sgm_uniform (Automatic)")
    g.add_argument("--steps", type=int, default=None, help="(20)")
    g.add_argument("--cfg", type=float, default=None, help="(7)")
    g.add_argument("--seed", type=int, action="append", help="repeat for several images (0)")
    g.add_argument("--size", default=None, help="WIDTHxHEIGHT (default: the model's native size)")
    g.add_argument("--model", default=None, help="hub id, diffusers folder or .safetensors file (default: embedded)")
    g.add_argument("--rng", default=None, choices=["GPU", "CPU", "NV"], help="A1111's random number source (GPU)")
    g.add_argument("--clip-skip", type=int, default=None, help="(1)")
    g.add_argument("--ensd", type=int, default=None, help="A1111's eta noise seed delta (0; NovelAI's 31337)")
    g.add_argument("--subseed", type=int, action="append", help="A1111's variation seed, one per --seed")
    g.add_argument("--subseed-strength", type=float, default=None, help="how much of the variation seed (0 to 1)")
    g.add_argument("--device", default=None)
    g.add_argument("--option", action="append", help="sampler option NAME=VALUE, e.g. eta=0.5")
    g.add_argument("--out", required=True)
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_cmd_generate)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)  # --debug before or after the command
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print the full traceback of an error"
    )
    parser = argparse.ArgumentParser(prog="sdlab", description="Measure diffusion samplers.", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    _add_generate(sub, common)

    s = sub.add_parser("samplers", parents=[common], help="the sampler catalogue")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_samplers)

    sc = sub.add_parser("schedules", parents=[common], help="the schedule catalogue")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=_cmd_schedules)

    d = sub.add_parser(
        "demo", parents=[common], help="the flagship sampler report on the embedded model (figures/report.html)"
    )
    d.add_argument("--out", default="figures")
    d.add_argument("--smoke", action="store_true", help="a one-minute version (CI)")
    d.add_argument("--model", default=None, help="hub id, folder or file (default: the embedded model)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_demo)

    e = sub.add_parser(
        "eval-model", parents=[common], help="measure the embedded model (VAE PSNR, adherence, diversity)"
    )
    e.add_argument("--n", type=int, default=200)
    e.add_argument(
        "--seed", type=int, default=0, help="which held-out captions and seeds (default 0; others check on fresh ones)"
    )
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    e.add_argument("--model", default=None, help="a mini-sd pipeline folder to measure (default: the shipped one)")
    e.add_argument("--grid", default=None, metavar="PNG", help="also save 12 captions at CFG 5 and CFG 1 as a grid")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval_model)

    w = sub.add_parser(
        "sweep", parents=[common], help="run a sweep grid from a TOML file (resumable: finished cells are skipped)"
    )
    w.add_argument("config", help="sweep file, e.g. data/sweeps/smoke.toml")
    w.add_argument(
        "--out", required=True,
        help="results folder: a new or empty folder, or an existing sdlab store (results.parquet, cells/, images/)",
    )  # fmt: skip
    w.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="run the cells on Ray: alone, a local Ray instance; 'auto', the running cluster; or the head's "
        "'host:6379' / 'ray://host:10001' (needs pip install \"sdlab[ray]\")",
    )  # fmt: skip
    w.add_argument("--workers", type=int, default=None, help="with --ray: at most this many workers")
    w.add_argument(
        "--verify", action="store_true",
        help="first check every cell in --out (shards and images, also other grids'), removing bad ones",
    )  # fmt: skip
    w.add_argument("--quiet", action="store_true")
    w.set_defaults(func=_cmd_sweep)
    return parser


def _silence_loader_bars() -> None:
    """--quiet: no progress bars from diffusers' and transformers' own loaders either."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors end as one line on stderr (exit 2 for bad input, 1 for a failure of sdlab itself)."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "quiet", False):
            _silence_loader_bars()
        return args.func(args)
    except KeyboardInterrupt:
        print("sdlab: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        return _report(exc)


def _report(exc: Exception) -> int:
    """One line for an error: SdlabError as it is, OSError with its path, anything else as a failure to report."""
    if isinstance(exc, BrokenPipeError):  # the reader went away (sdlab samplers | head): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        return 0
    if isinstance(exc, SdlabError):
        print(f"sdlab: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, OSError):
        path = f" [path={exc.filename!r}]" if exc.filename else ""
        print(f"sdlab: error: {exc.strerror or exc}{path} -> check the path, its permissions and free space",
              file=sys.stderr)  # fmt: skip
        return 2
    if isinstance(exc, MemoryError):
        print("sdlab: error: out of memory -> use a smaller size, batch or grid", file=sys.stderr)
        return 2
    print(
        f"sdlab: internal error: {type(exc).__name__}: {exc} -> run again with --debug for the traceback, "
        "and please report it",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
