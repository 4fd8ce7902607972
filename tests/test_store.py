"""sdlab.sweeps.store: round trips, ordering, corruption detection, concurrent writers and writers killed mid-put."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import sdlab.sweeps.store as store_module
from sdlab.errors import SdlabError
from sdlab.sweeps.store import TMP_SUFFIX, ResultsStore

ROWS_PER_CELL = 8
REPO = Path(__file__).resolve().parents[1]


def _cell(key: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A deterministic cell for ``key``: 8 rows (seeds in descending order) naming 8 small images."""
    rng = np.random.default_rng(sum(key.encode()))
    seeds = list(range(ROWS_PER_CELL))[::-1]
    rows = pd.DataFrame(
        {
            "sampler": "Euler a",
            "steps": 20,
            "seed": seeds,
            "lpips": rng.random(ROWS_PER_CELL),
            "image": [f"seed{s}" for s in seeds],
        }
    )
    images = {f"seed{s}": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for s in seeds}
    return rows, images


def _temp_files(root: Path) -> list[Path]:
    return list(root.rglob(f"*{TMP_SUFFIX}"))


def _assert_whole_cells(table: pd.DataFrame) -> None:
    """Every cell in the table is complete, once, and equal to what was put."""
    assert not table.duplicated(["cell_key", "seed"]).any()
    for key, rows in table.groupby("cell_key", sort=False):
        expected, _ = _cell(key)
        assert rows["seed"].tolist() == expected["seed"].tolist()
        np.testing.assert_array_equal(rows["lpips"].to_numpy(), expected["lpips"].to_numpy())


def test_put_get_has_round_trip(tmp_path):
    store = ResultsStore(tmp_path / "store")
    rows, images = _cell("ab01")
    assert not store.has("ab01") and store.get("ab01") is None
    store.put("ab01", rows, images, meta={"spec": {"sampler": "Euler a", "steps": 20}})
    assert store.has("ab01") and store.has("ab01", verify=True) and store.keys() == ["ab01"]
    got = store.get("ab01")
    pd.testing.assert_frame_equal(got[list(rows.columns)], rows, check_dtype=False)
    assert (got["cell_key"] == "ab01").all()
    for name, path in zip(got["image"], got["image_path"], strict=True):
        assert path == f"images/ab/ab01/{name}.png"
        from PIL import Image

        np.testing.assert_array_equal(np.asarray(Image.open(store.root / path)), images[name])
    assert store.meta("ab01") == {"spec": {"sampler": "Euler a", "steps": 20}}
    # rows without images: image_path stays empty
    store.put("cd02", rows.drop(columns="image"))
    assert store.get("cd02")["image_path"].isna().all()


