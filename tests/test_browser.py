"""The lab as its users meet it, in a real browser: JupyterLab on 127.0.0.1 (no token, a temporary root) driven by
Playwright in Debian's Chromium. Every notebook is Run All in smoke mode (its default) in parallel tabs; each
must show no error and no stderr box, at least one rendered plotly chart and, where it has widgets, rendered
widget views; then each slider, toggle, button and hover panel is operated once and what it drives must change.
The demo report (figures/report.html) must render offline with no console error. Screenshots of each notebook's
main figure and of the report go to build/screenshots/ (not committed).

``SDLAB_BROWSER_NOTEBOOKS=00,06`` runs only the notebooks whose names start so. Skipped only where Chromium
(``/usr/bin/chromium``, or ``SDLAB_CHROMIUM``) or playwright is missing: CI installs both (.ci/run: ``apt-get
install chromium``; the dev extra: playwright). Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sdlab.lab.notebooks import NOTEBOOKS_DIR, ROOT, find_notebooks

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("SDLAB_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOTS = ROOT / "build" / "screenshots"
REPORT = ROOT / "figures" / "report.html"
ONLY = [n for n in os.environ.get("SDLAB_BROWSER_NOTEBOOKS", "").split(",") if n]  # e.g. "00,06": fewer, faster
NOTEBOOKS = [p.stem for p in find_notebooks(NOTEBOOKS_DIR, ONLY)]
PARALLEL = 3  # notebooks running at once: kernels use one thread each; three keep a loaded 2-core machine busy
RUN_TIMEOUT = 420  # seconds for one notebook's Run All
CHANGE_TIMEOUT = 90  # seconds for a widget's target to change (a Refine runs the sampler)
VIEWPORT = {"width": 1400, "height": 1000}
SCREENSHOT_VIEWPORT = {"width": 1400, "height": 2000}

# JupyterLab's own settings for the test: every cell in the DOM (no windowing), no news or update checks
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def _require_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set SDLAB_CHROMIUM)")
    pytest.importorskip("playwright", reason="the browser test needs playwright (pip install -e '.[dev]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a temporary copy of notebooks/ (with the figures their headers
    show, so those resolve as from the repository root), kernels on one thread each, their figures into a
    temporary folder; stopped at the end."""
    _require_browser()
    for module in ("jupyterlab", "ipykernel", "ipywidgets", "anywidget", "plotly"):
        pytest.importorskip(module, reason=f"the lab needs {module} (pip install -e '.[notebooks]')")
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(NOTEBOOKS_DIR, root / "notebooks", ignore=shutil.ignore_patterns("*.py", ".ipynb_checkpoints"))
    for nb in (root / "notebooks").glob("*.ipynb"):  # the header images (Jupyter serves no symlink out of its root)
        for rel in re.findall(r"\]\(\.\./(figures/[^)\s]+)\)", nb.read_text(encoding="utf-8")):
            if (ROOT / rel).is_file():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, root / rel)
    settings = root / ".settings"
    for name, value in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    port = _free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".ws"),
           "JUPYTER_CONFIG_DIR": str(root / ".config"), "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
           "SDLAB_LAB_DIR": str(root / "out"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    env.pop("SDLAB_CHARTS", None)  # widgets, as a user gets them
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.root_dir={root}", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
        "--ServerApp.password=", "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True",
        "--allow-root",
    ]  # fmt: skip
    log = open(root / "jupyterlab.log", "w")  # noqa: SIM115 - closed at teardown
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"JupyterLab did not start: {(root / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


# ---------------------------------------------------------------------------------------------------------------
# in the page

_OPEN = """async () => {
  const w = window.jupyterapp.shell.currentWidget;
  await w.context.ready;
  await w.sessionContext.ready;
  window.__sdlab = {done: false, ok: null, error: null, t0: Date.now()};
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    ok => { window.__sdlab.done = true; window.__sdlab.ok = ok; },
    e => { window.__sdlab.done = true; window.__sdlab.error = String(e); });
  return w.sessionContext.session.kernel.name;
}"""

