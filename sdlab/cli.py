"""The ``sdlab`` command line: generate images, list samplers and schedules, evaluate the embedded model."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sdlab.errors import SdlabError

__all__ = ["main"]


def _cmd_generate(args: argparse.Namespace) -> int:
    from sdlab.generation import generate

    options = {}
    for item in args.option or []:
        key, _, value = item.partition("=")
        if not _:
            raise SdlabError("--option takes NAME=VALUE", option=item, hint="e.g. --option eta=0.5")
        options[key] = json.loads(value) if value[:1] in "-0123456789[{tfn" else value
    result = generate(
        args.prompt,
        negative_prompt=args.negative,
        sampler=args.sampler,
        schedule=args.schedule,
        steps=args.steps,
        cfg=args.cfg,
        seeds=args.seed or [0],
        size=args.size,
        model=args.model,
        rng=args.rng,
        clip_skip=args.clip_skip,
        device=args.device,
        progress=not args.quiet,
        **options,
    )
    for path in result.save(args.out):
        print(path)
    return 0


def _cmd_samplers(args: argparse.Namespace) -> int:
    from sdlab.samplers import list_samplers

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
    from sdlab.schedules import list_schedules

    rows = [info if isinstance(info, dict) else vars(info) for info in list_schedules()]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for r in rows:
            print(f"{r.get('name', ''):<20} {r.get('source', ''):<12} {r.get('description', '')}")
    return 0


def _cmd_eval_model(args: argparse.Namespace) -> int:
    from sdlab.embedded.evaluate import evaluate_model, format_table, metrics_json, samples_grid

    metrics = evaluate_model(n=args.n, seed=args.seed, progress=not args.quiet, folder=args.model)
    print(json.dumps(metrics_json(metrics), indent=2) if args.json else format_table(metrics))
    if args.grid:
        from sdlab.display import save_image

        save_image(samples_grid(metrics), args.grid)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    import pandas as pd

    from sdlab.sweep import run_sweep, summarize

    ray = args.ray is not None
    table = run_sweep(
        args.config, args.out, executor="ray" if ray else "local", address=args.ray or None,
        workers=args.workers, progress=not args.quiet,
    )  # fmt: skip
    summary = summarize(table)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(summary) else "(no rows)")
    print(f"{table['cell_key'].nunique()} cells, {len(table)} rows -> {args.out}/results.parquet")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from sdlab.report import build_report

    path = build_report(args.out, smoke=args.smoke, model=args.model, progress=not args.quiet)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdlab", description="Measure diffusion samplers.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate PNGs (A1111 infotext + sdlab spec inside)")
    g.add_argument("--prompt", required=True)
    g.add_argument("--negative", default="")
    g.add_argument("--sampler", default="DPM++ 2M", help="A1111, ComfyUI or k_ name, e.g. 'Euler a', dpmpp_2m")
    g.add_argument("--schedule", default="Automatic", help="e.g. Karras, Exponential, sgm_uniform")
    g.add_argument("--steps", type=int, default=20)
    g.add_argument("--cfg", type=float, default=7.0)
    g.add_argument("--seed", type=int, action="append", help="repeat for several images")
    g.add_argument("--size", default=None, help="WIDTHxHEIGHT (default: the model's native size)")
    g.add_argument("--model", default=None, help="hub id, diffusers folder or .safetensors file (default: embedded)")
    g.add_argument("--rng", default="GPU", choices=["GPU", "CPU", "NV"], help="A1111's random number source")
    g.add_argument("--clip-skip", type=int, default=1)
    g.add_argument("--device", default=None)
    g.add_argument("--option", action="append", help="sampler option NAME=VALUE, e.g. eta=0.5")
    g.add_argument("--out", required=True)
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_cmd_generate)

    s = sub.add_parser("samplers", help="the sampler catalogue")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_samplers)

    sc = sub.add_parser("schedules", help="the schedule catalogue")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=_cmd_schedules)

    d = sub.add_parser("demo", help="the flagship sampler report on the embedded model (figures/report.html)")
    d.add_argument("--out", default="figures")
    d.add_argument("--smoke", action="store_true", help="a one-minute version (CI)")
    d.add_argument("--model", default=None, help="hub id, folder or file (default: the embedded model)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_demo)

    e = sub.add_parser("eval-model", help="measure the embedded model (VAE PSNR, adherence, diversity)")
    e.add_argument("--n", type=int, default=200)
    e.add_argument(
        "--seed", type=int, default=0, help="which held-out captions and seeds (default 0; others check on fresh ones)"
    )
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    e.add_argument("--model", default=None, help="a mini-sd pipeline folder to measure (default: the shipped one)")
    e.add_argument("--grid", default=None, metavar="PNG", help="also save 12 captions at CFG 5 and CFG 1 as a grid")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval_model)

    w = sub.add_parser("sweep", help="run a sweep grid from a TOML file (resumable: finished cells are skipped)")
    w.add_argument("config", help="sweep file, e.g. data/sweeps/smoke.toml")
    w.add_argument("--out", required=True, help="results folder (results.parquet, cells/, images/)")
    w.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="run the cells on Ray: alone, a local Ray instance; 'auto', the running cluster; or the head's "
        "'host:6379' / 'ray://host:10001' (needs pip install \"sdlab[ray]\")",
    )  # fmt: skip
    w.add_argument("--workers", type=int, default=None, help="with --ray: at most this many workers")
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
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        _silence_loader_bars()
    try:
        return args.func(args)
    except SdlabError as exc:
        print(f"sdlab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
