"""A crash-safe results store for sweeps: one parquet shard per cell, images as PNG files, atomic commits.

>>> import tempfile, pandas as pd
>>> store = ResultsStore(tempfile.mkdtemp())                  # e.g. "runs/sweep1": a new or empty folder
>>> rows = pd.DataFrame({"sampler": "Euler a", "steps": 20, "seed": [0, 1], "lpips": [0.12, 0.10]})
>>> key = "3f9c0a"                                            # e.g. a hash of the cell's spec
>>> if not store.has(key, verify=True):                       # a sound cell is never recomputed
...     store.put(key, rows)                                  # images={"seed0": uint8 array, ...} if rows name them
>>> store.table()[["seed", "lpips", "cell_key"]]              # every cell, sorted by cell key then row order
   seed  lpips cell_key
0     0   0.12   3f9c0a
1     1   0.10   3f9c0a
>>> pd.read_parquet(store.compact()).shape                    # results.parquet: spec, metrics, cell_key, image_path
(2, 6)

Layout under ``root``::

    .sdlab-store                            the marker: this folder is a store (JSON: format name and version)
    cells/<key[:2]>/<key>.parquet           one shard per cell; its existence is the commit marker
    images/<key[:2]>/<key>/<name>.png       the cell's images, written before the shard
    images/<key[:2]>/<key>/.sdlab-images    the names of every image the store wrote in that folder (JSON)
    results.parquet                         rebuilt by compact()
    .sdlab.lock                             flock: shared while writing, exclusive while compacting / cleaning

Commits. Every file is written to a temp file ``.<name>.<32 hex digits>.sdlab-tmp`` in its own folder, fsynced
and renamed into place, so a writer killed at any moment (SIGKILL included) leaves either the whole cell or no
cell, plus temp files and uncommitted images that the next cleaner removes. A shard records each image's byte size
and SHA-256, and the SHA-256 of the shard file itself (a footer entry, hashed while it held zeros), so a changed,
truncated or missing byte anywhere in a cell is found: ``has(key, verify=True)`` and ``verify()`` discard such a
cell so that the next run recomputes it. Only proven corruption (checksum, size or decoding failure, a shard that
is not the key's, a missing file) counts as such: a file that cannot be read (permissions, I/O errors) raises
SdlabError naming it and discards nothing. A failed write (full disk, read-only or unwritable folder) raises
SdlabError naming the path and what to do, after removing its temp files and the images of the cell it could not
commit. Shards of format 1 (older sdlab: no file checksum, no image sizes) are still read and checked by hash.

Ownership: the store deletes only what it can prove it wrote.

1. The marker. A store is created only in a new or empty folder, and writes its marker there first. A folder that
   is not empty and has no marker is refused, except a store made by older sdlab (which wrote no marker): it is
   adopted (the marker written) only when every entry in it is sdlab's own (cells/, images/, results.parquet,
   .sdlab.lock, sdlab temp files) and a lock file or a sound shard shows that sdlab made it.
2. What it removes is a closed list, in a marked store too: temp files named as its writer names them, for a file
   it writes in that very folder; the shard at ``cells/<key[:2]>/<key>.parquet`` when it is proven corrupt (or the
   cell is discarded); and in ``images/<key[:2]>/<key>/`` the files ``<name>.png`` for the names listed in that
   folder's manifest or in the cell's own shard, then the manifest, then the folder if it is left empty. The
   manifest is written (atomically, as a union with the names it listed before) before any image of the cell, so
   images of a cell whose shard never landed are always listed there. Nothing else is removed, and cleaning does
   not enter symlinked folders: a foreign file anywhere in the tree, inside cells/ or a cell's image folder
   included, keeps its bytes, and does not trouble ``verify()`` or ``compact()``.

Many processes may write one store; two writers of the same key must write the same content (a deterministic
sweep), the last rename wins. Cleaning runs only under the exclusive lock, so never while a writer is active.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import stat
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sdlab.errors import SdlabError

__all__ = ["ResultsStore"]

FORMAT = 2  # shard format: 2 adds the shard's own SHA-256 and the images' sizes; 1 is still read
STORE_VERSION = 1  # the marker's version: a store whose marker is newer is refused
STORE_KIND = "sdlab-store"
META_KEY = b"sdlab"  # parquet schema metadata entry holding the cell's key, row count, image hashes and meta
CHECK_KEY = "sdlab.sha256"  # parquet footer entry: SHA-256 of the shard file with this value replaced by zeros
CHECK_PLACEHOLDER = b"0" * 64
TMP_SUFFIX = ".sdlab-tmp"
LOCK_NAME = ".sdlab.lock"
MARKER_NAME = ".sdlab-store"
MANIFEST_NAME = ".sdlab-images"
RESULTS_NAME = "results.parquet"
CELLS, IMAGES = "cells", "images"
ADDED_COLUMNS = ("cell_key", "image_path")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}")
_TEMP = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{32}" + re.escape(TMP_SUFFIX))
_HEX64 = re.compile(rb"[0-9a-f]{64}")
_CHOOSE = "choose an empty or new folder (or an existing sdlab store)"
_MISSING, _CORRUPT = "missing", "corrupt"  # what _read returns instead of a cell's (table, info)
_ABSENT = (FileNotFoundError, NotADirectoryError)

Cell = tuple[pa.Table, dict[str, Any]]


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SdlabError(
            f"bad {what} {name!r}",
            hint="use letters, digits and _ . = - (first a letter or digit), at most 200 characters",
        )
    return name


def _key_in(key: str, prefix: str) -> bool:
    """Whether ``key`` is a cell key whose files live under the folder named ``prefix``."""
    return bool(_NAME.fullmatch(key)) and key[:2] == prefix


def _image_rel(key: str, name: str) -> str:
    return f"{IMAGES}/{key[:2]}/{key}/{name}.png"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_file(path: Path) -> bytes:
    """All of ``path``'s bytes (the store's one way to read a file, so that tests can inject I/O errors)."""
    return path.read_bytes()


def _os_error(exc: OSError, path: Path, action: str) -> SdlabError:
    """An SdlabError for a failed file operation: which path, why, and what to do about it."""
    code = exc.errno
    where = path.parent
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        hint = f"free space on the disk holding {where} (or choose another folder), then run again"
    elif code == errno.EROFS:
        hint = f"{where} is on a read-only file system: remount it read-write or choose another folder"
    elif code in (errno.EACCES, errno.EPERM):
        verb = "read" if action == "read" else "write in"
        hint = f"let this user {verb} {where} (chmod / chown) or choose another folder"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        hint = f"a file stands where a folder should be, at {where} or above it: choose another folder"
    elif code == errno.EIO:
        hint = "the disk reported an I/O error: check it (dmesg, fsck) and copy the store to a sound disk"
    else:
        hint = "check the folder and the disk it is on, then run again"
    reason = exc.strerror or str(exc)
    return SdlabError(
        f"cannot {action} {path}: {reason}", path=str(path), errno=errno.errorcode.get(code or 0), hint=hint
    )


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


def _makedirs(folder: Path, *, fsync: bool) -> None:
    """Create ``folder`` and its missing parents (each made durable in its parent when ``fsync``)."""
    if folder.is_dir():
        return
    missing = []
    while not os.path.lexists(folder) and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
        if fsync:
            _fsync_dir(made.parent)


def _atomic_write(files: dict[Path, bytes], *, fsync: bool, replaced: list[Path] | None = None) -> None:
    """Write each file to a temp file next to it, fsync them, rename them into place, then fsync their folders.

    The renames follow the order of ``files``. An OSError becomes an SdlabError naming the file; either way no
    temp file is left. ``replaced`` collects the paths renamed into place (before a failure).
    """
    temps: dict[Path, Path] = {}
    path: Path | None = None
    try:
        for path, data in files.items():
            _makedirs(path.parent, fsync=fsync)
            tmp = temps[path] = path.parent / f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"
            with open(tmp, "wb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
        for path, tmp in list(temps.items()):
            os.replace(tmp, path)
            del temps[path]
            if replaced is not None:
                replaced.append(path)
    except BaseException as exc:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and path is not None:
            raise _os_error(exc, path, "write") from exc
        raise
    if fsync:
        for folder in {path.parent for path in files}:
            _fsync_dir(folder)


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of ``folder`` ([] when it does not exist or is not a folder)."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except _ABSENT:
        return []
    except OSError as e:
        raise _os_error(e, folder, "list") from e


def _subdirs(folder: Path) -> list[str]:
    """Names of the real (not symlinked) folders in ``folder``: the ones cleaning may enter."""
    return [e.name for e in _entries(folder) if e.is_dir(follow_symlinks=False)]


def _unlink_own(path: Path) -> bool:
    """Remove the file (or link) ``path`` if it is there and not a folder; whether it was removed."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        os.unlink(path)
    except _ABSENT:
        return False
    except OSError as e:
        raise _os_error(e, path, "remove") from e
    return True


