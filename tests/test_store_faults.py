"""Fault suite of sdlab.sweeps.store (issue #14): writers SIGKILLed at random points (several seeds), a read-only
folder, a full disk, corrupted shards, corrupted and missing images, unreadable files, foreign files in the store.

The property throughout: the resumed store equals an uninterrupted run's (rows, image bytes, shard bytes, the set
of sdlab's files), and no byte outside sdlab's own files changes. The read-only and full-disk cases mount a small
tmpfs, which needs root (without it, read-only falls back to chmod and full disk is skipped, with the reason).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence, Set
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sdlab.sweeps.store as store_module
from sdlab.errors import SdlabError
from sdlab.sweeps.store import TMP_SUFFIX, ResultsStore

N_CELLS = 100  # enough for five kills at random points
IMAGES_PER_CELL = 3
REPO = Path(__file__).resolve().parents[1]


def cell_key(i: int) -> str:
    """The i-th cell's key, shaped like a sweep's (a SHA-256 hex digest)."""
    return hashlib.sha256(f"cell {i}".encode()).hexdigest()


def make_cell(key: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The cell for ``key``: rows and small random images, all derived from the key alone."""
    rng = np.random.default_rng(int(key[:16], 16))
    names = [f"seed{s}" for s in range(IMAGES_PER_CELL)]
    rows = pd.DataFrame(
        {"sampler": "Euler a", "seed": range(IMAGES_PER_CELL), "lpips": rng.random(IMAGES_PER_CELL), "image": names}
    )
    size = int(rng.integers(8, 24))
    return rows, {name: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for name in names}


def fill(store: ResultsStore, n: int = N_CELLS) -> None:
    """What a resuming sweep does: compute (here: make) and put every cell that is not stored soundly."""
    for i in range(n):
        key = cell_key(i)
        if not store.has(key, verify=True):
            store.put(key, *make_cell(key), meta={"i": i})


_WRITER = """
import sys
sys.path.insert(0, sys.argv[3])
from test_store_faults import fill
from sdlab.sweeps.store import ResultsStore
store = ResultsStore(sys.argv[1])  # with fsync, as a sweep: most of a put is then spent writing files
print("ready", flush=True)
fill(store, int(sys.argv[2]))
store.compact()
print("done", flush=True)
"""


def _writer(root: Path) -> list[str]:
    return [sys.executable, "-c", _WRITER, str(root), str(N_CELLS), str(Path(__file__).parent)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run's store."""
    root = tmp_path_factory.mktemp("reference") / "store"
    store = ResultsStore(root, fsync=False)
    fill(store)
    store.compact()
    return root


def _files(root: Path, skip: Set[Path] = frozenset()) -> dict[str, bytes]:
    """Every file under ``root`` but those in ``skip``, by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and p not in skip
    }


def _snapshot(paths: list[Path]) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def _plant_foreign(root: Path) -> list[Path]:
    """Files of the user's in a store: beside it, in its folders, in a cell's image folder and a look-alike one."""
    cell5 = cell_key(5)
    paths = [
        root / "notes.txt",
        root / "images" / "2024" / "holiday" / "p.jpg",
        root / "images" / cell5[:2] / cell5 / "extra.txt",
        root / "images" / "ff" / ("f" * 64) / "seed0.png",
        root / "cells" / "README.md",
        root / "cells" / "zz" / f"{cell5}.parquet",
        root / "cells" / cell5[:2] / f"{cell5}.parquet.{uuid.uuid4().hex}{TMP_SUFFIX}",
        root / f"scratch{TMP_SUFFIX}",
    ]
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"the user's file {i}\n".encode())
    return paths


def _assert_equals_reference(root: Path, reference: Path, foreign: Sequence[Path] = ()) -> None:
    """The store at ``root`` holds what the uninterrupted run's does, byte for byte (the lock file aside)."""
    got, want = ResultsStore(root), ResultsStore(reference)
    pd.testing.assert_frame_equal(got.table(), want.table())
    skip = {*foreign, root / ".sdlab.lock"}
    own = _files(root, skip)
    expected = _files(reference, {reference / ".sdlab.lock"})
    assert sorted(own) == sorted(expected)  # no orphan image, manifest or temp file left, none missing
    assert own == expected  # images, manifests and shards byte for byte; results.parquet too when compacted


def _assert_sound(root: Path, foreign: list[Path]) -> None:
    """After a kill and a reopen: no temp file, only whole cells, every image folder's cell committed."""
    store = ResultsStore(root)  # opening cleans what the killed writer left
    assert [p for p in root.rglob(f"*{TMP_SUFFIX}") if p not in foreign] == []
    for key, rows in store.table().groupby("cell_key"):
        expected, _ = make_cell(key)
        np.testing.assert_array_equal(rows["lpips"].to_numpy(), expected["lpips"].to_numpy())
    for manifest in (root / "images").glob("*/*/.sdlab-images"):
        assert store.has(manifest.parent.name)  # no image of an uncommitted cell is left
    assert store.verify() == []


def _committed(root: Path) -> int:
    return len(list((root / "cells").glob("*/*.parquet")))


def test_sigkill_at_random_points_resumes_to_the_uninterrupted_result(tmp_path, reference):
    root = tmp_path / "killed"
    ResultsStore(root)
    foreign = _plant_foreign(root)
    before = _snapshot(foreign)
    rng, committed = random.Random(14), []
    for target in sorted(rng.sample(range(5, N_CELLS - 20), 5)):  # five kills, each at a random point
        writer = subprocess.Popen(_writer(root), cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while writer.poll() is None and _committed(root) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.03))  # a few puts' time: lands in has(), in put() or between them
        assert writer.poll() is None, "the writer finished before it could be killed"
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
        writer.stdout.close()
        _assert_sound(root, foreign)
        committed.append(len(ResultsStore(root).keys()))
        assert _snapshot(foreign) == before
    assert committed == sorted(committed) and committed[-1] < N_CELLS, committed
    resumed = subprocess.run(_writer(root), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0 and "done" in resumed.stdout, resumed.stderr
    _assert_equals_reference(root, reference, foreign)
    assert _snapshot(foreign) == before


def _fill_until_the_nth_rename(root: str, n: int) -> None:
    """In a forked child: fill the store, SIGKILLing this process just before its n-th rename into place."""
    real_replace, calls = os.replace, [0]

    def replace(src: str | Path, dst: str | Path) -> None:
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)

    os.replace = replace
    fill(ResultsStore(root, fsync=False))


