"""Sweeps on the embedded model: config errors before anything is written, pure picklable cells, the table round
trip, cached re-runs that compute nothing, and a sweep killed (SIGKILL) at random points that resumes to exactly
the uninterrupted result."""

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sdlab
import sdlab.measure.metrics as M
import sdlab.sweeps as S
from sdlab import SdlabError
from sdlab.sweeps import ResultsStore, cells

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "data" / "sweeps" / "smoke.toml"
PROMPT = "a red circle above a blue square, sunset sky"
TIMING = ["seconds", "elapsed"]  # wall-clock columns: the only values that differ between identical runs


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides):
    config = {
        "name": "tiny",
        "prompts": [PROMPT],
        "seeds": [3],
        "samplers": ["Euler", "DPM++ 2M"],
        "steps": [2, 4],
        "cfg": 5,
        "metrics": ["latent_rmse", "ssim", "psnr"],
        "trajectory": True,
        "reference": "highest",
    }
    config.update(overrides)
    return config


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """The table without wall-clock times, in a canonical row order."""
    table = table[table["metric"] != "seconds"].drop(columns=TIMING)
    return table.sort_values(["cell_key", "seed", "comparison", "metric", "step"]).reset_index(drop=True)


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"sampler": ["Euler"]}, "sampler", "did you mean 'samplers'"),
        ({"steps": ["ten"]}, "steps", "integers >= 1"),
        ({"steps": [0]}, "steps", "integers >= 1"),
        ({"cfg": [True]}, "cfg", "numbers"),
        ({"seeds": [-1]}, "seeds", "integers in [0"),
        ({"samplers": []}, "samplers", "empty"),
        ({"prompts": "a cat", "steps": []}, "steps", "empty"),
        ({"samplers": ["Euler b"]}, "samplers", "unknown sampler"),
        ({"schedules": ["Karas"]}, "schedules", "unknown schedule"),
        ({"sampler_options": {"eta": 0.5}}, "sampler_options.eta", "does not take option"),
        ({"sampler_options": {"DPM2": {"eta": 0.5}}}, "sampler_options.DPM2", "not in samplers"),
        ({"reference": "best"}, "reference", "'highest'"),
        ({"reference": {"sampler": "DPM++ 2M", "steps": "many"}}, "reference", "steps"),
        ({"reference": {"sampler": "Eulr", "steps": 10}}, "reference", "unknown sampler"),
        ({"metrics": ["fid"]}, "metrics", "unknown metric"),
        ({"trajectory": "yes"}, "trajectory", "true or false"),
        ({"size": "64x60"}, "size", "multiples of 8"),
        ({"rng": "gpu"}, "rng", "GPU"),
        ({"step_image_metrics": ["ssim"], "trajectory": False}, "step_image_metrics", "trajectory"),
    ],
)
def test_a_bad_config_names_the_key_and_writes_nothing(tmp_path, change, key, words):
    out = tmp_path / "out"
    with pytest.raises(SdlabError) as info:
        S.run_sweep(tiny(**change), out, progress=False)
    assert info.value.context.get("key") == key
    assert words in str(info.value)
    assert not out.exists()


def test_missing_keys_bad_toml_and_other_executors_fail_before_writing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    broken = tmp_path / "broken.toml"
    broken.write_text('prompts = ["a cat"\nseeds = [0]\n')
    with pytest.raises(SdlabError, match="cannot parse the sweep file"):
        S.run_sweep(broken, out)
    with pytest.raises(SdlabError, match="needs 'samplers'"):
        S.run_sweep({"prompts": [PROMPT], "seeds": [0]}, out)
    with pytest.raises(SdlabError, match="no such sweep file"):
        S.run_sweep(tmp_path / "missing.toml", out)
    with pytest.raises(SdlabError, match="unknown executor 'dask'"):
        S.run_sweep(tiny(), out, executor="dask")
    with pytest.raises(SdlabError, match="settings of the 'ray' executor"):
        S.run_sweep(tiny(), out, workers=2)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(SdlabError, match="needs Ray, which is not installed") as err:
        S.run_sweep(tiny(), out, executor="ray")
    assert 'pip install "sdlab[ray]"' in str(err.value)
    assert not out.exists()


def test_example_sweep_files_expand():
    sizes = {}
    for path in sorted((ROOT / "data" / "sweeps").glob("*.toml")):
        cells = S.expand(path)
        assert len({c.key() for c in cells}) == len(cells)  # no two cells alike
        sizes[path.stem] = len(cells)
    assert {"smoke", "convergence", "ancestral", "schedules"} <= set(sizes)
    assert sizes["smoke"] == 3 * 2 + 1  # 3 samplers x 2 step counts, one reference run