def _remove_temps(folder: Path, ours: Callable[[str], bool]) -> int:
    """Remove the temp files in ``folder`` that the store's writer made for a target name that ``ours`` accepts."""
    removed = 0
    for entry in _entries(folder):
        match = _TEMP.fullmatch(entry.name)
        if match and ours(match["target"]) and entry.is_file(follow_symlinks=False):
            removed += _unlink_own(Path(entry.path))
    return removed


def _image_target(name: str) -> bool:
    return name == MANIFEST_NAME or (name.endswith(".png") and bool(_NAME.fullmatch(name[: -len(".png")])))


def _own_root_entry(entry: os.DirEntry[str]) -> bool:
    """Whether a top-level entry of an unmarked folder is one that sdlab writes."""
    if entry.name in (CELLS, IMAGES):
        return entry.is_dir(follow_symlinks=False)
    if entry.name in (RESULTS_NAME, LOCK_NAME):
        return entry.is_file(follow_symlinks=False)
    match = _TEMP.fullmatch(entry.name)
    return bool(match) and match["target"] in (RESULTS_NAME, MARKER_NAME) and entry.is_file(follow_symlinks=False)


def _checksum_ok(data: bytes, check: bytes) -> bool:
    """Whether ``check`` (the footer's value) is the SHA-256 of ``data`` with that value zeroed."""
    if not _HEX64.fullmatch(check):
        return False
    at = data.rfind(check)  # the footer's entry, the last thing before the footer's closing fields
    return at >= 0 and _sha256(data[:at] + CHECK_PLACEHOLDER + data[at + len(check) :]).encode() == check


