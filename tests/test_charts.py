"""sdlab.viz.charts on synthetic long-format tables: what each chart plots, thumbnails in the data and in the
exported HTML, the matplotlib twin, the widget handlers (called directly, no browser), the display bundles and
the one palette (a colour per sampler in every chart)."""

import base64
import io
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

pytest.importorskip("plotly")
pytest.importorskip("matplotlib")

import sdlab.viz as D  # noqa: E402
import sdlab.viz.charts as C  # noqa: E402
from sdlab import SdlabError  # noqa: E402
from sdlab.generation import Trajectory  # noqa: E402
from sdlab.viz.charts import show  # noqa: E402

SAMPLERS = {"Euler": 1.0, "Heun": 2.0}  # sampler -> convergence order of the synthetic distances
NFE_PER_STEP = {"Euler": 1, "Heun": 2}


def _image(seed: int) -> torch.Tensor:
    return torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def conv():
    """A convergence-shaped table: reference rows per sampler x steps x seed, two metrics, and the reference
    measured against itself (which charts must leave out)."""
    rows, images = [], {}
    k = 0
    for sampler, order in SAMPLERS.items():
        for steps in (5, 10, 20):
            for seed in (0, 1, 2):
                name = f"{sampler}/steps={steps}/seed={seed}"
                images[name] = _image(k)
                k += 1
                base = {
                    "experiment": "convergence", "comparison": "reference", "against": "DPM++ 2M / Karras / 100 steps",
                    "sampler": sampler, "schedule_resolved": "karras", "steps": steps, "seed": seed, "step": -1,
                    "sigma": math.nan, "nfe": steps * NFE_PER_STEP[sampler], "image": name,
                    "spec_key": name, "against_key": "ref",
                }  # fmt: skip
                d = (1 + 0.1 * seed) * 2.0 * steps**-order
                rows.append({**base, "metric": "latent_rmse", "value": d})
                rows.append({**base, "metric": "ssim", "value": 1 - d})
    rows.append({**rows[0], "sampler": "DPM++ 2M", "spec_key": "ref", "value": 0.0})  # reference vs itself
    return pd.DataFrame(rows), images


def _main_traces(fig):
    return [t for t in fig.data if t.name and t.mode == "lines+markers"]