# --- cells ----------------------------------------------------------------------------------------------------


def test_cells_are_picklable_and_keyed_by_everything_that_changes_them():
    cells = S.expand(tiny(sampler_options={"Euler": {"s_churn": [0.0, 1.0]}}))
    assert len(cells) == 2 * 2 + 2  # Euler x 2 churns x 2 steps, DPM++ 2M x 2 steps
    for cell in cells:
        again = pickle.loads(pickle.dumps(cell))
        assert again == cell and again.key() == cell.key()
    base = S.expand(tiny())[0]
    keys = {
        base.key(),
        S.expand(tiny(seeds=[4]))[0].key(),
        S.expand(tiny(cfg=6))[0].key(),
        S.expand(tiny(metrics=["latent_rmse"]))[0].key(),
        S.expand(tiny(trajectory=False))[0].key(),
        S.expand(tiny(rng="NV"))[0].key(),
    }
    assert len(keys) == 6
    assert S.expand(tiny())[0].key() == base.key()  # stable


def test_run_cell_measures_against_the_reference_run():
    """The 2-step cell's distance to the 4-step one ("highest") equals the metric recomputed from generate()."""
    cells = S.expand(tiny(samplers=["DPM++ 2M"]))
    own, short = cells  # the highest-step cell comes first: the others are measured against it
    assert own.reference == own.run and short.reference == own.run and short.run.steps == 2
    result = S.run_cell(short)
    rows = result.rows
    assert set(rows["comparison"]) == {"cost", "reference", "next", "final"}
    ref = rows[rows["comparison"] == "reference"].set_index("metric")["value"]
    a = sdlab.generate(PROMPT, sampler="DPM++ 2M", steps=2, cfg=5, seeds=[3])
    b = sdlab.generate(PROMPT, sampler="DPM++ 2M", steps=4, cfg=5, seeds=[3])
    assert ref["latent_rmse"] == pytest.approx(float(M.latent_rmse(a.latents, b.latents)[0]), rel=1e-6)
    assert ref["ssim"] == pytest.approx(float(M.ssim(a.images, b.images)[0]), rel=1e-6)
    assert rows["spec_key"].iloc[0] == a.specs[0].key()
    assert set(rows[rows["comparison"] == "next"]["step"]) == {0}  # 2 steps: one step-to-step delta
    assert result.images["seed3"].dtype == np.uint8 and result.images["seed3"].shape == (64, 64, 3)
    own_rows = S.run_cell(own).rows
    assert "reference" not in set(own_rows["comparison"])  # a cell is not measured against itself


# --- sweeps ---------------------------------------------------------------------------------------------------


def test_sweep_table_round_trip_and_cached_rerun_computes_nothing(tmp_path, monkeypatch):
    calls = []
    real = cells.run_cell

    def counting(cell):
        calls.append(cell.key())
        return real(cell)

    monkeypatch.setattr(cells, "run_cell", counting)  # what both executors call
    out = tmp_path / "sweep"
    table = S.run_sweep(tiny(), out, progress=False)
    assert len(calls) == 4
    on_disk = pd.read_parquet(out / "results.parquet")
    pd.testing.assert_frame_equal(table, on_disk)
    assert table["cell_key"].nunique() == 4 and set(table["sampler"]) == {"Euler", "DPM++ 2M"}
    for field in ("prompt", "seed", "sampler_key", "schedule_resolved", "model_hash", "spec_key", "versions.torch"):
        assert table[field].notna().all()
    for rel in table["image_path"].unique():  # every image beside the table, as the cell made it
        assert (out / rel).is_file()
    keys = ["cell_key", "seed", "comparison", "metric", "step"]
    assert not table.duplicated(keys).any()

    calls.clear()
    again = S.run_sweep(tiny(), out, progress=False)
    assert calls == []
    pd.testing.assert_frame_equal(again, table)

    victim = table["cell_key"].iloc[0]
    ResultsStore(out).discard(victim)
    third = S.run_sweep(tiny(), out, progress=False)
    assert calls == [victim]  # only the missing cell is recomputed
    pd.testing.assert_frame_equal(comparable(third), comparable(table))


def _committed(out: Path) -> int:
    return len(list((out / "cells").glob("*/*.parquet")))


def _sweep_in_child(out: str) -> None:
    S.run_sweep(SMOKE, out, progress=False)