def _uncommitted(root: Path) -> int:
    """Image folders of cells whose shard never landed."""
    return sum(not (root / "cells" / m.parent.name[:2] / f"{m.parent.name}.parquet").exists()
               for m in (root / "images").glob("*/*/.sdlab-images"))  # fmt: skip


def test_sigkill_at_every_step_of_a_put_resumes_to_the_uninterrupted_result(tmp_path, reference):
    """Kills that land on chosen file operations (each put renames the manifest, each image, then the shard):
    before the first image, between images, after the images and before the shard, between cells."""
    import multiprocessing

    root = tmp_path / "killed"
    ResultsStore(root)
    foreign = _plant_foreign(root)
    before = _snapshot(foreign)
    fork = multiprocessing.get_context("fork")
    rng, renames_per_cell, orphans = random.Random(144), 2 + IMAGES_PER_CELL, 0
    for n in [rng.randrange(1, 8 * renames_per_cell) for _ in range(8)] + list(range(1, renames_per_cell + 1)):
        child = fork.Process(target=_fill_until_the_nth_rename, args=(str(root), n))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == -signal.SIGKILL
        assert list(root.rglob(f".*{TMP_SUFFIX}"))  # killed with a temp file written, not yet renamed
        orphans += _uncommitted(root)
        _assert_sound(root, foreign)
        assert _uncommitted(root) == 0 and _snapshot(foreign) == before
    assert orphans >= renames_per_cell - 1  # kills left images of uncommitted cells, which the reopen removed
    fill(ResultsStore(root, fsync=False))
    ResultsStore(root).compact()
    _assert_equals_reference(root, reference, foreign)
    assert _snapshot(foreign) == before


@contextlib.contextmanager
def _tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``mount_point`` (root only), unmounted at the end whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    if not shutil.which("mount"):
        pytest.skip("no mount command here")
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _remount(mount_point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], check=True, capture_output=True)


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[str]:
    """``folder`` made read-only: remounted (tmpfs, root) or chmod a-w (other users); yields the expected hint."""
    if os.path.ismount(folder):
        _remount(folder, "ro")
        try:
            yield "read-only file system"
        finally:
            _remount(folder, "rw")
        return
    folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
    for path in folders:
        path.chmod(0o555)
    try:
        yield "let this user write in"
    finally:
        for path in folders:
            path.chmod(0o755)