# what the cells' outputs hold (from the notebook model) and what the page renders (from the DOM)
_COLLECT = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const errors = [], stderr = [], widgetViews = [], prose = [];
  const cells = w.content.model.cells;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (const o of cell.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
      if (o.output_type === 'stream' && o.name === 'stderr') stderr.push(`cell ${i}: ${String(o.text).slice(0, 300)}`);
      const data = o.data || {};
      if (data['application/vnd.jupyter.widget-view+json']) widgetViews.push(i);
      if (data['text/markdown']) prose.push(String(data['text/markdown']));
    }
  }
  const node = w.content.node;
  const plots = [...node.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg'));
  return {
    errors, stderr, widgetViews, prose,
    stderrBoxes: node.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').length,
    plotly: plots.length,
    plotlyBlank: node.querySelectorAll('.js-plotly-plot').length - plots.length,
    widgetsRendered: node.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
    widgetErrors: (node.innerText.match(/Error displaying widget/g) || []).length,
    loading: (node.innerText.match(/Loading widget/g) || []).length,

    seconds: (Date.now() - window.__sdlab.t0) / 1000,
  };
}"""

# a fingerprint of what the widgets drive inside one output: charts, images, the explorer's grid and result
_DRIVEN = """(area) => {
  const parts = [];
  const driven = ['.js-plotly-plot .main-svg', '.sdlab-explorer-grid', '.sdlab-explorer-result', '.sdlab-driven',
                  '.widget-image'].join(', ');
  for (const el of area.querySelectorAll(driven)) {
    parts.push(el.tagName === 'IMG' ? el.src : el.innerHTML);
  }
  return parts.join('|');
}"""

_BROKEN_IMAGES = """(area) => [...area.querySelectorAll('img')].filter(
  img => img.offsetParent !== null && img.complete && img.naturalWidth === 0).length"""

_TINY_IMAGES = """(area) => [...area.querySelectorAll('.sdlab-explorer-grid img, .sdlab-explorer-result img')].map(
  img => [img.getBoundingClientRect().width, getComputedStyle(img).imageRendering]).filter(
  ([w, r]) => w < 192 || r !== 'pixelated').map(([w, r]) => `${Math.round(w)} px ${r}`)"""


# widget outputs a user operates (a progress bar is a widget too, but drives nothing)
_INTERACTIVE = ".js-plotly-plot, .widget-slider, .widget-toggle-buttons, .jupyter-button, .widget-image"


_CONTROLS = ".widget-slider, .widget-toggle-buttons, .jupyter-button, .widget-image"  # what a user operates
_MARKDOWN_IMAGES = """async () => {
  const found = [];
  for (const img of window.jupyterapp.shell.currentWidget.content.node.querySelectorAll('.jp-RenderedMarkdown img')) {
    img.scrollIntoView();
    let ok = false;
    try { await img.decode(); ok = img.naturalWidth > 0; } catch (e) { ok = false; }
    found.push(`${img.getAttribute('src').split('?')[0]} ${ok ? 'ok' : 'broken'}`);
  }
  return found;
}"""
_SHOWN_IMAGES = """() => [...window.jupyterapp.shell.currentWidget.content.node.querySelectorAll(
  '.jp-OutputArea-output img')].filter(img => img.complete && img.naturalWidth > 0).length"""


def _wait_changed(page, area, before: str, timeout: float = CHANGE_TIMEOUT) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if area.evaluate(_DRIVEN) != before:
            return True
        page.wait_for_timeout(250)
    return False


def _operate(page, area) -> list[tuple[str, str, bool]]:
    """Operate each control in one widget output once; (kind, label, did its target change)."""
    done = []
    for slider in area.query_selector_all(".widget-slider .noUi-target, .widget-hslider .noUi-target"):
        before = area.evaluate(_DRIVEN)
        box = slider.bounding_box()
        slider.scroll_into_view_if_needed()
        box = slider.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2)
        done.append(("slider", "", _wait_changed(page, area, before)))
    for group in area.query_selector_all(".widget-toggle-buttons"):
        label = (group.query_selector(".widget-label") or group).inner_text().strip()
        other = group.query_selector("button.widget-toggle-button:not(.mod-active)")
        if other is None:
            continue
        before = area.evaluate(_DRIVEN)
        other.click()
        done.append(("toggle", label, _wait_changed(page, area, before)))
    for button in area.query_selector_all("button.jupyter-button:not(.widget-toggle-button)"):
        before = area.evaluate(_DRIVEN)
        label = button.inner_text().strip()
        button.click()
        done.append(("button", label, _wait_changed(page, area, before)))
    if area.query_selector(".widget-image") and area.query_selector(".js-plotly-plot"):  # a hover image panel
        before = area.evaluate(_DRIVEN)
        points = area.query_selector_all(".scatterlayer .trace .points path, .barlayer .trace .points path")
        changed = False
        for point in points[:: max(1, len(points) // 5)][:6]:  # a few points across the chart: one shows another image
            point.scroll_into_view_if_needed()
            point.hover(force=True)
            if _wait_changed(page, area, before, timeout=5):
                changed = True
                break
        if points:
            done.append(("hover", f"{len(points)} points", changed))
    return done


def _run_in_lab(browser, url: str, names: list[str]) -> dict[str, dict]:
    """Open each notebook in its own tab (``PARALLEL`` at a time), Run All, then check and operate its outputs."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=VIEWPORT)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) or
                  route.request.url.startswith("data:") else route.abort())  # fmt: skip
    results: dict[str, dict] = {}
    pending, active = list(names), {}
    while pending or active:
        while pending and len(active) < PARALLEL:
            name = pending.pop(0)
            page = context.new_page()
            console = []
            page.on("pageerror", lambda e, c=console: c.append(str(e)))
            page.goto(f"{url}/lab/workspaces/{name}/tree/notebooks/{name}.ipynb?reset")
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                "window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000
            )  # fmt: skip
            kernel = page.evaluate(_OPEN)
            active[name] = (page, console, time.time(), kernel)
        for name, (page, console, start, _) in list(active.items()):
            state = page.evaluate("() => window.__sdlab")
            timed_out = time.time() - start > RUN_TIMEOUT
            if not state["done"] and not timed_out:
                continue
            del active[name]
            page.wait_for_timeout(1500)  # widget views render after the last reply
            for _ in range(40):
                if page.evaluate(_COLLECT)["loading"] == 0:
                    break
                page.wait_for_timeout(250)
            found = page.evaluate(_COLLECT)
            found.update(run_ok=state["ok"], run_error=state["error"], timed_out=timed_out, page_errors=console)
            areas = [
                a for a in page.query_selector_all(".jp-OutputArea-output") if a.query_selector(".jupyter-widgets")
            ]
            found["broken_images"] = sum(a.evaluate(_BROKEN_IMAGES) for a in areas)
            found["operations"] = [op for area in areas for op in _operate(page, area)]
            found["interactive"] = len(areas)
            found["controls"] = sum(1 for a in areas if a.query_selector(_CONTROLS))
            found["images"] = page.evaluate(_SHOWN_IMAGES)
            found["markdownImages"] = page.evaluate(_MARKDOWN_IMAGES)
            found["tiny_images"] = [t for a in areas for t in a.evaluate(_TINY_IMAGES)]
            found["screenshot"] = _screenshot(page, name)
            found["seconds_total"] = time.time() - start
            results[name] = found
            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
            page.close()
        time.sleep(1)
    context.close()
    return results