def _png(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_convergence_chart_plots_median_and_band_over_seeds(conv):
    table, images = conv
    fig = C.convergence_chart(table, images=images)
    traces = _main_traces(fig)
    assert [t.name for t in traces] == ["Euler", "Heun"]  # the reference against itself is left out
    euler = table[(table.sampler == "Euler") & (table.metric == "latent_rmse")]
    median = euler.groupby("steps")["value"].median()
    assert list(traces[0].x) == [5.0, 10.0, 20.0]
    np.testing.assert_allclose(traces[0].y, median.values)
    bands = [t for t in fig.data if t.fill == "tonexty"]
    assert len(bands) == 2
    np.testing.assert_allclose(bands[0].y, euler.groupby("steps")["value"].min().values)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert C.convergence_chart(table, metric="ssim").layout.yaxis.type is None  # a similarity: linear


def test_thumbnails_are_the_points_images(conv):
    table, images = conv
    fig = C.convergence_chart(table, images=images)
    heun = _main_traces(fig)[1]
    thumb = _png(heun.customdata[2][0])  # Heun at 20 steps: the first seed's image
    assert (thumb == D.to_uint8(images["Heun/steps=20/seed=0"])).all()
    assert "3 seeds" in heun.customdata[2][1]
    no_images = C.convergence_chart(table)
    assert all(c[0] == "" for c in _main_traces(no_images)[0].customdata)


def test_cost_quality_chart_puts_nfe_on_x(conv):
    table, images = conv
    fig = C.cost_quality_chart(table, images=images)
    euler, heun = _main_traces(fig)
    assert list(euler.x) == [5.0, 10.0, 20.0] and list(heun.x) == [10.0, 20.0, 40.0]
    assert "10 steps" in heun.customdata[1][1]  # Heun's 20 NFE: 10 steps of 2 evaluations


def test_matplotlib_backend_and_twin(conv):
    table, images = conv
    mpl = C.convergence_chart(table, backend="matplotlib")
    ax = mpl.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["Euler", "Heun"]
    twin = C.convergence_chart(table, images=images)._sdlab_mpl()
    assert type(twin).__name__ == "Figure" and len(twin.axes[0].get_lines()) == 2
    with pytest.raises(SdlabError, match="unknown backend"):
        C.convergence_chart(table, backend="bokeh")


def test_bad_tables_raise_with_hints(conv):
    table, _ = conv
    with pytest.raises(SdlabError, match="needs column"):
        C.convergence_chart(table.drop(columns=["metric"]))
    with pytest.raises(SdlabError, match="did you mean"):
        C.convergence_chart(table, metric="latent_rmsd")
    with pytest.raises(SdlabError, match="DataFrame"):
        C.convergence_chart(table.to_dict())


def test_save_figure_writes_html_with_thumbnails_and_png(conv, tmp_path, monkeypatch):
    monkeypatch.delenv(C.PLOTLYJS_ENV, raising=False)
    table, images = conv
    fig = C.convergence_chart(table, images=images)
    paths = C.save_figure(fig, tmp_path / "charts" / "convergence")
    assert [p.name for p in paths] == ["convergence.html", "convergence.png"]
    html = paths[0].read_text()
    # one thumbnail per point (2 samplers x 3 step counts); plotly writes "/" as \u002f inside <script>
    assert html.count("data:image\\u002fpng;base64,") >= 6
    assert "plotly_hover" in html and "image-rendering:pixelated" in html  # the hover-image script
    assert 'src="plotly.min.js"' in html and (tmp_path / "charts" / "plotly.min.js").exists()
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(paths[1]).mode == "P"  # a chart in at most 256 colours: a third of the bytes
    inline = C.save_figure(fig, tmp_path / "inline.html", plotlyjs=True, png=False)
    assert [p.name for p in inline] == ["inline.html"] and "plotly.min.js" not in inline[0].read_text()[:2000]
    mpl = C.save_figure(C.convergence_chart(table, backend="matplotlib"), tmp_path / "print")
    assert [p.name for p in mpl] == ["print.png"]


def test_one_shared_plotlyjs_for_several_folders(tmp_path, monkeypatch):
    fig = C.schedule_chart({"a": torch.tensor([10.0, 1.0, 0.0])})
    (html, _) = C.save_figure(fig, tmp_path / "one" / "s", plotlyjs="../plotly.min.js")
    assert 'src="../plotly.min.js"' in html.read_text()
    shared = tmp_path / "plotly.min.js"
    assert shared.stat().st_size > 1_000_000 and not (tmp_path / "one" / "plotly.min.js").exists()
    monkeypatch.setenv(C.PLOTLYJS_ENV, "../plotly.min.js")  # what the notebook runner sets
    (html, _) = C.save_figure(fig, tmp_path / "two" / "s")
    assert 'src="../plotly.min.js"' in html.read_text() and not (tmp_path / "two" / "plotly.min.js").exists()


def test_plain_chart_has_no_hover_script(tmp_path):
    fig = C.schedule_chart({"a": torch.tensor([10.0, 1.0, 0.1, 0.0]), "b": np.array([10.0, 0.5, 0.0])})
    assert [list(t.x) for t in fig.data] == [[0, 1, 2], [0, 1]]  # sigma 0 is left out on the log axis
    assert "not drawn" in fig.layout.annotations[0].text
    (html, _) = C.save_figure(fig, tmp_path / "s")
    assert "plotly_hover" not in html.read_text()
    linear = C.schedule_chart({"a": torch.tensor([10.0, 1.0, 0.0])}, log=False)
    assert list(linear.data[0].y) == [10.0, 1.0, 0.0]


def _stability_table():
    rows = []
    for comparison, variant, same, diff in [
        ("rerun", "rerun 1", 1.0, 0.0),
        ("batch", "batch_size=2 position=1", 0.0, 4e-5),
        ("rng_source", "rng=NV", 0.0, 0.9),
    ]:
        for metric, value in (("identical", same), ("max_abs", diff)):
            rows.append(
                {"comparison": comparison, "variant": variant, "metric": metric, "value": value, "image": variant}
            )
    return pd.DataFrame(rows)


def test_stability_chart_one_bar_per_variant():
    table = _stability_table()
    images = {v: _image(i) for i, v in enumerate(table["variant"].unique())}
    fig = C.stability_chart(table, images=images)
    (bars,) = [t for t in fig.data if t.type == "bar"]
    assert list(bars.y) == ["rerun 1", "batch_size=2 position=1", "rng=NV"]
    assert list(bars.x) == [0.0, 4e-5, 0.9]
    assert list(bars.text) == ["identical", "4e-05", "0.9"]
    assert (_png(bars.customdata[2][0]) == D.to_uint8(images["rng=NV"])).all()
    assert len(C.stability_chart(table, backend="matplotlib").axes[0].patches) == 3


def test_divergence_chart_styles_and_eta_mode():
    rows = []
    for steps in (10, 20):
        for seed in (0, 1):
            rows.append({"comparison": "vs_deterministic", "sampler": "Euler a", "steps": steps, "seed": seed,
                         "metric": "latent_rmse", "value": 0.5 + seed * 0.1, "eta": 1.0})  # fmt: skip
            for sampler, v in (("Euler a", 0.4), ("Euler", 0.1 / steps)):
                for _pair in ("Euler a vs Euler", "other pair"):  # a sampler may come with several pairs
                    rows.append({"comparison": "n_to_n+1", "sampler": sampler, "steps": steps, "seed": seed,
                                 "metric": "latent_rmse", "value": v, "pair": _pair})  # fmt: skip
    for eta in (0.0, 0.5, 1.0):
        rows.append({"comparison": "eta", "sampler": "Euler a", "steps": 20, "seed": 0, "eta": eta,
                     "metric": "latent_rmse", "value": eta / 2 + 0.01})  # fmt: skip
    table = pd.DataFrame(rows)
    fig = C.divergence_chart(table)
    traces = {t.name: t for t in _main_traces(fig)}
    assert set(traces) == {"Euler a: vs its twin", "Euler a: N vs N+1", "Euler: N vs N+1"}
    assert traces["Euler a: vs its twin"].line.dash == "solid" and traces["Euler: N vs N+1"].line.dash == "dash"
    assert "2 seeds" in traces["Euler: N vs N+1"].customdata[0][1]  # duplicates across pairs counted once
    np.testing.assert_allclose(traces["Euler: N vs N+1"].y, [0.01, 0.005])
    eta = C.divergence_chart(table, x="eta")
    (line,) = _main_traces(eta)
    assert list(line.x) == [0.0, 0.5, 1.0] and eta.layout.xaxis.type is None


def _fake_result(steps: int = 5):
    """A GenerateResult-like object with one trajectory whose denoised predictions are known."""
    gen = torch.Generator().manual_seed(0)
    final = torch.randn(4, 4, 4, generator=gen)
    traj = Trajectory()
    for i in range(steps):
        traj.steps.append(
            {"i": i, "sigma": 10.0 / (i + 1), "sigma_hat": 10.0 / (i + 1), "x": final, "nfe": i + 1, "time": 0.1 * i,
             "denoised": final + torch.randn(4, 4, 4, generator=gen) / (i + 1) ** 2}
        )  # fmt: skip
    spec = SimpleNamespace(sampler="Euler", schedule_resolved="uniform", steps=steps, seed=7)
    return SimpleNamespace(specs=[spec], trajectories=[traj], latents=final[None]), traj, final


def test_trajectory_table_measures_each_step():
    result, traj, final = _fake_result()
    table = C.trajectory_table(result)
    nxt = table[(table.comparison == "next") & (table.metric == "latent_rmse")].sort_values("step")
    den = traj.latents("denoised")
    expected = [float((den[i] - den[i + 1]).pow(2).mean().sqrt()) for i in range(4)]
    np.testing.assert_allclose(nxt["value"], expected, rtol=1e-6)
    fin = table[table.comparison == "final"].sort_values("step")
    np.testing.assert_allclose(fin["value"].iloc[-1], float((den[-1] - final).pow(2).mean().sqrt()), rtol=1e-6)
    assert set(table["seed"]) == {7} and set(table["sampler"]) == {"Euler"}
    with pytest.raises(SdlabError, match="trajectory=True"):
        C.trajectory_table(SimpleNamespace(trajectories=None))


def test_delta_chart_one_line_pair_per_run():
    result, _, _ = _fake_result()
    one = C.trajectory_table(result)
    table = pd.concat([one, one.assign(seed=8, value=one["value"] * 2), one.assign(steps=10, seed=8)])
    names = sorted(t.name for t in _main_traces(C.delta_chart(table)))
    assert names == [
        "10 steps / seed 8: step i vs final", "10 steps / seed 8: step i vs i+1",
        "5 steps / seed 7: step i vs final", "5 steps / seed 7: step i vs i+1",
        "5 steps / seed 8: step i vs final", "5 steps / seed 8: step i vs i+1",
    ]  # fmt: skip


def test_delta_chart_slider_frames_show_each_steps_image():
    result, traj, _ = _fake_result()
    table = C.trajectory_table(result)
    frames = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    fig = C.delta_chart(table, images=frames)
    assert len(fig.frames) == 5 and len(fig.layout.sliders[0].steps) == 5
    image_trace = fig.data[-1]
    assert image_trace.type == "image" and (_png(image_trace.source) == D.to_uint8(frames[0])).all()
    frame3 = fig.frames[3]
    marker, image = frame3.data
    assert (_png(image.source) == D.to_uint8(frames[3])).all()
    lines = {t.name: t for t in _main_traces(fig)}
    at3 = sorted(float(t.y[list(t.x).index(3.0)]) for t in lines.values())
    assert sorted(marker.y) == pytest.approx(at3)  # the marker sits on each curve at step 3
    assert set(lines) == {"step i vs i+1", "step i vs final"}
    plain = C.delta_chart(table)
    assert not plain.frames
    twin = fig._sdlab_mpl()
    assert len(twin.axes) == 1 + 5  # the chart and a strip of (up to 6) step images


def test_hover_handler_puts_the_thumbnail_in_the_image_widget(conv):
    table, images = conv
    fig = C.convergence_chart(table, images=images)
    trace = _main_traces(fig)[0]
    image, label = SimpleNamespace(value=b""), SimpleNamespace(value="")
    handler = show._hover_handler(image, label)
    handler(trace, SimpleNamespace(point_inds=[1], xs=[10]), None)
    decoded = np.asarray(Image.open(io.BytesIO(image.value)))
    assert (decoded == D.to_uint8(images["Euler/steps=10/seed=0"])).all()
    assert label.value == "Euler @ 10"
    handler(trace, SimpleNamespace(point_inds=[], xs=[]), None)  # leaving a point changes nothing
    assert label.value == "Euler @ 10"


def test_interactive_widgets_hover_and_slider(conv):
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    table, images = conv
    box = C.interactive(C.convergence_chart(table, images=images))
    assert type(box).__name__ == "HBox"
    result, _, _ = _fake_result()
    frames = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    fig = C.delta_chart(C.trajectory_table(result), images=frames)
    vbox = C.interactive(fig)
    widget, slider = vbox.children
    slider.value = 2
    assert widget.data[-1].source == fig.frames[2].data[1].source
    assert not widget.layout.sliders


def test_chart_mode_setting_and_env(monkeypatch):
    monkeypatch.delenv(C.MODE_ENV, raising=False)
    assert C.chart_mode() == "static"  # not inside a Jupyter kernel
    with C.set_chart_mode("none"):
        assert C.chart_mode() == "none"
    assert C.chart_mode() == "static"
    monkeypatch.setenv(C.MODE_ENV, "widget")
    assert C.chart_mode() == "widget"
    with pytest.raises(SdlabError, match="unknown chart mode"):
        C.set_chart_mode("fancy")


def _captured(monkeypatch, fig, mode):
    import IPython.display

    shown = []
    monkeypatch.setattr(show, "_has_ipython", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    C.show_chart(fig, mode=mode)
    return shown


def test_show_chart_static_bundle_has_html_plotly_json_and_png(conv, monkeypatch):
    table, images = conv
    (bundle,) = _captured(monkeypatch, C.convergence_chart(table, images=images), "static")
    assert "plotly_hover" in bundle["text/html"] and "data:image\\u002fpng;base64," in bundle["text/html"]
    assert bundle["application/vnd.plotly.v1+json"]["data"]
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"


def test_show_chart_widget_bundle_keeps_a_static_fallback(conv, monkeypatch):
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    table, images = conv
    (bundle,) = _captured(monkeypatch, C.convergence_chart(table, images=images), "widget")
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "plotly_hover" in bundle["text/html"]
    assert _captured(monkeypatch, C.convergence_chart(table), "none") == []


_HOVER_AT_STEP_5 = """setTimeout(function () {
  var gd = document.getElementById('{plot_id}');
  var xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, drag = gd.querySelector('.nsewdrag');
  var r = drag.getBoundingClientRect();
  drag.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + xa.d2p(5), clientY: r.top + ya.d2p(0.2),
                                                  bubbles: true}));
}, 300);"""


def _blue_at_10_in_a_browser(tmp_path, *scripts: str) -> tuple[str, torch.Tensor]:
    """A two-point chart (a black image at 5 steps, a blue one at 10) with ``scripts`` after it, as the DOM a
    headless Chromium leaves (skips without one), and the blue image."""
    import shutil
    import subprocess

    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium here")
    rows = [
        {"comparison": "reference", "sampler": "A", "steps": s, "seed": 0, "metric": "latent_rmse", "value": 1 / s,
         "nfe": s, "image": f"i{s}"}
        for s in (5, 10)
    ]  # fmt: skip
    blue = torch.zeros(3, 8, 8)
    blue[2] = 1
    fig = C.convergence_chart(pd.DataFrame(rows), images={"i5": torch.zeros(3, 8, 8), "i10": blue})
    page = tmp_path / "hover.html"
    fig.write_html(page, include_plotlyjs="directory", post_script=list(scripts))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom"]
    try:
        dom = subprocess.run([*cmd, page.as_uri()], capture_output=True, text=True, timeout=60).stdout
    except subprocess.TimeoutExpired:
        pytest.skip("headless Chromium did not answer")
    if "plotly-graph-div" not in dom:
        pytest.skip("headless Chromium did not render the page")
    return dom, blue


@pytest.mark.slow
def test_hover_script_swaps_the_image_in_a_headless_browser(tmp_path):
    dom, _ = _blue_at_10_in_a_browser(tmp_path, C.HOVER_IMAGE_JS, _HOVER_AT_STEP_5)
    src = dom.split('<img src="', 1)[1].split('"', 1)[0]  # the panel's image, set by the hover script
    assert (_png(src) == 0).all()  # the black image at 5 steps replaced the blue one shown before the hover
    assert "A @ 5<" in dom


@pytest.mark.slow
def test_hover_panel_shows_an_image_before_any_hover_in_a_headless_browser(tmp_path):
    dom, blue = _blue_at_10_in_a_browser(tmp_path, C.HOVER_IMAGE_JS)
    src = dom.split('<img src="', 1)[1].split('"', 1)[0]
    assert (_png(src) == D.to_uint8(blue)).all()  # the last point's image, with no hover at all
    assert "A @ 10 (hover a point for its image)" in dom


def test_a_sampler_has_one_colour_in_every_chart(conv):
    from matplotlib.colors import to_hex

    from sdlab.samplers.catalogue import A1111_SAMPLERS
    from sdlab.viz.palette import PALETTE, sampler_color

    table, _ = conv
    assert sampler_color("Euler a") == sampler_color("euler_ancestral") == sampler_color("k_euler_a")
    assert sampler_color("DPM++ 2M Karras") == sampler_color("DPM++ 2M") == PALETTE[0]  # A1111's menu order
    assert len({sampler_color(s) for s in A1111_SAMPLERS}) == 20  # 20 A1111 samplers, 20 colours
    assert sampler_color("not a sampler") == sampler_color("not a sampler")  # unknown names: stable too
    colours = {"Euler": sampler_color("Euler"), "Heun": sampler_color("Heun")}
    for fig in (C.convergence_chart(table), C.cost_quality_chart(table), C.convergence_chart(table[::-1])):
        assert {t.name: t.line.color for t in _main_traces(fig)} == colours  # whatever the order of the rows
    twin = C.convergence_chart(table, backend="matplotlib")
    assert {line.get_label(): to_hex(line.get_color()) for line in twin.axes[0].get_lines()} == colours


def _many_samplers_table():
    """Final-image rows of eight A1111 samplers from four families, two step counts."""
    samplers = ["Euler", "Heun", "DPM++ 2M", "LMS", "Euler a", "DPM2 a", "DPM++ SDE", "Restart"]
    rows = [
        {"comparison": "reference", "sampler": s, "steps": n, "seed": 0, "metric": "latent_rmse",
         "value": (k + 1) / n, "nfe": n, "image": f"{s}/{n}"}
        for k, s in enumerate(samplers) for n in (10, 20)
    ]  # fmt: skip
    return pd.DataFrame(rows), samplers


def test_small_multiples_one_panel_per_family_the_rest_in_grey():
    from sdlab.viz.palette import GREY, sampler_color, sampler_family

    table, samplers = _many_samplers_table()
    fig = C.convergence_chart(table)  # "auto": more than six samplers
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["single-step ODE", "multistep ODE", "ancestral", "SDE", "adaptive, restart, LCM"]
    main = _main_traces(fig)
    assert sorted(t.name for t in main) == sorted(samplers)
    for t in main:  # each sampler in colour in its own family's panel only
        panel = titles.index(sampler_family(t.name))
        assert t.line.color == sampler_color(t.name) and t.xaxis == ("x" if panel == 0 else f"x{panel + 1}")
    grey = [t for t in fig.data if t.line.color == GREY]
    assert len(grey) == len(titles) * len(samplers) - len(samplers)  # every other sampler, behind each panel
    assert all(t.hoverinfo == "skip" and t.showlegend is False for t in grey)
    assert {t.legendgrouptitle.text for t in main if t.legendgrouptitle.text} == set(titles)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis5.type == "log"
    twin = fig._sdlab_mpl()
    assert len([ax for ax in twin.axes if ax.get_visible() and ax.axison]) == 5
    single = C.convergence_chart(table, panels=None)
    assert not single.layout.annotations or "ODE" not in single.layout.annotations[0].text
    with pytest.raises(SdlabError, match="unknown panels"):
        C.convergence_chart(table, panels="sampler")


def test_a_sampler_keeps_its_colour_in_step_delta_panels():
    from sdlab.viz.palette import sampler_color

    result, _, _ = _fake_result()
    one = C.trajectory_table(result)
    samplers = ["Euler", "Heun", "DPM++ 2M", "LMS", "Euler a", "DPM2 a", "DPM++ SDE"]
    table = pd.concat([one.assign(sampler=s, schedule_resolved=f"schedule {k % 3}") for k, s in enumerate(samplers)])
    fig = C.delta_chart(table, comparisons=("next",))
    assert {t.name.split(" / ")[0]: t.line.color for t in _main_traces(fig)} == {s: sampler_color(s) for s in samplers}
    assert len(fig.layout.annotations) >= 4  # panel titles
    ssim = C.delta_chart(table.assign(metric="ssim", value=0.9), metric="ssim", comparisons=("next",), panels=None)
    assert ssim.layout.yaxis.type is None  # a similarity: linear


def test_order_chart_draws_each_samplers_theory_slope():
    rows = [
        {"sampler": s, "steps": n, "metric": "median_error", "value": 3.0 * n**-p, "claimed_order": str(p)}
        for s, p in (("Euler", 1), ("Heun", 2)) for n in (8, 16, 32)
    ]  # fmt: skip
    table = pd.DataFrame(rows)
    fits = pd.DataFrame([{"sampler": "Euler", "x": "steps", "order": 1.02}, {"sampler": "Heun", "x": "steps",
                                                                               "order": 1.97}])  # fmt: skip
    fig = C.order_chart(table, fits=fits)
    assert [a.text for a in fig.layout.annotations] == ["Euler: fitted 1.02, theory 1", "Heun: fitted 1.97, theory 2"]
    theory = {t.name: t for t in _main_traces(fig) if "theory" in t.name}
    slope = math.log(theory["order 2 (theory)"].y[1] / theory["order 2 (theory)"].y[0]) / math.log(32 / 8)
    assert slope == pytest.approx(-2.0) and theory["order 2 (theory)"].y[1] == pytest.approx(3.0 * 32**-2)
    assert (
        len([t for t in fig.data if t.line.color == "#c8c8c8"]) == 2
        and theory["order 2 (theory)"].line.color == "#777777"
    )  # the other sampler in grey; no theory
    assert len(C.order_chart(table, backend="matplotlib").axes) == 2


def test_widget_image_panel_shows_an_image_before_any_hover(conv):
    pytest.importorskip("ipywidgets")
    pytest.importorskip("anywidget")
    table, images = conv
    box = C.interactive(C.convergence_chart(table, images=images))
    image, label = box.children[1].children[1:]
    decoded = np.asarray(Image.open(io.BytesIO(image.value)))
    assert (decoded == D.to_uint8(images["Euler/steps=20/seed=0"])).all()  # the first line's last point
    assert label.value == "Euler @ 20.0"


def test_palette_has_no_grey_and_a_family_per_a1111_sampler():
    from matplotlib.colors import to_rgb

    from sdlab.samplers.catalogue import A1111_SAMPLERS
    from sdlab.viz.palette import FAMILIES, PALETTE, sampler_family

    assert all(max(to_rgb(c)) - min(to_rgb(c)) > 0.1 or max(to_rgb(c)) < 0.2 for c in PALETTE)  # no mid greys
    assert all(sampler_family(s) in FAMILIES for s in A1111_SAMPLERS)
    assert sum(len(v) for v in FAMILIES.values()) == len(A1111_SAMPLERS) == 20
    assert sampler_family("k_euler_a") == "ancestral" and sampler_family("not a sampler") == "other"


def test_old_charts_path_forwards_with_a_warning():
    import sdlab.charts as old

    with pytest.warns(DeprecationWarning, match="sdlab.charts moved to sdlab.viz.charts"):
        assert old.convergence_chart is C.convergence_chart
