"""A crash-safe results store for sweeps: one parquet shard per cell, images as PNG files, atomic commits.

>>> import tempfile, pandas as pd
>>> store = ResultsStore(tempfile.mkdtemp())                  # e.g. "runs/sweep1"
>>> rows = pd.DataFrame({"sampler": "Euler a", "steps": 20, "seed": [0, 1], "lpips": [0.12, 0.10]})
>>> key = "3f9c0a"                                            # e.g. a hash of the cell's spec
>>> if not store.has(key):                                    # a finished cell is never recomputed
...     store.put(key, rows)                                  # images={"seed0": uint8 array, ...} if rows name them
>>> store.table()[["seed", "lpips", "cell_key"]]              # every cell, sorted by cell key then row order
   seed  lpips cell_key
0     0   0.12   3f9c0a
1     1   0.10   3f9c0a
>>> pd.read_parquet(store.compact()).shape                    # results.parquet: spec, metrics, cell_key, image_path
(2, 6)

Layout under ``root``::

    cells/<key[:2]>/<key>.parquet           one shard per cell; its existence is the commit marker
    images/<key[:2]>/<key>/<name>.png       the cell's images, written before the shard
    results.parquet                         rebuilt by compact()
    .sdlab.lock                             flock: shared while writing, exclusive while compacting / cleaning

Every file is written to a temp file in its own folder, fsynced and renamed into place, so a writer killed at any
moment (SIGKILL included) leaves either the whole cell or no cell, plus temp files that the next cleaner removes.
Each shard records its images' SHA-256 in its parquet metadata; ``verify()`` removes cells whose shard is unreadable
or whose images are missing or changed, so the next run recomputes them. Many processes may write one store; two
writers of the same key must write the same content (a deterministic sweep), the last rename wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sdlab.errors import SdlabError

__all__ = ["ResultsStore"]

FORMAT = 1
META_KEY = b"sdlab"  # parquet schema metadata entry holding the cell's key, row count, image hashes and meta
TMP_SUFFIX = ".sdlab-tmp"
LOCK_NAME = ".sdlab.lock"
RESULTS_NAME = "results.parquet"
ADDED_COLUMNS = ("cell_key", "image_path")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}")


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SdlabError(
            f"bad {what} {name!r}",
            hint="use letters, digits and _ . = - (first a letter or digit), at most 200 characters",
        )
    return name


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(files: dict[Path, bytes], *, fsync: bool) -> None:
    """Write each file to a temp file next to it, fsync them, rename them into place, then fsync their folders."""
    temps = {}
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = temps[path] = path.parent / f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"
            with open(tmp, "wb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    if fsync:
        for folder in {path.parent for path in files}:
            _fsync_dir(folder)


def _png_bytes(image: Any, name: str) -> bytes:
    """PNG encoding of a PIL image or a uint8 array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        ok = image.dtype == np.uint8 and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)))
        if not ok:
            raise SdlabError(
                "images must be uint8 arrays (H, W[, 1|3|4]) or PIL images",
                image=name,
                shape=tuple(image.shape),
                dtype=str(image.dtype),
                hint="(x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy() for a [0, 1] CHW tensor",
            )
        image = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    elif not isinstance(image, Image.Image):
        raise SdlabError("images must be uint8 arrays or PIL images", image=name, type=type(image).__name__)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