def _screenshot(page, name: str) -> str | None:
    """The notebook's main figure: the explorer widget where there is one, else its first plotly chart, else its
    first image."""
    target = None
    for selector in (".sdlab-explorer-grid", ".js-plotly-plot", "img"):
        found = page.query_selector(f".jp-OutputArea-output {selector}")
        if found is not None:
            target = found.evaluate_handle("e => e.closest('.jp-OutputArea-output')").as_element()
            break
    if target is None:
        return None
    path = SCREENSHOTS / f"{name}.png"
    page.set_viewport_size(SCREENSHOT_VIEWPORT)  # the whole figure inside the notebook's scrolling panel
    page.wait_for_timeout(500)
    target.scroll_into_view_if_needed()
    target.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)
    return str(path)


@pytest.fixture(scope="session")
def lab_runs(browser, jupyterlab):
    t0 = time.time()
    runs = _run_in_lab(browser, jupyterlab, NOTEBOOKS)
    print(f"\nbrowser: {len(runs)} notebooks in {time.time() - t0:.0f} s:", file=sys.stderr)
    for name, r in runs.items():
        print(f"  {name}: run {r['seconds']:.0f} s, {r['plotly']} charts, {len(r['widgetViews'])} widget outputs, "
              f"operations {r['operations']}", file=sys.stderr)  # fmt: skip
        for text in r["prose"]:  # the sentences the notebook wrote from its numbers
            print(f"    says: {text}", file=sys.stderr)
    return runs


