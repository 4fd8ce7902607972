"""Issue #14 on sweeps and the command line: everything checkable is checked before anything is written, A1111's
timestep samplers sweep on their Automatic schedule, bad images are recomputed on reuse, and the CLI answers every
user error with one line (never a traceback unless --debug)."""

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

import sdlab
import sdlab.sweeps as S
from sdlab import SdlabError
from sdlab.cli import main
from sdlab.infotext import read_png
from sdlab.sweeps import plan

PROMPT = "a red circle above a blue square, sunset sky"

pytestmark = pytest.mark.usefixtures("one_thread")


def grid(**overrides):
    config = {
        "prompts": [PROMPT],
        "seeds": [0],
        "samplers": ["Euler"],
        "steps": [2],
        "cfg": 5,
        "metrics": ["latent_rmse"],
        "reference": "none",
    }
    config.update(overrides)
    return config


@pytest.mark.parametrize("sampler", ["DDIM", "PLMS", "UniPC", "DDIM CFG++"])
def test_a1111_timestep_samplers_sweep_on_their_automatic_schedule(tmp_path, sampler):
    """Defect 4: these failed validation ("need the model's training sigma table") though the model has one."""
    table = S.run_sweep(grid(samplers=[sampler], steps=[3]), tmp_path / "out", progress=False)
    assert set(table["schedule_resolved"]) == {f"{sdlab.resolve_sampler(sampler).info.key} timesteps"}
    direct = sdlab.generate(PROMPT, sampler=sampler, steps=3, cfg=5, seeds=[0])
    assert float(table.query("metric == 'nfe'")["value"].iloc[0]) == direct.nfe


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"steps": [2, 2000]}, "steps", "steps > 1000"),
        ({"sampler_options": {"Euler": {"s_churn": "abc"}}, "samplers": ["Euler"]}, "sampler_options.s_churn", ""),
        ({"sampler_options": {"eta": "0.5"}, "samplers": ["Euler a"]}, "sampler_options.eta", ""),
        ({"sampler_options": {"eta": [0.5, -1.0]}, "samplers": ["Euler a"]}, "sampler_options.eta", ""),
        ({"size": "100000x100000"}, "size", "over the limit"),
        ({"size": [64, 64], "device": "meta"}, "device", ""),
        # found by the fuzzing suite: the schedule resolved, so the grid passed, then the sampler refused the run
        ({"samplers": ["DDIM"], "steps": [1, 2]}, "samplers", "single sigma"),
        ({"samplers": ["dpm_fast"], "steps": [1, 2]}, "samplers", "nothing to integrate"),
        ({"samplers": ["UniPC"], "schedules": ["Karras"], "steps": [5]}, "samplers", "within the training table"),
    ],
)
def test_everything_checkable_is_checked_before_anything_is_written(tmp_path, change, key, words):
    """Defect 8: these passed validation, then failed after the store (and its lock file) existed."""
    out = tmp_path / "out"
    with pytest.raises(SdlabError) as info:
        S.run_sweep(grid(**change), out, progress=False)
    assert info.value.context.get("key") == key, str(info.value)
    assert words in str(info.value)
    assert not out.exists()


def test_a_broken_model_file_is_refused_before_writing(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"garbage!")
    out = tmp_path / "out"
    with pytest.raises(SdlabError) as info:
        S.run_sweep(grid(model=str(broken)), out, progress=False)
    assert info.value.context.get("key") == "model"
    assert not out.exists()


def test_grid_volume_has_a_limit_and_the_plan_is_printed(tmp_path, monkeypatch, capsys):
    """Defect 6: a huge grid starts with no estimate; now it is refused over the limit, else its size is printed."""
    monkeypatch.setenv("SDLAB_MAX_SWEEP_IMAGES", "3")
    out = tmp_path / "out"
    with pytest.raises(SdlabError, match="4 images in 4 cells, over the limit of 3") as info:
        S.run_sweep(grid(seeds=[0], steps=[1, 2, 3, 4]), out, progress=False)
    assert "SDLAB_MAX_SWEEP_IMAGES=4" in str(info.value)
    assert not out.exists()
    monkeypatch.setenv("SDLAB_MAX_SWEEP_IMAGES", "4")
    S.run_sweep(grid(seeds=[0], steps=[1, 2, 3, 4]), out, progress=True)
    assert "4 of 4 cells to run (4 images; 0 cells stored)" in capsys.readouterr().err
    S.run_sweep(grid(seeds=[0], steps=[1, 2, 3, 4]), out, progress=True)
    assert "0 of 4 cells to run (0 images; 4 cells stored)" in capsys.readouterr().err


def test_the_estimate_counts_steps_and_evaluations(monkeypatch):
    cells = S.expand(grid(samplers=["Euler", "Heun"], steps=[10]))
    monkeypatch.setattr(plan, "generate_run", lambda run, trajectory: None)
    times = iter([0.0, 1.0, 1.0, 1.5, 2.0, 3.0])  # 2 steps: 1 s (warm-up), 0.5 s; 4 steps: 1 s -> 0.25 s per eval
    monkeypatch.setattr("time.perf_counter", lambda: next(times))
    assert plan.estimate_seconds(cells) == pytest.approx((0.0 + 10 * 1 * 0.25) + (0.0 + 10 * 2 * 0.25))


