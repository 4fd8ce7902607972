"""The demo report (`sdlab demo --smoke`, the small version of `make demo`): one self-contained folder with
report.html, its charts as PNG and HTML, the tables as CSV, the settings and time in report.json, and
MANIFEST.json recording the committed figures with their spec hash, thread count and versions; a rebuild writes
byte-identical tables."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sdlab import SdlabError

pytest.importorskip("plotly")
pytest.importorskip("matplotlib")

from sdlab.cli import main  # noqa: E402
from sdlab.lab import manifest  # noqa: E402
from sdlab.lab.report import PRODUCER, TIMING_COLUMNS, report_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CSVS = ("convergence.csv", "convergence_steps.csv", "divergence.csv", "stability.csv", "ground_truth_orders.csv")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["demo", "--smoke", "--out", str(out), "--quiet"]) == 0
    return out


def test_report_html_is_readable_offline(report):
    html = (report / "report.html").read_text()
    for section in ("Convergence", "Cost vs quality", "Ancestral divergence", "Stability", "Ground truth"):
        assert section in html, section
    assert (report / "plotly.min.js").stat().st_size > 1_000_000  # the charts' script sits beside the page
    external = re.findall(r"""(?:src|href)=['"](https?://[^'"]+)""", html)
    assert not external, f"the page loads from the network: {external}"
    assert html.count("data:image/png;base64,") >= 2  # image grid and reference image inline
    assert html.count('class="plotly-graph-div"') >= 4


def test_report_shows_ssim_step_deltas_and_orders_beside_latent_rmse(report):
    html = (report / "report.html").read_text()
    for title in ("Similarity to", "Per-step deltas", "Step i vs step i+1 (latent_rmse)",
                  "Step i vs step i+1 (ssim)", "Order of accuracy on an exact denoiser"):  # fmt: skip
        assert title in html, title
    for name in ("convergence_ssim", "step_deltas", "step_deltas_ssim", "ground_truth_orders"):
        assert (report / f"{name}.png").stat().st_size > 10_000, name
    steps = pd.read_csv(report / "convergence_steps.csv")
    assert {"latent_rmse", "ssim"} <= set(steps["metric"]) and set(steps["comparison"]) == {"next", "final"}


def test_report_images_are_large_crisp_and_stored_once(report):
    html = (report / "report.html").read_text()
    urls = re.findall(r'src="(data:image/png;base64,[^"]+)"', html)
    assert len(urls) == len(set(urls)) == 1 + 4 * 2  # the reference and 4 samplers x 2 step counts, once each
    sizes = re.findall(r'<img id="sdlab-img-\d+" src="data:[^"]+" width="(\d+)" height="(\d+)"', html)
    assert sizes and all(int(w) >= 192 and int(h) >= 192 for w, h in sizes)
    assert "image-rendering: pixelated" in html
    assert re.search(r"<th[^>]*><span style=\"background:#[0-9a-f]{6}\"></span>Heun</th>", html)  # an HTML label
    # the charts carry image ids, not copies; the hover script finds them, and shows one before any hover
    assert '"sdlab-img-' in html and "plotly_hover" in html and "DOMContentLoaded" in html


def test_result_tables_hold_no_wall_clock_times(report):
    for name in CSVS:
        assert not set(TIMING_COLUMNS) & set(pd.read_csv(report / name).columns), name
    timings = pd.read_csv(report / "timings.csv")
    assert {"seconds", "table"} <= set(timings.columns) and (timings["seconds"] > 0).any()


def test_manifest_records_the_committed_figures(report):
    data = json.loads((report / manifest.MANIFEST).read_text())
    producer = data["producers"][PRODUCER + " --smoke"]
    assert producer["threads"] == manifest.FIGURE_THREADS == 1
    assert producer["spec_hash"] == manifest.spec_hash(report_spec(True))
    assert {"torch", "diffusers", "transformers", "matplotlib", "plotly"} <= set(producer["versions"])
    names = set(data["figures"])
    assert {"report.html", "convergence.png", "convergence_ssim.png", "step_deltas.png", "convergence.csv"} <= names
    assert not names & {"plotly.min.js", "convergence.html", "convergence_steps.csv", "timings.csv", "report.json"}
    assert manifest.stale_figures(report, specs={PRODUCER + " --smoke": report_spec(True)}) == []


