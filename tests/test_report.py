"""The demo report (`sdlab demo --smoke`, the small version of `make demo`): one self-contained folder with
report.html, its charts as PNG and HTML, the tables as CSV, and the settings and time in report.json."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

pytest.importorskip("plotly")
pytest.importorskip("matplotlib")

from sdlab.cli import main  # noqa: E402

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


def test_old_path_forwards_with_a_warning():
    import sdlab.report as old
    from sdlab.lab.report import build_report

    with pytest.warns(DeprecationWarning, match="sdlab.report moved to sdlab.lab.report"):
        assert old.build_report is build_report