class ResultsStore:
    """Sweep results under ``root``: ``has`` / ``put`` / ``get`` one cell (one spec's seed batch), ``table`` them all.

    ``fsync=False`` trades durability against power loss for speed (a killed process still leaves no partial
    cell). ``clean=True`` removes temp files left by killed writers when no writer is active.
    """

    def __init__(self, root: str | Path, *, fsync: bool = True, clean: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)
        if clean:
            self.clean(wait=False)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.root)!r})"

    # -- paths and locking ------------------------------------------------------------------------------------

    def _shard(self, key: str) -> Path:
        return self.root / "cells" / key[:2] / f"{key}.parquet"

    def _image_dir(self, key: str) -> Path:
        return self.root / "images" / key[:2] / key

    def _image_rel(self, key: str, name: str) -> str:
        return f"images/{key[:2]}/{key}/{name}.png"

    @contextlib.contextmanager
    def _lock(self, *, exclusive: bool, wait: bool = True) -> Iterator[bool]:
        """flock on the store's lock file: shared for writers, exclusive for cleaners; yields whether it was taken."""
        try:
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:  # a read-only store: nobody can be writing through us
            yield False
            return
        try:
            flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(fd, flags)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the lock (the kernel does so too if we are killed)

    # -- reading ----------------------------------------------------------------------------------------------

    def _read(self, key: str) -> tuple[pa.Table, dict[str, Any]] | None:
        """The cell's rows and metadata, or None when the shard is missing, truncated, garbage or not this cell's."""
        path = self._shard(key)
        if not path.is_file():
            return None
        try:
            table = pq.ParquetFile(path, page_checksum_verification=True).read()
            info = json.loads(table.schema.metadata[META_KEY])
            if info.get("key") != key or info.get("rows") != table.num_rows:
                return None
            return table, info
        except Exception:  # any read or decode failure means a corrupt shard; pyarrow raises many types
            return None

    def _images_ok(self, info: dict[str, Any]) -> bool:
        for entry in info.get("images", {}).values():
            try:
                data = (self.root / entry["path"]).read_bytes()
            except OSError:
                return False
            if _sha256(data) != entry["sha256"]:
                return False
        return True

    def has(self, key: str, *, verify: bool = False) -> bool:
        """Whether cell ``key`` is stored and its shard reads back (``verify=True``: and its images match)."""
        found = self._read(_check_name(key, "cell key"))
        return found is not None and (not verify or self._images_ok(found[1]))

    def get(self, key: str) -> pd.DataFrame | None:
        """The rows of cell ``key`` (with ``cell_key`` and ``image_path``), or None when missing or corrupt."""
        found = self._read(_check_name(key, "cell key"))
        return None if found is None else found[0].to_pandas()

    def meta(self, key: str) -> dict[str, Any] | None:
        """The ``meta`` dict given to :meth:`put` for cell ``key`` (None when missing or corrupt)."""
        found = self._read(_check_name(key, "cell key"))
        return None if found is None else found[1].get("meta")

    def keys(self) -> list[str]:
        """Keys of all shards present, sorted (a corrupt one is listed until :meth:`verify` removes it)."""
        return sorted(p.stem for p in (self.root / "cells").glob("*/*.parquet") if _NAME.fullmatch(p.stem))

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: str) -> bool:
        return self.has(key)

    def table(self) -> pd.DataFrame:
        """All cells' rows in one frame, sorted by cell key, each cell's rows in the order they were put."""
        tables, corrupt = [], []
        for key in self.keys():
            found = self._read(key)
            if found is None:
                corrupt.append(key)
            else:
                tables.append(found[0])
        if corrupt:
            warnings.warn(
                f"{len(corrupt)} unreadable cell(s) left out of the table, e.g. {corrupt[:3]}; "
                "store.verify() removes them so the next run recomputes them",
                stacklevel=2,
            )
        if not tables:
            return pd.DataFrame(columns=list(ADDED_COLUMNS))
        try:  # one arrow concatenation (columns missing in some cells become nulls) is twice as fast as pandas'
            frame = pa.concat_tables(
                [t.replace_schema_metadata(None) for t in tables], promote_options="permissive"
            ).to_pandas()
        except pa.ArrowException:  # a column whose type differs between cells: let pandas make it object
            frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
        return frame[[c for c in frame.columns if c not in ADDED_COLUMNS] + list(ADDED_COLUMNS)]

    # -- writing ----------------------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        rows: pd.DataFrame,
        images: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Store cell ``key`` (replacing it if present): images first, then the shard, each atomically.

        ``rows`` carry the spec fields as columns; a row with an ``image`` column value names an entry of
        ``images`` (PIL image or uint8 array), whose path relative to ``root`` lands in the added ``image_path``
        column, next to the added ``cell_key``. ``meta`` is any JSON-serialisable dict kept with the cell.
        """
        _check_name(key, "cell key")
        if not isinstance(rows, pd.DataFrame):
            raise SdlabError("rows must be a pandas DataFrame", key=key, type=type(rows).__name__)
        taken = [c for c in ADDED_COLUMNS if c in rows.columns]
        if taken:
            raise SdlabError("rows already have the columns the store adds", key=key, columns=taken, hint="drop them")
        if any(name is not None for name in rows.index.names):
            raise SdlabError("rows have a named index, which is not stored", key=key, hint="rows.reset_index()")
        images = dict(images or {})
        encoded = {_check_name(name, "image name"): _png_bytes(img, name) for name, img in images.items()}
        frame = rows.reset_index(drop=True)
        frame["cell_key"] = key
        paths: list[str | None] = [None] * len(frame)
        if "image" in frame.columns:
            for i, name in enumerate(frame["image"]):
                if _missing(name):
                    continue
                if name not in encoded:
                    raise SdlabError(
                        "a row names an image that was not given", key=key, image=name, given=sorted(encoded)
                    )
                paths[i] = self._image_rel(key, name)
        frame["image_path"] = pd.Series(paths, dtype=object)
        info = {
            "format": FORMAT,
            "key": key,
            "rows": len(frame),
            "images": {
                name: {"path": self._image_rel(key, name), "sha256": _sha256(data)} for name, data in encoded.items()
            },
            "meta": meta,
        }
        try:
            info_bytes = json.dumps(info).encode()
        except (TypeError, ValueError) as e:
            raise SdlabError(f"meta must be JSON-serialisable ({e})", key=key) from e
        shard = self._encode(frame, info_bytes, key)
        with self._lock(exclusive=False):
            image_files = {self.root / self._image_rel(key, name): data for name, data in encoded.items()}
            _atomic_write(image_files, fsync=self.fsync)
            _atomic_write({self._shard(key): shard}, fsync=self.fsync)  # the commit: after the images are durable

    def _encode(self, frame: pd.DataFrame, info: bytes, key: str) -> bytes:
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise SdlabError(
                f"rows cannot be stored as parquet ({e})", key=key, hint="give each column one type"
            ) from e
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: info})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, write_page_checksum=True)
        return sink.getvalue().to_pybytes()

    def _discard(self, key: str) -> None:
        self._shard(key).unlink(missing_ok=True)  # the cell is gone from here on
        shutil.rmtree(self._image_dir(key), ignore_errors=True)

    def discard(self, key: str) -> None:
        """Remove cell ``key`` (shard, then images) so that the next run recomputes it."""
        _check_name(key, "cell key")
        with self._lock(exclusive=False):
            self._discard(key)

    # -- maintenance ------------------------------------------------------------------------------------------

    def _clean(self) -> int:
        """Remove temp files and images of uncommitted cells; call only under the exclusive lock."""
        removed = 0
        for tmp in self.root.rglob(f"*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed += 1
        for folder in (self.root / "images").glob("*/*"):
            if folder.is_dir() and not self._shard(folder.name).exists():
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def clean(self, *, wait: bool = True) -> int:
        """Remove what killed writers left (temp files, images of cells never committed); returns how many.

        Runs only while no writer is active (exclusive lock); ``wait=False`` gives up at once if one is.
        """
        with self._lock(exclusive=True, wait=wait) as locked:
            return self._clean() if locked else 0

    def verify(self) -> list[str]:
        """Keys of corrupt cells (unreadable shard, missing or changed image), which are removed; also cleans."""
        corrupt = []
        with self._lock(exclusive=True):
            self._clean()
            for key in self.keys():
                found = self._read(key)
                if found is None or not self._images_ok(found[1]):
                    self._discard(key)
                    corrupt.append(key)
        return corrupt

    def compact(self) -> Path:
        """Rebuild ``root/results.parquet`` from all cells (atomically, under the exclusive lock); returns its path.

        Read it with ``pandas.read_parquet(path)``; image paths in it are relative to ``root``.
        """
        path = self.root / RESULTS_NAME
        with self._lock(exclusive=True):
            self._clean()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unreadable cells are left out; verify() names them
                frame = self.table()
            try:
                table = pa.Table.from_pandas(frame, preserve_index=False)
            except (pa.ArrowException, TypeError, ValueError) as e:
                raise SdlabError(
                    f"the cells' columns do not combine into one table ({e})",
                    hint="give each column the same type in every cell",
                ) from e
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            _atomic_write({path: sink.getvalue().to_pybytes()}, fsync=self.fsync)
        return path