@pytest.mark.slow
def test_a_rebuild_writes_byte_identical_figures(report, tmp_path):
    cmd = [sys.executable, "-m", "sdlab.cli", "demo", "--smoke", "--out", str(tmp_path), "--quiet"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)  # a fresh process: nothing cached
    committed = json.loads((report / manifest.MANIFEST).read_text())["figures"]
    assert set(CSVS) - {"convergence_steps.csv"} <= set(committed) and "report.html" in committed
    for name in {*committed, *CSVS}:  # every file a write-up uses (tables, chart PNGs, the page), per-step rows too
        assert (tmp_path / name).read_bytes() == (report / name).read_bytes(), name


def test_report_writes_figures_and_tables_with_their_settings(report):
    for name in ("convergence", "cost_quality", "divergence", "stability"):
        assert (report / f"{name}.png").stat().st_size > 10_000, name
        assert (report / f"{name}.html").is_file(), name
    assert (report / "convergence_images.png").is_file()
    conv = pd.read_csv(report / "convergence.csv")
    assert {"Euler", "Euler a", "Heun", "DPM++ 2M"} <= set(conv["sampler"])
    for column in ("model", "model_hash", "seed", "steps", "cfg", "schedule_resolved", "versions.sdlab"):
        assert conv[column].notna().all(), column
    meta = json.loads((report / "report.json").read_text())
    assert meta["smoke"] is True and meta["seconds"] > 0 and meta["config"]["samplers"]


def test_stale_figures_says_what_changed(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.png").write_bytes(b"png")
    manifest.record_figures(tmp_path, ["a.csv", tmp_path / "b.png"], producer="p", spec={"steps": [4, 8]}, threads=1)
    assert manifest.stale_figures(tmp_path, specs={"p": {"steps": [4, 8]}}) == []
    (tmp_path / "a.csv").write_text("x\n2\n")
    (tmp_path / "b.png").unlink()
    found = {s.path: s.kind for s in manifest.stale_figures(tmp_path)}
    assert found == {"a.csv": "edited", "b.png": "missing"}
    assert manifest.main([str(tmp_path)]) == 1  # python -m sdlab.lab.manifest: a missing or edited figure fails
    manifest.record_figures(tmp_path, ["a.csv"], producer="p", spec={"steps": [4, 8]}, threads=2)
    assert [s.kind for s in manifest.stale_figures(tmp_path)] == ["threads"]  # b.png: no longer p's
    assert [s.kind for s in manifest.stale_figures(tmp_path, specs={"p": {"steps": [4]}})] == ["spec"]
    installed = {**manifest.figure_versions(), "torch": "0.0"}
    (stale,) = manifest.stale_figures(tmp_path, installed=installed)
    assert stale.kind == "versions" and "torch" in stale.reason
    with pytest.raises(SdlabError, match="under the figures folder"):
        manifest.record_figures(tmp_path / "sub", [tmp_path / "a.csv"], producer="p", spec={}, threads=1)


def test_record_figures_takes_paths_from_here_or_from_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("figs").mkdir()
    Path("figs/a.png").write_bytes(b"a")
    Path("figs/b.png").write_bytes(b"b")
    manifest.record_figures("figs", ["figs/a.png", "b.png"], producer="p", spec={}, threads=1)
    assert sorted(manifest.read_manifest("figs")["figures"]) == ["a.png", "b.png"]


def test_pin_threads_sets_and_restores():
    import torch

    before = torch.get_num_threads()
    with manifest.pin_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(SdlabError, match="threads"):
        manifest.pin_threads(0)


def test_committed_figures_are_current():
    """The committed demo figures match their manifest and the report's spec; on other library versions or thread
    counts they cannot be bit-identical, so that is reported as a skip with the list."""
    root = ROOT / "figures"
    if not (root / manifest.MANIFEST).is_file():
        pytest.skip("no figures/MANIFEST.json: run `make demo`")
    stale = manifest.stale_figures(root, specs={PRODUCER: report_spec(False)})
    hard = [s for s in stale if s.kind in ("missing", "edited", "spec")]
    assert not hard, "\n".join(f"{s.path}: {s.reason}" for s in hard)
    if stale:
        pytest.skip(f"{len(stale)} figures recorded elsewhere: {stale[0].path}: {stale[0].reason}")


def test_old_path_forwards_with_a_warning():
    import sdlab.report as old
    from sdlab.lab.report import build_report

    with pytest.warns(DeprecationWarning, match="sdlab.report moved to sdlab.lab.report"):
        assert old.build_report is build_report
