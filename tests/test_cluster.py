"""Sweeps on a simulated two-node Ray cluster (``ray.cluster_utils.Cluster``, 2 nodes of 1 CPU, loopback only):
the smoke sweep equals the local run row for row and image for image; a worker killed mid-sweep is retried and
changes nothing; a driver killed with SIGKILL resumes from the store without recomputing stored cells."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

import sdlab.sweeps as S  # noqa: E402
from sdlab.sweeps import ResultsStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "data" / "sweeps" / "smoke.toml"
TIMING = ["seconds", "elapsed"]  # wall-clock columns: the only values that differ between identical runs
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}  # loopback only, no telemetry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    node = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    c.add_node(**node)
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The smoke sweep run locally with one torch thread, as each Ray worker of one CPU runs it."""
    out = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        S.run_sweep(SMOKE, out, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out


def assert_same_sweep(a: Path, b: Path) -> None:
    """Same rows (timing columns aside) and byte-identical image pixels."""
    key = ["cell_key", "image", "comparison", "metric", "step"]
    ta = pd.read_parquet(a / "results.parquet").sort_values(key).reset_index(drop=True)
    tb = pd.read_parquet(b / "results.parquet").sort_values(key).reset_index(drop=True)
    assert len(ta) == len(tb) > 0
    timing = ta["metric"] == "seconds"
    pd.testing.assert_frame_equal(ta[~timing].drop(columns=TIMING), tb[~timing].drop(columns=TIMING))
    from PIL import Image

    paths = ta["image_path"].dropna().unique()
    assert len(paths) == 14
    for p in paths:
        assert np.array_equal(np.asarray(Image.open(a / p)), np.asarray(Image.open(b / p))), p


def worker_pids() -> list[int]:
    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if cmd.startswith("ray::CellWorker"):
            pids.append(proc.pid)
    return pids


def stored(out: Path) -> dict[str, int]:
    """Stored cell shards and their modification times."""
    return {p.stem: p.stat().st_mtime_ns for p in (out / "cells").glob("*/*.parquet")}


def test_ray_sweep_equals_the_local_run(cluster, local, tmp_path):
    table = S.run_sweep(SMOKE, tmp_path, executor="ray", progress=False)
    assert_same_sweep(local, tmp_path)
    workers = pd.DataFrame(table.attrs["workers"])
    assert len(workers) == 2 and workers["cells"].sum() == 7 and workers["images"].sum() == 14
    assert (workers["load_s"] > 0).all()  # each worker loaded the model once
    assert table.attrs["startup_seconds"] > 0
    again = S.run_sweep(SMOKE, tmp_path, executor="ray", progress=False)  # everything stored: nothing runs
    assert again.attrs["workers"] == [] and len(again) == len(table)


def test_a_worker_killed_mid_sweep_is_retried(cluster, local, tmp_path):
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if stored(tmp_path):  # the first cell is in: workers are busy with the next ones
                pids = worker_pids()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    try:
        table = S.run_sweep(SMOKE, tmp_path, executor="ray", progress=False)
    finally:
        killer.join()
    assert killed, "no worker was killed"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    assert sum(w["cells"] for w in table.attrs["workers"]) == 7
    assert_same_sweep(local, tmp_path)


def test_a_killed_driver_resumes_without_recomputing(cluster, local, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sdlab", "sweep", str(SMOKE), "--out", str(out), "--ray", cluster.address, "--quiet"]
    driver = subprocess.Popen(cmd, env={**os.environ, **RAY_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(stored(out)) < 3 and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    _, err = driver.communicate(timeout=60)
    before = stored(out)
    assert 3 <= len(before) < 7, f"the driver was not killed mid-sweep ({len(before)} cells stored): {err[-2000:]}"
    table = S.run_sweep(SMOKE, out, executor="ray", progress=False)
    assert sum(w["cells"] for w in table.attrs["workers"]) == 7 - len(before)  # only the missing cells ran
    after = stored(out)
    assert {k: after[k] for k in before} == before  # stored cells untouched
    assert len(ResultsStore(out)) == 7
    assert_same_sweep(local, out)