def _info_ok(info: Any, key: str, rows: int) -> bool:
    """Whether a shard's metadata is cell ``key``'s with ``rows`` rows and well-formed image entries."""
    if not isinstance(info, dict) or info.get("key") != key or info.get("rows") != rows:
        return False
    images = info.get("images")
    if not isinstance(images, dict):
        return False
    for name, entry in images.items():
        if not (_NAME.fullmatch(name) and isinstance(entry, dict) and entry.get("path") == _image_rel(key, name)):
            return False
        digest, size = entry.get("sha256"), entry.get("size", 0)
        if not (isinstance(digest, str) and _HEX64.fullmatch(digest.encode())):
            return False
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return False
    return True


def _decode_shard(data: bytes, key: str) -> Cell | None:
    """The rows and metadata in a shard file's bytes, or None when they are not a sound shard of cell ``key``."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=True)
        check = (parquet.metadata.metadata or {}).get(CHECK_KEY.encode())
        if check is not None and not _checksum_ok(data, check):
            return None
        table = parquet.read()
        info = json.loads(table.schema.metadata[META_KEY])
    except Exception:  # the bytes are in memory: any failure to decode them is corruption (pyarrow raises many types)
        return None
    if check is None and not (isinstance(info, dict) and info.get("format") == 1):
        return None  # only shards of format 1 come without a checksum
    return (table, info) if _info_ok(info, key, table.num_rows) else None


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

    ``root`` must be a new or empty folder (the store writes its marker there) or an existing store; anything else
    is refused with an SdlabError. ``fsync=False`` trades durability against power loss for speed (a killed
    process still leaves no partial cell). ``clean=True`` removes what killed writers left (temp files, images of
    cells never committed) when no writer is active.
    """

    def __init__(self, root: str | Path, *, fsync: bool = True, clean: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self._open()
        if clean:
            self.clean(wait=False)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.root)!r})"

    # -- opening: the marker ------------------------------------------------------------------------------------

    def _open(self) -> None:
        """Create the store, open an existing one, or adopt an unmarked one of older sdlab; refuse anything else."""
        root, created = self.root, False
        try:
            if not os.path.lexists(root):
                root.mkdir(parents=True, exist_ok=True)
                created = True
            is_dir = stat.S_ISDIR(os.stat(root).st_mode)
        except OSError as e:
            raise _os_error(e, root, "create the store folder" if created or not root.exists() else "open") from e
        if not is_dir:
            raise SdlabError(f"the store folder {root} is a file", path=str(root), hint=_CHOOSE)
        marker = root / MARKER_NAME
        try:
            text: bytes | None = _read_file(marker)
        except _ABSENT:
            text = None
        except IsADirectoryError:
            text = b""
        except OSError as e:
            raise _os_error(e, marker, "read") from e
        if text is not None:
            self._check_marker(text, marker)
            return
        entries = _entries(root)
        foreign = sorted(e.name for e in entries if not _own_root_entry(e))
        if foreign:
            raise SdlabError(
                f"{root} is not empty and is not an sdlab store", path=str(root), found=foreign[:5], hint=_CHOOSE
            )
        names = {e.name for e in entries}
        if names & {CELLS, IMAGES, RESULTS_NAME} and LOCK_NAME not in names and not self._any_sound_shard():
            raise SdlabError(
                f"{root} has sdlab's folder names but no sign that sdlab wrote them (no marker, lock or shard)",
                path=str(root),
                found=sorted(names),
                hint=_CHOOSE,
            )
        doc = json.dumps({"format": STORE_KIND, "version": STORE_VERSION}).encode()
        try:
            _atomic_write({marker: doc}, fsync=self.fsync)
        except SdlabError:
            if created:
                with contextlib.suppress(OSError):
                    root.rmdir()  # the empty folder this call made
            raise

    @staticmethod
    def _check_marker(text: bytes, marker: Path) -> None:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != STORE_KIND or not isinstance(doc.get("version"), int):
            raise SdlabError(
                f"{marker} is not an sdlab store marker",
                path=str(marker),
                hint=f"{_CHOOSE}; if this folder is an sdlab store, delete that file and open it again",
            )
        if doc["version"] > STORE_VERSION:
            raise SdlabError(
                "the store was written by a newer sdlab",
                path=str(marker.parent),
                version=doc["version"],
                supported=STORE_VERSION,
                hint="upgrade sdlab (pip install -U sdlab)",
            )

    def _any_sound_shard(self) -> bool:
        return any(not isinstance(self._read(key), str) for key in self.keys())

    # -- paths and locking ------------------------------------------------------------------------------------

    def _shard(self, key: str) -> Path:
        return self.root / CELLS / key[:2] / f"{key}.parquet"

    def _image_dir(self, key: str) -> Path:
        return self.root / IMAGES / key[:2] / key

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

    def _read(self, key: str) -> Cell | str:
        """The cell's rows and metadata; ``_MISSING`` when there is no shard, ``_CORRUPT`` when it is proven bad.

        A shard that cannot be read (permissions, I/O error) raises an SdlabError naming it: that is no proof.
        """
        path = self._shard(key)
        try:
            data = _read_file(path)
        except (*_ABSENT, IsADirectoryError):  # a folder there is not a shard (and not the store's to remove)
            return _MISSING
        except OSError as e:
            raise _os_error(e, path, "read") from e
        found = _decode_shard(data, key)
        return _CORRUPT if found is None else found

    def _images_ok(self, key: str, info: dict[str, Any]) -> bool:
        """Whether every image the shard names is there with its recorded size (if any) and SHA-256."""
        for name, entry in info["images"].items():
            path = self.root / _image_rel(key, name)
            try:
                st = os.stat(path)
                if not stat.S_ISREG(st.st_mode) or st.st_size != entry.get("size", st.st_size):
                    return False
                data = _read_file(path)
            except _ABSENT:
                return False
            except OSError as e:
                raise _os_error(e, path, "read") from e
            if _sha256(data) != entry["sha256"]:
                return False
        return True

    def _state(self, key: str, *, images: bool) -> str:
        """The cell's state: "ok", ``_MISSING`` or ``_CORRUPT`` (``images``: a missing or changed image is corrupt)."""
        found = self._read(key)
        if isinstance(found, str):
            return found
        return "ok" if not images or self._images_ok(key, found[1]) else _CORRUPT

    def has(self, key: str, *, verify: bool = False) -> bool:
        """Whether cell ``key`` is stored and its shard is sound.

        ``verify=True`` also checks each image's size and SHA-256, and discards a cell found corrupt (shard or
        images) so that it is recomputed: what a resuming sweep should ask before skipping a cell. An unreadable
        file (permissions, I/O error) raises an SdlabError naming it.
        """
        _check_name(key, "cell key")
        state = self._state(key, images=verify)
        if state == _CORRUPT and verify:
            with self._lock(exclusive=False):
                if self._state(key, images=True) == _CORRUPT:  # not rewritten meanwhile by another writer
                    self._discard(key)
        return state == "ok"

    def get(self, key: str) -> pd.DataFrame | None:
        """The rows of cell ``key`` (with ``cell_key`` and ``image_path``), or None when missing or corrupt."""
        found = self._read(_check_name(key, "cell key"))
        return None if isinstance(found, str) else found[0].to_pandas()

    def meta(self, key: str) -> dict[str, Any] | None:
        """The ``meta`` dict given to :meth:`put` for cell ``key`` (None when missing or corrupt)."""
        found = self._read(_check_name(key, "cell key"))
        return None if isinstance(found, str) else found[1].get("meta")

    def keys(self) -> list[str]:
        """Keys of all shards present, sorted (a corrupt one is listed until :meth:`verify` removes it)."""
        found = []
        for prefix in _entries(self.root / CELLS):
            if not prefix.is_dir():
                continue
            for entry in _entries(Path(prefix.path)):
                key = entry.name[: -len(".parquet")]
                if entry.name.endswith(".parquet") and _key_in(key, prefix.name) and entry.is_file():
                    found.append(key)
        return sorted(found)

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: str) -> bool:
        return self.has(key)

    def table(self) -> pd.DataFrame:
        """All cells' rows in one frame, sorted by cell key, each cell's rows in the order they were put."""
        tables, corrupt = [], []
        for key in self.keys():
            found = self._read(key)
            if isinstance(found, str):
                if found == _CORRUPT:
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
        """Store cell ``key`` (replacing it if present): the image manifest, the images, then the shard.

        ``rows`` carry the spec fields as columns; a row with an ``image`` column value names an entry of
        ``images`` (PIL image or uint8 array), whose path relative to ``root`` lands in the added ``image_path``
        column, next to the added ``cell_key``. ``meta`` is any JSON-serialisable dict kept with the cell.
        A failed write (full disk, read-only folder) raises an SdlabError naming the path, and leaves no temp
        file and no image of the uncommitted cell (a cell it was replacing is discarded once its images changed).
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
                paths[i] = _image_rel(key, name)
        frame["image_path"] = pd.Series(paths, dtype=object)
        info = {
            "format": FORMAT,
            "key": key,
            "rows": len(frame),
            "images": {
                name: {"path": _image_rel(key, name), "sha256": _sha256(data), "size": len(data)}
                for name, data in encoded.items()
            },
            "meta": meta,
        }
        try:
            info_bytes = json.dumps(info).encode()
        except (TypeError, ValueError) as e:
            raise SdlabError(f"meta must be JSON-serialisable ({e})", key=key) from e
        shard_bytes = self._encode(frame, info_bytes, key)
        folder = self._image_dir(key)
        with self._lock(exclusive=False):
            had_shard = os.path.lexists(self._shard(key))
            replaced: list[Path] = []
            try:
                if encoded:  # the manifest, renamed into place first, lists the images before any of them lands
                    files = self._manifest_update(key, list(encoded))
                    files.update({folder / f"{name}.png": data for name, data in encoded.items()})
                    _atomic_write(files, fsync=self.fsync, replaced=replaced)
                _atomic_write({self._shard(key): shard_bytes}, fsync=self.fsync)  # the commit, after the images
            except SdlabError:
                self._undo_put(key, had_shard=had_shard, images_changed=bool(replaced))
                raise

    def _undo_put(self, key: str, *, had_shard: bool, images_changed: bool) -> None:
        """After a failed put: remove the uncommitted cell's images, or discard the cell whose images changed."""
        with contextlib.suppress(SdlabError):  # best effort: the error being raised says what to do
            if not had_shard and not os.path.lexists(self._shard(key)):
                self._drop_images(key, self._manifest(key) or [])
            elif had_shard and images_changed:
                self._discard(key)

    def _encode(self, frame: pd.DataFrame, info: bytes, key: str) -> bytes:
        """The shard file: parquet with page checksums, ``info`` in its schema metadata, its SHA-256 in the footer."""
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: info})
            sink = pa.BufferOutputStream()
            with pq.ParquetWriter(sink, table.schema, write_page_checksum=True) as writer:
                writer.write_table(table)
                writer.add_key_value_metadata({CHECK_KEY: CHECK_PLACEHOLDER.decode()})
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise SdlabError(
                f"rows cannot be stored as parquet ({e})", key=key, hint="give each column one type"
            ) from e
        data = sink.getvalue().to_pybytes()
        at = data.rfind(CHECK_PLACEHOLDER)  # the footer's entry (the last one: nothing after it but fixed fields)
        return data[:at] + _sha256(data).encode() + data[at + len(CHECK_PLACEHOLDER) :]

    def _manifest(self, key: str) -> list[str] | None:
        """The image names listed in the manifest of ``key``'s image folder (None: no sound manifest there)."""
        path = self._image_dir(key) / MANIFEST_NAME
        try:
            text = _read_file(path)
        except (*_ABSENT, IsADirectoryError):
            return None
        except OSError as e:
            raise _os_error(e, path, "read") from e
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, dict) or doc.get("key") != key or not isinstance(doc.get("images"), list):
            return None
        return [name for name in doc["images"] if isinstance(name, str) and _NAME.fullmatch(name)]

    def _manifest_update(self, key: str, names: list[str]) -> dict[Path, bytes]:
        """The manifest file to write so that it lists ``names`` (and those it listed before); {} if it does."""
        known = self._manifest(key) or []
        if set(names) <= set(known):
            return {}
        doc = {"key": key, "images": sorted(set(known) | set(names))}
        return {self._image_dir(key) / MANIFEST_NAME: json.dumps(doc).encode()}

    def _drop_images(self, key: str, names: list[str]) -> int:
        """Remove the images ``names`` of cell ``key``, its manifest, then its folder if left empty."""
        folder = self._image_dir(key)
        removed = sum(_unlink_own(folder / f"{name}.png") for name in names if _NAME.fullmatch(name))
        removed += _unlink_own(folder / MANIFEST_NAME)
        with contextlib.suppress(OSError):  # only an empty folder goes: a file the store did not write keeps it
            folder.rmdir()
        return removed

    def _discard(self, key: str) -> None:
        names = set(self._manifest(key) or [])
        found = self._read(key)
        if not isinstance(found, str):
            names.update(found[1]["images"])  # a store of older sdlab has no manifest
        _unlink_own(self._shard(key))  # the cell is gone from here on
        self._drop_images(key, sorted(names))

    def discard(self, key: str) -> None:
        """Remove cell ``key`` (shard, then the images the store wrote for it) so that the next run recomputes it."""
        _check_name(key, "cell key")
        with self._lock(exclusive=False):
            self._discard(key)

    # -- maintenance ------------------------------------------------------------------------------------------

    def _clean(self) -> int:
        """Remove the store's temp files and the images of uncommitted cells; call only under the exclusive lock."""
        removed = _remove_temps(self.root, lambda target: target in (RESULTS_NAME, MARKER_NAME))
        cells = self.root / CELLS
        for prefix in _subdirs(cells):
            removed += _remove_temps(
                cells / prefix,
                lambda target, p=prefix: target.endswith(".parquet") and _key_in(target[: -len(".parquet")], p),
            )
        images = self.root / IMAGES
        for prefix in _subdirs(images):
            for key in _subdirs(images / prefix):
                if not _key_in(key, prefix):
                    continue
                removed += _remove_temps(images / prefix / key, _image_target)
                if os.path.lexists(self._shard(key)):
                    continue  # a committed cell (a corrupt one is verify()'s to discard)
                names = self._manifest(key)
                if names is not None:  # images the store wrote for a cell that never landed
                    removed += self._drop_images(key, names)
        return removed

    def clean(self, *, wait: bool = True) -> int:
        """Remove what killed writers left (temp files, images of cells never committed); returns how many files.

        Runs only while no writer is active (exclusive lock); ``wait=False`` gives up at once if one is.
        """
        with self._lock(exclusive=True, wait=wait) as locked:
            return self._clean() if locked else 0

    def verify(self) -> list[str]:
        """Keys of corrupt cells (shard or image changed, truncated or missing), which are removed; also cleans.

        An unreadable file (permissions, I/O error) raises an SdlabError naming it and removes nothing.
        """
        corrupt = []
        with self._lock(exclusive=True) as locked:
            if locked:
                self._clean()
            for key in self.keys():
                if self._state(key, images=True) == _CORRUPT:
                    self._discard(key)
                    corrupt.append(key)
        return corrupt

    def compact(self) -> Path:
        """Rebuild ``root/results.parquet`` from all cells (atomically, under the exclusive lock); returns its path.

        Read it with ``pandas.read_parquet(path)``; image paths in it are relative to ``root``.
        """
        path = self.root / RESULTS_NAME
        with self._lock(exclusive=True) as locked:
            if locked:
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