# ---------------------------------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_all_in_jupyterlab_without_errors(lab_runs, name):
    r = lab_runs[name]
    assert not r["timed_out"], f"{name}: Run All took more than {RUN_TIMEOUT} s"
    assert r["errors"] == [], f"{name}: error outputs"
    assert r["run_ok"] is True and r["run_error"] is None, f"{name}: Run All stopped ({r['run_error']})"
    assert r["stderr"] == [] and r["stderrBoxes"] == 0, f"{name}: stderr output (a red box): {r['stderr']}"
    assert r["page_errors"] == [], f"{name}: JavaScript errors in the page"


def _shows_charts(name: str) -> bool:
    return "charts.show_chart(" in (NOTEBOOKS_DIR / f"{name}.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_renders_charts_and_widgets(lab_runs, name):
    r = lab_runs[name]
    if _shows_charts(name):
        assert r["plotly"] >= 1, f"{name}: no rendered plotly chart"
    else:  # 07 and 08 show matplotlib figures and images, no plotly chart
        assert r["images"] >= 1, f"{name}: no rendered image"
    assert r["plotlyBlank"] == 0, f"{name}: a plotly chart that did not draw"
    assert r["widgetErrors"] == 0, f"{name}: 'Error displaying widget'"
    if r["widgetViews"]:
        assert r["widgetsRendered"] >= len(r["widgetViews"]), f"{name}: widget outputs not rendered as views"
    assert r["broken_images"] == 0, f"{name}: a broken image in a widget before it was operated"
    header = [m for m in r["markdownImages"] if "figures/" in m]
    assert header and all(m.endswith(" ok") for m in header), f"{name}: header image missing or broken: {header}"
    assert r["tiny_images"] == [], f"{name}: explorer images under 192 px or not pixelated: {r['tiny_images']}"
    assert r["screenshot"] and Path(r["screenshot"]).stat().st_size > 1000


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_widget_drives_what_it_should(lab_runs, name):
    r = lab_runs[name]
    if not r["interactive"]:
        pytest.skip(f"{name} shows no widget with a control (progress bars only)")
    if not r["controls"]:
        pytest.skip(f"{name}: its widgets have no control to operate (a chart without hover images or slider)")
    assert r["operations"], f"{name}: controls, but none could be operated"
    unchanged = [op for op in r["operations"] if not op[2]]
    assert unchanged == [], f"{name}: operating these changed nothing they drive: {unchanged}"


def test_the_report_renders_offline_without_console_errors(browser):
    if not REPORT.exists():
        pytest.skip(f"no {REPORT.relative_to(ROOT)} (make demo writes it)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=VIEWPORT, offline=True)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                  else route.abort())  # fmt: skip
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:120]}"))
    page.goto(REPORT.as_uri(), wait_until="load")
    page.wait_for_timeout(1500)
    charts = page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length"
    )
    images = page.evaluate("() => [...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
    broken = page.evaluate("() => [...document.images].filter(i => i.complete && i.naturalWidth === 0).length")
    page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
    context.close()
    assert problems == [], "the report needs the network or has errors"
    assert charts >= 1, "no rendered plotly chart in the report"
    assert broken == 0 and images >= 1