@contextlib.contextmanager
def _maybe_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs for root; for other users a plain folder (chmod stops them writing)."""
    if os.geteuid() == 0:
        with _tmpfs(tmp_path / "mnt", "16m") as mount_point:
            yield mount_point
    else:
        (tmp_path / "mnt").mkdir()
        yield tmp_path / "mnt"


def test_read_only_store_reads_refuses_writes_and_resumes(tmp_path, reference):
    with _maybe_tmpfs(tmp_path) as mnt:
        root = mnt / "store"
        store = ResultsStore(root, fsync=False)
        fill(store, N_CELLS // 2)
        foreign = _plant_foreign(root)
        before = _files(mnt)
        with _read_only(mnt) as hint:
            store = ResultsStore(root)  # a marked store opens without writing
            assert store.has(cell_key(0), verify=True) and store.verify() == []
            assert len(store.table()) == N_CELLS // 2 * IMAGES_PER_CELL
            key = cell_key(N_CELLS // 2)
            for write in (lambda: store.put(key, *make_cell(key)), store.compact):
                with pytest.raises(SdlabError, match="cannot write") as caught:
                    write()
                assert str(root) in str(caught.value) and hint in str(caught.value)
            with pytest.raises(SdlabError, match="cannot create the store folder") as caught:
                ResultsStore(mnt / "new")
            assert str(mnt / "new") in str(caught.value)
            assert not store.has(key)
        assert _files(mnt) == before  # nothing written, nothing half-written
        fill(ResultsStore(root, fsync=False))
        ResultsStore(root).compact()
        _assert_equals_reference(root, reference, foreign)


def _fill_disk(folder: Path) -> list[Path]:
    """4 KiB files (one tmpfs page each) in ``folder`` until the file system is full; they free a page each."""
    folder.mkdir()
    fillers = []
    while True:
        path = folder / f"{len(fillers):05d}"
        try:
            with open(path, "wb") as f:
                f.write(b"x" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            path.unlink()
            return fillers
        fillers.append(path)


def test_full_disk_fails_cleanly_at_every_step_of_a_put_and_resumes(tmp_path, reference):
    with _tmpfs(tmp_path / "mnt", "8m") as mnt:
        root = mnt / "store"
        store = ResultsStore(root)
        fill(store, 10)
        foreign = _plant_foreign(root)
        before = _snapshot(foreign)
        fillers = _fill_disk(mnt / "filler")
        with pytest.raises(SdlabError, match="free space on the disk") as caught:
            ResultsStore(mnt / "new")  # a new store cannot write its marker
        assert str(mnt / "new") in str(caught.value) and not (mnt / "new").exists()
        key, failures = cell_key(10), 0
        while True:  # free one page at a time: the put fails at the manifest, at each image, at the shard
            state = _files(root)
            try:
                store.put(key, *make_cell(key), meta={"i": 10})
                break
            except SdlabError as e:
                failures += 1
                assert "free space on the disk" in str(e) and str(root) in str(e)
                assert _files(root) == state  # no temp file, no image of the cell that did not land
                assert not store.has(key)
            assert fillers, "the cell never fitted"
            fillers.pop().unlink()
        assert failures >= 1 + IMAGES_PER_CELL  # the manifest and each image at least
        assert store.has(key, verify=True) and store.verify() == []
        for path in fillers:
            path.unlink()
        fill(store)
        store.compact()
        _assert_equals_reference(root, reference, foreign)
        assert _snapshot(foreign) == before


def _copy(reference: Path, to: Path) -> Path:
    shutil.copytree(reference, to)
    return to


def _shard(root: Path, key: str) -> Path:
    return root / "cells" / key[:2] / f"{key}.parquet"


def test_any_changed_byte_of_a_shard_is_found(tmp_path, reference):
    root = _copy(reference, tmp_path / "store")
    store = ResultsStore(root)
    key = cell_key(0)
    shard = _shard(root, key)
    good = shard.read_bytes()
    missed = []
    for at in range(0, len(good), 5):  # every fifth byte of the file, footer and checksum included
        bad = bytearray(good)
        bad[at] ^= 0x10
        shard.write_bytes(bytes(bad))
        if store.has(key):
            missed.append(at)
    assert missed == []
    for size in (0, 4, len(good) // 2, len(good) - 1):
        shard.write_bytes(good[:size])
        assert not store.has(key) and store.get(key) is None
    shard.write_bytes(good)
    assert store.has(key, verify=True)


def test_corrupted_shards_are_discarded_and_recomputed(tmp_path, reference):
    root = _copy(reference, tmp_path / "store")
    foreign = _plant_foreign(root)
    before = _snapshot(foreign)
    rng = random.Random(15)
    damaged = [cell_key(i) for i in rng.sample(range(N_CELLS), 24)]
    for n, key in enumerate(damaged):
        shard = _shard(root, key)
        data = bytearray(shard.read_bytes())
        if n % 3 == 0:
            del data[rng.randrange(len(data)) :]  # truncated
        else:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)  # one bit flipped anywhere
        shard.write_bytes(bytes(data))
    store = ResultsStore(root)
    assert all(not store.has(key) for key in damaged)
    with pytest.warns(UserWarning, match="unreadable"):
        assert len(store.table()) == (N_CELLS - len(damaged)) * IMAGES_PER_CELL
    assert not store.has(damaged[0], verify=True)  # the sweep's question discards the cell ...
    assert not _shard(root, damaged[0]).exists()
    assert sorted(store.verify()) == sorted(damaged[1:])  # ... verify() the others
    assert len(store.keys()) == N_CELLS - len(damaged)
    fill(store)
    store.compact()
    _assert_equals_reference(root, reference, foreign)
    assert _snapshot(foreign) == before


def test_corrupted_and_missing_images_are_discarded_and_recomputed(tmp_path, reference):
    root = _copy(reference, tmp_path / "store")
    foreign = _plant_foreign(root)
    before = _snapshot(foreign)
    rng = random.Random(16)
    damaged = [cell_key(i) for i in rng.sample(range(N_CELLS), 25)]
    for n, key in enumerate(damaged):
        folder = root / "images" / key[:2] / key
        image = folder / f"seed{rng.randrange(IMAGES_PER_CELL)}.png"
        data = bytearray(image.read_bytes())
        kind = n % 5
        if kind == 0:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)  # a flipped bit, same size
            image.write_bytes(bytes(data))
        elif kind == 1:
            image.write_bytes(bytes(data[: rng.randrange(len(data))]))  # truncated
        elif kind == 2:
            image.unlink()  # missing
        elif kind == 3:
            other = folder / f"seed{(int(image.stem[-1]) + 1) % IMAGES_PER_CELL}.png"
            image.write_bytes(other.read_bytes())  # another image of the cell
        else:
            for path in folder.iterdir():  # the whole folder gone (but a foreign file in it)
                if path not in foreign:
                    path.unlink()
    store = ResultsStore(root)
    assert all(store.has(key) for key in damaged)  # the shards are sound: only verification finds this
    half = len(damaged) // 2
    assert all(not store.has(key, verify=True) for key in damaged[:half])
    assert not any(store.has(key) for key in damaged[:half])  # discarded, so that they are recomputed
    assert sorted(store.verify()) == sorted(damaged[half:])
    fill(store)
    store.compact()
    _assert_equals_reference(root, reference, foreign)
    assert _snapshot(foreign) == before


def test_unreadable_files_raise_naming_them_and_discard_nothing(tmp_path, reference, monkeypatch):
    """Issue #15: an I/O or permission error is no proof of corruption: it is raised, and nothing recomputed."""
    root = _copy(reference, tmp_path / "store")
    store = ResultsStore(root)
    key = cell_key(3)
    real_read = store_module._read_file
    before = _files(root)
    cases = [
        (_shard(root, key), OSError(errno.EIO, "Input/output error"), "I/O error"),
        (_shard(root, key), PermissionError(errno.EACCES, "Permission denied"), "let this user read"),
        (root / "images" / key[:2] / key / "seed1.png", OSError(errno.EIO, "Input/output error"), "I/O error"),
    ]
    for target, error, hint in cases:

        def failing_read(path: Path, target: Path = target, error: OSError = error) -> bytes:
            if path == target:
                raise error
            return real_read(path)

        monkeypatch.setattr(store_module, "_read_file", failing_read)
        calls = [lambda: store.has(key, verify=True), store.verify]
        if target.suffix == ".parquet":
            calls += [lambda: store.has(key), lambda: store.get(key), store.table, store.compact]
        for call in calls:
            with pytest.raises(SdlabError, match="cannot read") as caught:
                call()
            assert str(target) in str(caught.value) and hint in str(caught.value)
        monkeypatch.undo()
        assert store.has(key, verify=True)
    assert _files(root) == before
