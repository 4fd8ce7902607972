"""sdlab.store: round trips, ordering, corruption detection, concurrent writers and writers killed mid-put."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sdlab.errors import SdlabError
from sdlab.store import TMP_SUFFIX, ResultsStore

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


def test_missing_or_changed_image_is_detected_by_verify(tmp_path):
    store = ResultsStore(tmp_path)
    for key in ["aa1", "bb2", "cc3"]:
        store.put(key, *_cell(key))
    (tmp_path / "images/aa/aa1/seed3.png").unlink()
    (tmp_path / "images/bb/bb2/seed0.png").write_bytes((tmp_path / "images/bb/bb2/seed1.png").read_bytes())
    assert store.has("aa1") and not store.has("aa1", verify=True) and not store.has("bb2", verify=True)
    assert store.verify() == ["aa1", "bb2"]
    assert store.keys() == ["cc3"] and store.verify() == []


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


def test_leftovers_are_ignored_and_cleaned_only_without_active_writers(tmp_path):
    store = ResultsStore(tmp_path)
    store.put("aa", *_cell("aa"))
    leftover = tmp_path / "cells" / "bb" / f".bb.parquet.0123{TMP_SUFFIX}"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a parquet file")
    orphan = tmp_path / "images" / "bb" / "bb" / "seed0.png"  # images of a cell whose shard never landed
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"png")
    assert store.keys() == ["aa"] and not store.has("bb")
    with store._lock(exclusive=False):  # a writer is busy: its temp files must survive
        assert store.clean(wait=False) == 0 and leftover.exists()
    ResultsStore(tmp_path)  # opening the store cleans
    assert not leftover.exists() and not orphan.parent.exists() and _temp_files(tmp_path) == []
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
from sdlab.store import ResultsStore
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