@pytest.mark.slow
def test_a_sweep_killed_at_random_points_resumes_to_the_uninterrupted_result(tmp_path):
    """The smoke sweep SIGKILLed four times, then resumed: the same rows, the same image bytes, no duplicates.

    Kill 1: `sdlab sweep` in a fresh interpreter, at a random moment of its start. Kills 2-4: the sweep in a
    forked child (the loaded model inherited, so no start-up cost), after a random number of committed cells
    plus a random delay, which lands anywhere in generating, measuring or writing a cell. The reference run is
    an uninterrupted sweep into another folder.
    """
    import multiprocessing

    out = tmp_path / "killed"
    n_cells = len(S.expand(SMOKE))
    rng = random.Random(20240611)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "sdlab", "sweep", str(SMOKE), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.5, 2.0))
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)

    clean = S.run_sweep(SMOKE, tmp_path / "clean", progress=False)  # uninterrupted; its model is inherited below
    fork = multiprocessing.get_context("fork")
    killed = []
    for target in sorted(rng.sample(range(1, n_cells), 3)):
        child = fork.Process(target=_sweep_in_child, args=(str(out),))
        child.start()
        deadline = time.monotonic() + 120
        while child.is_alive() and _committed(out) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4))
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
            killed.append(_committed(out))
        child.join(timeout=60)
        assert child.exitcode in (0, -signal.SIGKILL)
    assert len(killed) >= 2, "the sweep finished before it could be killed"
    assert min(killed) < n_cells

    resumed = S.run_sweep(SMOKE, out, progress=False)
    assert resumed["cell_key"].nunique() == n_cells
    assert not resumed.duplicated(["cell_key", "seed", "comparison", "metric", "step"]).any()
    pd.testing.assert_frame_equal(comparable(resumed), comparable(clean))
    pd.testing.assert_frame_equal(resumed, pd.read_parquet(out / "results.parquet"))
    for rel in clean["image_path"].unique():
        assert (out / rel).read_bytes() == (tmp_path / "clean" / rel).read_bytes()
    assert ResultsStore(out).verify() == []
    assert not list(out.rglob("*.sdlab-tmp"))


def test_cli_sweep_prints_a_summary(tmp_path, capsys, monkeypatch):
    from sdlab.cli import main

    path = tmp_path / "tiny.toml"
    path.write_text(
        f'prompts = ["{PROMPT}"]\nseeds = [3]\nsamplers = ["Euler"]\nsteps = [2, 4]\ncfg = 5\n'
        'metrics = ["latent_rmse"]\nreference = "highest"\n'
    )
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "latent_rmse" in printed and "2 cells" in printed
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["sweep", str(path), "--out", str(tmp_path / "o2"), "--ray"]) == 2
    assert "needs Ray" in capsys.readouterr().err and not (tmp_path / "o2").exists()


def test_a_local_sweep_never_imports_ray(tmp_path):
    code = (
        "import sys, sdlab.sweeps, sdlab.sweeps.ray, sdlab.cli; "
        f"sdlab.sweeps.run_sweep({str(SMOKE)!r}, {str(tmp_path)!r}, progress=False); "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_worker_table_sums_cells_per_worker():
    stats = [
        {"worker": "a", "seconds": 2.0, "load_seconds": 1.0, "images": 2},
        {"worker": "a", "seconds": 1.0, "load_seconds": 0.0, "images": 2},
        {"worker": "b", "seconds": 4.0, "load_seconds": 0.5, "images": 4},
    ]
    table = S.worker_table(stats).set_index("worker")
    assert table.loc["a", "cells"] == 2 and table.loc["a", "images"] == 4 and table.loc["a", "busy_s"] == 3.0
    assert table.loc["a", "images_per_s"] == pytest.approx(4 / 3) and table.loc["b", "load_s"] == 0.5
    assert list(S.worker_table([]).columns) == ["worker", "cells", "images", "busy_s", "images_per_s", "load_s"]


def test_old_import_paths_still_work_and_warn():
    import importlib

    from sdlab.sweeps.cells import SweepRun
    from sdlab.sweeps.ray import map_ray

    old = importlib.import_module("sdlab.sweep")
    with pytest.warns(DeprecationWarning, match="sdlab.sweep moved to sdlab.sweeps"):
        assert old.run_sweep is S.run_sweep
    with pytest.warns(DeprecationWarning, match="moved"), pytest.warns(DeprecationWarning, match="is now SweepRun"):
        assert old.Run is SweepRun  # the old path, and the old name
    with pytest.warns(DeprecationWarning, match="sdlab.cluster moved to sdlab.sweeps.ray"):
        from sdlab.cluster import map_ray as old_map_ray
    assert old_map_ray is map_ray
