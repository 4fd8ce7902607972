"""Committed figures, recorded: what made them (a spec hash), with which libraries and torch thread count, and
whether each is still current where it is checked.

Some samplers give another latent with 1 torch thread than with 2 (LCM at 32 steps; the same count is
bit-identical), so figures are built with a pinned thread count and record it, beside the library versions, in
``MANIFEST.json`` next to them.

>>> from sdlab.lab.manifest import pin_threads, stale_figures
>>> with pin_threads():                       # FIGURE_THREADS torch threads inside, the previous count after
...     build_report("figures")               # sdlab demo: records its figures in figures/MANIFEST.json
>>> stale_figures("figures")                  # [] when every recorded figure is current here
[]

A producer (``"sdlab demo"``, a notebook) records its figures with :func:`record_figures`; :func:`stale_figures`
says which are missing, edited since, made from another spec, or recorded with other library versions or another
thread count than the ones installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdlab.errors import SdlabError
from sdlab.spec import versions

__all__ = [
    "FIGURE_THREADS",
    "MANIFEST",
    "Stale",
    "pin_threads",
    "figure_versions",
    "spec_hash",
    "record_figures",
    "read_manifest",
    "stale_figures",
]

FIGURE_THREADS = 1  # torch threads for committed figures: 1 gives the same numbers on any machine, CI included
MANIFEST = "MANIFEST.json"
_FIGURE_LIBRARIES = ("numpy", "pandas", "matplotlib", "plotly", "pillow")  # they shape the files, not the numbers


def pin_threads(threads: int = FIGURE_THREADS) -> contextlib.AbstractContextManager[int]:
    """Fix torch's intra-op thread count at ``threads`` now; as a context manager, restore the previous count on
    exit. Notebooks in full mode call it before they draw committed figures.

    >>> pin_threads()                         # from here on, 1 thread
    >>> with pin_threads(2) as n: ...         # 2 inside, the previous count after
    """
    import torch

    if not isinstance(threads, int) or threads < 1:
        raise SdlabError("threads must be an integer >= 1", threads=threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)

    @contextlib.contextmanager
    def restore() -> Iterator[int]:
        try:
            yield threads
        finally:
            torch.set_num_threads(previous)

    return restore()


def figure_versions() -> dict[str, str]:
    """The versions recorded with figures: those that change results (:func:`sdlab.spec.versions`) and the
    libraries that write the files."""
    from importlib.metadata import PackageNotFoundError, version

    out = dict(versions())
    for name in _FIGURE_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A short, stable hash of a producer's settings (JSON with sorted keys; tuples as lists)."""
    text = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(root: str | Path) -> dict[str, Any]:
    """``root/MANIFEST.json`` as a dict (empty producers and figures when there is none)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return {"producers": {}, "figures": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SdlabError("the figures' manifest is not valid JSON", path=str(path), hint="rebuild the figures") from e
    return {"producers": data.get("producers", {}), "figures": data.get("figures", {})}


def record_figures(
    root: str | Path, paths: Iterable[str | Path], *, producer: str, spec: Mapping[str, Any], threads: int
) -> Path:
    """Record ``paths`` (files under ``root``: absolute, from the current folder, or relative to ``root``) as
    ``producer``'s figures in ``root/MANIFEST.json``: each file's SHA-256, and for the producer its spec, spec
    hash, thread count and :func:`figure_versions`. The producer's earlier entries are replaced; other producers'
    stay. Returns the manifest's path."""
    root = Path(root)
    manifest = read_manifest(root)
    figures = {k: v for k, v in manifest["figures"].items() if v.get("producer") != producer}
    for path in paths:
        path = Path(path)
        full = path if path.is_absolute() or _under(path, root) else root / path
        try:
            name = full.resolve().relative_to(root.resolve()).as_posix()
        except ValueError as e:
            raise SdlabError(
                "a recorded figure must lie under the figures folder", path=str(path), root=str(root)
            ) from e
        if not full.is_file():
            raise SdlabError("no such figure to record", path=str(full))
        figures[name] = {"producer": producer, "sha256": _file_hash(full)}
    producers = dict(manifest["producers"])
    producers[producer] = {
        "spec_hash": spec_hash(spec),
        "spec": json.loads(json.dumps(spec, default=str)),
        "threads": threads,
        "versions": figure_versions(),
    }
    out = root / MANIFEST
    text = json.dumps({"producers": producers, "figures": dict(sorted(figures.items()))}, indent=1, sort_keys=True)
    out.write_text(text + "\n", encoding="utf-8")
    return out


def _under(path: Path, root: Path) -> bool:
    """Whether a relative ``path`` names a file under ``root`` from the current folder ("figures/a.png")."""
    return path.is_file() and path.resolve().is_relative_to(root.resolve())


@dataclass(frozen=True)
class Stale:
    """A recorded figure that is not current: ``kind`` is "missing", "edited", "spec", "versions" or "threads"."""

    path: str
    kind: str
    reason: str


def stale_figures(
    root: str | Path = "figures",
    *,
    specs: Mapping[str, Mapping[str, Any]] | None = None,
    installed: Mapping[str, str] | None = None,
    threads: int = FIGURE_THREADS,
) -> list[Stale]:
    """The recorded figures under ``root`` that are not current, each with the first reason found: its file is
    missing or differs from the one recorded, its producer's spec differs from ``specs[producer]`` (when given),
    it was made with other versions than ``installed`` (default: :func:`figure_versions`) or with another
    thread count than ``threads``. An empty list: all current (or nothing recorded)."""
    root = Path(root)
    manifest = read_manifest(root)
    installed = figure_versions() if installed is None else installed
    out = []
    for name, entry in manifest["figures"].items():
        producer = manifest["producers"].get(entry.get("producer"), {})
        path = root / name
        reason = None
        if not path.is_file():
            reason = ("missing", "not on disk")
        elif _file_hash(path) != entry.get("sha256"):
            reason = ("edited", "the file differs from the one recorded")
        elif specs is not None and entry.get("producer") in specs:
            now = spec_hash(specs[entry["producer"]])
            if now != producer.get("spec_hash"):
                reason = ("spec", f"made from spec {producer.get('spec_hash')}, the code's spec is {now}")
        if reason is None:
            recorded = producer.get("versions", {})
            moved = [f"{k} {recorded[k]} -> {installed.get(k, 'absent')}" for k in sorted(recorded)
                     if recorded[k] != installed.get(k, "absent")]  # fmt: skip
            if moved:
                reason = ("versions", "recorded with other versions: " + ", ".join(moved))
            elif producer.get("threads") != threads:
                reason = ("threads", f"built with {producer.get('threads')} torch threads, figures pin {threads}")
        if reason is not None:
            out.append(Stale(name, *reason))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m sdlab.lab.manifest [FOLDER]``: list the stale figures; exit 1 when one is missing or edited."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sdlab.lab.manifest", description=main.__doc__)
    parser.add_argument("folder", nargs="?", default="figures")
    args = parser.parse_args(argv)
    stale = stale_figures(args.folder)
    for s in stale:
        print(f"{s.kind:9} {s.path}: {s.reason}")
    recorded = len(read_manifest(args.folder)["figures"])
    print(f"{recorded - len(stale)} of {recorded} recorded figures current in {args.folder}")
    return 1 if any(s.kind in ("missing", "edited") for s in stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