@pytest.mark.parametrize("damage", ["flip", "delete", "truncate"])
def test_a_bad_image_is_recomputed_when_its_cell_is_reused(tmp_path, damage):
    """Defect 2: a rerun checked shards only, so a flipped or deleted image stayed in the table."""
    out = tmp_path / "out"
    first = S.run_sweep(grid(steps=[2, 3]), out, progress=False)
    images = {rel: (out / rel).read_bytes() for rel in first["image_path"].unique()}
    victim = out / sorted(images)[0]
    if damage == "flip":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "delete":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:20])
    again = S.run_sweep(grid(steps=[2, 3]), out, progress=False)
    assert {rel: (out / rel).read_bytes() for rel in again["image_path"].unique()} == images
    keep = [c for c in first.columns if c not in ("seconds", "elapsed", "value")]
    pd.testing.assert_frame_equal(again[keep], first[keep])


def test_verify_checks_every_cell_of_the_store(tmp_path, capsys):
    out = tmp_path / "out"
    table = S.run_sweep(grid(steps=[2, 3]), out, progress=False)
    victim = out / table["image_path"].iloc[0]
    victim.write_bytes(b"not a png")
    assert main(["sweep", _toml(tmp_path, grid(steps=[2])), "--out", str(out), "--verify"]) == 0
    assert "1 bad cell(s) removed" in capsys.readouterr().err


def _toml(folder: Path, config: dict) -> str:
    def value(v):
        if isinstance(v, str):
            return '"' + v + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f'"{k}" = {value(x)}' for k, x in v.items()) + "}"
        return str(v).lower() if isinstance(v, bool) else str(v)

    path = folder / f"sweep{len(list(folder.glob('*.toml')))}.toml"
    path.write_text("".join(f"{k} = {value(v)}\n" for k, v in config.items()))
    return str(path)


# --- the command line: one line per user error ----------------------------------------------------------------


def _one_line_error(capsys, argv, rc=2):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == rc, err
    assert len(err) == 1 and err[0].startswith("sdlab: "), err
    assert "Traceback" not in err[0]
    return err[0]


def test_cli_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("mine")
    line = _one_line_error(capsys, ["generate", "--prompt", "x", "--steps", "2", "--out", str(target), "--quiet"])
    assert str(target) in line
    assert target.read_text() == "mine"
    line = _one_line_error(capsys, ["sweep", _toml(tmp_path, grid()), "--out", str(target), "--quiet"])
    assert str(target) in line
    assert target.read_text() == "mine"


def test_cli_out_cannot_be_created(tmp_path, capsys):
    out = "/proc/sdlab-cannot-be-here"
    line = _one_line_error(capsys, ["generate", "--prompt", "x", "--steps", "2", "--out", out, "--quiet"])
    assert out in line
    line = _one_line_error(capsys, ["sweep", _toml(tmp_path, grid()), "--out", out, "--quiet"])
    assert out in line


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "abc", "[1, 2", "{}"])
def test_cli_bad_option_values_are_one_line_errors(capsys, tmp_path, value):
    line = _one_line_error(
        capsys,
        ["generate", "--prompt", "x", "--sampler", "Euler a", "--steps", "2", "--option", f"eta={value}",
         "--out", str(tmp_path / "o"), "--quiet"],
    )  # fmt: skip
    assert "eta" in line
    assert not (tmp_path / "o").exists()


def test_cli_option_values_are_read_as_numbers(tmp_path, capsys):
    """--option eta=.5 used to reach the sampler as the string '.5'."""
    assert main(["generate", "--prompt", "x", "--sampler", "Euler a", "--steps", "2", "--option", "eta=.5",
                 "--out", str(tmp_path), "--quiet"]) == 0  # fmt: skip
    (path,) = tmp_path.glob("*.png")
    _text, spec = read_png(path)
    assert spec["sampler_options"]["eta"] == 0.5


def test_cli_sweep_with_a_string_option_is_a_one_line_error(tmp_path, capsys):
    config = _toml(tmp_path, grid(samplers=["Euler a"], sampler_options={"eta": "abc"}))
    line = _one_line_error(capsys, ["sweep", config, "--out", str(tmp_path / "o"), "--quiet"])
    assert "eta" in line
    assert not (tmp_path / "o").exists()


def test_cli_unexpected_failures_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr("sdlab.cli._cmd_samplers", broken)
    line = _one_line_error(capsys, ["samplers"], rc=1)
    assert "internal error: RuntimeError: boom" in line and "--debug" in line
    with pytest.raises(RuntimeError, match="boom"):
        main(["samplers", "--debug"])
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", "samplers"])


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_cli_disk_full_is_a_one_line_error(tmp_path, capsys):
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        (mount / "filler").write_bytes(b"\0" * (60 * 1024))
        line = _one_line_error(capsys, ["sweep", _toml(tmp_path, grid()), "--out", str(mount / "o"), "--quiet"])
        assert str(mount) in line
    finally:
        subprocess.run(["umount", str(mount)], check=True)