def test_table_sorted_by_cell_then_row_order_and_compact(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.table().empty
    for key in ["c0", "a2", "b1"]:
        rows, images = _cell(key)
        store.put(key, rows, images)
    table = store.table()
    assert table["cell_key"].tolist() == [k for k in ["a2", "b1", "c0"] for _ in range(ROWS_PER_CELL)]
    assert table["seed"].tolist() == list(range(ROWS_PER_CELL))[::-1] * 3  # each cell keeps its row order
    _assert_whole_cells(table)
    path = store.compact()
    assert path == tmp_path / "results.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(path), table, check_dtype=False)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_shard_is_detected_and_removed(tmp_path, damage):
    store = ResultsStore(tmp_path)
    for key in ["aa", "bb"]:
        store.put(key, *_cell(key))
    shard = tmp_path / "cells" / "bb" / "bb.parquet"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    assert not store.has("bb") and store.get("bb") is None
    with pytest.warns(UserWarning, match="unreadable"):
        assert store.table()["cell_key"].unique().tolist() == ["aa"]
    assert store.verify() == ["bb"]
    assert store.keys() == ["aa"] and not shard.exists() and not (tmp_path / "images" / "bb" / "bb").exists()


def test_missing_or_changed_image_is_detected_and_the_cell_discarded(tmp_path):
    store = ResultsStore(tmp_path)
    for key in ["aa1", "bb2", "cc3", "dd4"]:
        store.put(key, *_cell(key))
    (tmp_path / "images/aa/aa1/seed3.png").unlink()
    (tmp_path / "images/bb/bb2/seed0.png").write_bytes((tmp_path / "images/bb/bb2/seed1.png").read_bytes())
    image = tmp_path / "images/dd/dd4/seed2.png"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit changed
    image.write_bytes(bytes(data))
    assert store.has("aa1") and store.has("dd4")  # the shards alone are sound
    # has(verify=True), what a resuming sweep asks, discards a bad cell so that it is recomputed
    assert not store.has("aa1", verify=True) and not store.has("bb2", verify=True)
    assert store.keys() == ["cc3", "dd4"] and not (tmp_path / "images/aa/aa1").exists()
    assert store.verify() == ["dd4"]
    assert store.keys() == ["cc3"] and store.verify() == [] and store.has("cc3", verify=True)


def test_bad_input_raises(tmp_path):
    store = ResultsStore(tmp_path)
    rows, images = _cell("aa")
    with pytest.raises(SdlabError, match="bad cell key"):
        store.put("../aa", rows, images)
    with pytest.raises(SdlabError, match="not given"):
        store.put("aa", rows, {k: v for k, v in images.items() if k != "seed0"})
    with pytest.raises(SdlabError, match="uint8"):
        store.put("aa", rows, {**images, "seed0": images["seed0"].astype(np.float32)})
    with pytest.raises(SdlabError, match="cell_key"):
        store.put("aa", rows.assign(cell_key="x"), images)
    with pytest.raises(SdlabError, match="JSON"):
        store.put("aa", rows, images, meta={"x": object()})
    assert store.keys() == [] and not (tmp_path / "images").exists()


class _Killed(BaseException):
    """Stands for a SIGKILL: nothing in the store catches it."""


def test_leftovers_are_ignored_and_cleaned_only_without_active_writers(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    store.put("aa", *_cell("aa"))
    real_write = store_module._atomic_write

    def killed_before_the_commit(files: dict[Path, bytes], **kwargs: Any) -> None:
        if any(path.suffix == ".parquet" for path in files):
            raise _Killed
        real_write(files, **kwargs)

    monkeypatch.setattr(store_module, "_atomic_write", killed_before_the_commit)
    with pytest.raises(_Killed):
        store.put("bb", *_cell("bb"))
    monkeypatch.undo()
    orphans = tmp_path / "images" / "bb" / "bb"  # images of a cell whose shard never landed
    assert len(list(orphans.glob("*.png"))) == ROWS_PER_CELL
    leftover = tmp_path / "cells" / "bb" / f".bb.parquet.{uuid.uuid4().hex}{TMP_SUFFIX}"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a parquet file")
    assert store.keys() == ["aa"] and not store.has("bb")
    with store._lock(exclusive=False):  # a writer is busy: its temp files and images must survive
        assert store.clean(wait=False) == 0 and leftover.exists() and orphans.exists()
    ResultsStore(tmp_path)  # opening the store cleans
    assert not leftover.exists() and not orphans.exists() and _temp_files(tmp_path) == []
    assert store.has("aa", verify=True)


def _spawned_writer(root: str, keys: list[str]) -> None:
    store = ResultsStore(root)
    for i, key in enumerate(keys):
        if not store.has(key):
            store.put(key, *_cell(key))
        if i % 10 == 5:
            store.compact()


def test_two_processes_write_one_store(tmp_path):
    keys = [f"k{i:03d}" for i in range(30)]
    ctx = multiprocessing.get_context("spawn")
    orders = (keys[::2] + keys[1::2], keys[::-1])  # interleaved, meeting in the middle
    procs = [ctx.Process(target=_spawned_writer, args=(str(tmp_path), order)) for order in orders]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = ResultsStore(tmp_path)
    table = store.table()
    assert sorted(table["cell_key"].unique()) == keys and len(table) == len(keys) * ROWS_PER_CELL
    _assert_whole_cells(table)
    assert store.verify() == [] and _temp_files(tmp_path) == []
    pd.testing.assert_frame_equal(pd.read_parquet(store.compact()), table, check_dtype=False)


_WRITER = """
import sys
sys.path.insert(0, sys.argv[3])
from test_store import _cell
from sdlab.sweeps.store import ResultsStore
store = ResultsStore(sys.argv[1])
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    key = f"cell{i:04d}"
    if not store.has(key):
        store.put(key, *_cell(key))
print("done", flush=True)
"""


def test_writer_killed_mid_put_leaves_whole_cells_and_resumes(tmp_path):
    n_cells, rng = 40, random.Random(0)
    command = [sys.executable, "-c", _WRITER, str(tmp_path), str(n_cells), str(Path(__file__).parent)]
    seen = 0
    for _ in range(3):
        writer = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        store = ResultsStore(tmp_path)  # opening cleans what the killed writer left
        assert _temp_files(tmp_path) == []
        table = store.table()
        _assert_whole_cells(table)
        assert len(table) == len(store.keys()) * ROWS_PER_CELL >= seen
        assert store.verify() == []
        seen = len(table)
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0 and "done" in finished.stdout
    table = ResultsStore(tmp_path).table()
    assert table["cell_key"].nunique() == n_cells and len(table) == n_cells * ROWS_PER_CELL
    _assert_whole_cells(table)


def _snapshot(paths: list[Path]) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def test_a_folder_that_is_not_a_store_is_refused_and_left_alone(tmp_path):
    photos = tmp_path / "x" / "images" / "2024" / "holiday" / "p.jpg"  # issue #14: opening this deleted p.jpg
    photos.parent.mkdir(parents=True)
    photos.write_text("hi\n")
    notes = tmp_path / "y" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("mine")
    before = _snapshot([photos, notes])
    for folder in (tmp_path / "x", tmp_path / "y"):
        with pytest.raises(SdlabError, match="choose an empty or new folder") as caught:
            ResultsStore(folder)
        assert str(folder) in str(caught.value)
        assert not (folder / ".sdlab-store").exists() and not (folder / ".sdlab.lock").exists()
    assert _snapshot([photos, notes]) == before and sorted(os.listdir(tmp_path / "y")) == ["notes.txt"]
    with pytest.raises(SdlabError, match="is a file"):
        ResultsStore(notes)
    assert (tmp_path / "y" / "notes.txt").read_text() == "mine"


def test_new_and_empty_folders_become_stores_and_reopen(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "new" / "nested", tmp_path / "empty"):
        store = ResultsStore(folder)
        store.put("aa", *_cell("aa"))
        assert (folder / ".sdlab-store").is_file()
        assert ResultsStore(folder).has("aa", verify=True)  # a marked store reopens, whatever else it holds
    (tmp_path / "empty" / "notes.txt").write_text("a file of the user's beside the store")
    assert ResultsStore(tmp_path / "empty").keys() == ["aa"]
    (tmp_path / "empty" / ".sdlab-store").write_text('{"format": "sdlab-store", "version": 99}')
    with pytest.raises(SdlabError, match="newer sdlab"):
        ResultsStore(tmp_path / "empty")
    (tmp_path / "empty" / ".sdlab-store").write_text("garbage")
    with pytest.raises(SdlabError, match="not an sdlab store marker"):
        ResultsStore(tmp_path / "empty")


def _old_store(root: Path, keys: list[str]) -> None:
    """A store as sdlab wrote it before the marker: format-1 shards (no checksum, no image sizes), a lock file."""
    import hashlib
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sdlab.sweeps.store import _png_bytes

    (root / ".sdlab.lock").parent.mkdir(parents=True, exist_ok=True)
    (root / ".sdlab.lock").touch()
    for key in keys:
        rows, images = _cell(key)
        frame = rows.assign(cell_key=key, image_path=[f"images/{key[:2]}/{key}/{n}.png" for n in rows["image"]])
        entries = {}
        for name, image in images.items():
            data = _png_bytes(image, name)
            path = root / "images" / key[:2] / key / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            entries[name] = {"path": f"images/{key[:2]}/{key}/{name}.png", "sha256": hashlib.sha256(data).hexdigest()}
        info = {"format": 1, "key": key, "rows": len(frame), "images": entries, "meta": None}
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata({**table.schema.metadata, b"sdlab": json.dumps(info).encode()})
        (root / "cells" / key[:2]).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "cells" / key[:2] / f"{key}.parquet", write_page_checksum=True)


def test_a_store_of_older_sdlab_is_adopted_only_when_everything_in_it_is_sdlabs(tmp_path):
    _old_store(tmp_path / "old", ["aa1", "bb2"])
    store = ResultsStore(tmp_path / "old")
    assert (tmp_path / "old" / ".sdlab-store").is_file() and store.keys() == ["aa1", "bb2"]
    assert store.has("aa1", verify=True) and store.get("aa1")["seed"].tolist() == _cell("aa1")[0]["seed"].tolist()
    (tmp_path / "old/images/bb/bb2/seed0.png").write_bytes(b"not the png")  # format 1: checked by hash
    assert not store.has("bb2", verify=True) and store.keys() == ["aa1"]
    assert not (tmp_path / "old/images/bb/bb2").exists()  # its images, named in its shard, went with it

    _old_store(tmp_path / "mixed", ["cc3"])
    (tmp_path / "mixed" / "notes.txt").write_text("mine")
    with pytest.raises(SdlabError, match="not an sdlab store"):
        ResultsStore(tmp_path / "mixed")
    assert sorted(os.listdir(tmp_path / "mixed")) == [".sdlab.lock", "cells", "images", "notes.txt"]
    photos = tmp_path / "photos" / "images" / "ab" / "ab" / "seed0.png"  # sdlab's names, but no sign of sdlab
    photos.parent.mkdir(parents=True)
    photos.write_bytes(b"png")
    with pytest.raises(SdlabError, match="no sign that sdlab wrote them"):
        ResultsStore(tmp_path / "photos")
    assert photos.read_bytes() == b"png"


def test_foreign_files_inside_a_store_are_never_touched(tmp_path):
    store = ResultsStore(tmp_path)
    for key in ["aa1", "bb2", "cc3"]:
        store.put(key, *_cell(key))
    foreign = [
        tmp_path / "notes.txt",
        tmp_path / "images" / "2024" / "holiday" / "p.jpg",
        tmp_path / "images" / "aa" / "aa1" / "extra.txt",  # inside a committed cell's image folder
        tmp_path / "images" / "dd" / "dd4" / "seed0.png",  # a cell's image folder the store never wrote
        tmp_path / "cells" / "README.md",
        tmp_path / "cells" / "zz" / "bb2.parquet",  # not where the store keeps bb2
        tmp_path / "cells" / "aa" / f"aa1.parquet.{uuid.uuid4().hex}{TMP_SUFFIX}",  # not a name its writer makes
        tmp_path / f"mine{TMP_SUFFIX}",
    ]
    for i, path in enumerate(foreign):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"foreign {i}".encode())
    (tmp_path / "cells" / "ab" / "ab9.parquet").mkdir(parents=True)  # a folder where a shard could be
    before = _snapshot(foreign)
    assert store.clean() == 0 and ResultsStore(tmp_path).keys() == ["aa1", "bb2", "cc3"]
    assert store.verify() == [] and len(pd.read_parquet(store.compact())) == 3 * ROWS_PER_CELL
    assert not store.has("dd4") and not store.has("ab9")
    store.discard("aa1")
    store.discard("dd4")
    assert store.keys() == ["bb2", "cc3"] and os.listdir(tmp_path / "images" / "aa" / "aa1") == ["extra.txt"]
    assert _snapshot(foreign) == before
    store.put("aa1", *_cell("aa1"))
    assert store.has("aa1", verify=True) and _snapshot(foreign) == before


def test_the_old_path_still_works_and_the_store_loads_without_torch():
    import sdlab

    with pytest.warns(DeprecationWarning, match="sdlab.store moved to sdlab.sweeps.store"):
        from sdlab.store import ResultsStore as Old
    assert Old is ResultsStore and sdlab.ResultsStore is ResultsStore
    code = "import sys, sdlab; sdlab.ResultsStore; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # reading results needs no torch and no model code
