"""Running the claims and reporting their verdicts: run them all (or some) on one lab, the verdict table, as
Markdown and as a figure, and one claim's evidence shown in Jupyter or written to files.

>>> table, evidence = run_claims(["dpm_adaptive_ignores_steps"])     # smoke mode
>>> save_verdicts(table, "figures/folklore")                         # verdicts.csv, .md, .png
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from sdlab.errors import SdlabError
from sdlab.folklore.lab import Lab
from sdlab.folklore.registry import CLAIMS, Claim, get_claim
from sdlab.folklore.verdicts import Evidence
from sdlab.viz.charts import live_widgets
from sdlab.viz.display import image_strip, save_image, show_images
from sdlab.viz.images import png_data_url

__all__ = [
    "run_claims",
    "check",
    "verdict_table",
    "verdict_markdown",
    "verdict_figure",
    "save_verdicts",
    "show_evidence",
    "save_evidence",
    "rejudge",
]

_COLOURS = {"supported": "#2ca02c", "refuted": "#d62728", "mixed": "#ff7f0e", "inconclusive": "#7f7f7f"}


def run_claims(
    ids: Sequence[str] | None = None,
    *,
    smoke: bool = True,
    model: Any = None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    lab: Lab | None = None,
) -> tuple[pd.DataFrame, dict[str, Evidence]]:
    """Run the claims (``ids``, default all) on one :class:`Lab` and return the verdict table (claim, source,
    verdict, summary, seconds) and the evidence by claim id. ``smoke=True`` keeps every experiment small."""
    claims = [get_claim(i) for i in (list(CLAIMS) if ids is None else ids)]
    lab = lab if lab is not None else Lab(smoke=smoke, model=model, seeds=seeds)
    if progress:
        from tqdm.auto import tqdm

        claims = tqdm(claims, desc="claims", unit="claim")
    evidence = {c.id: c.run(lab) for c in claims}
    return verdict_table(evidence), evidence


def check(claim_id: str, lab: Lab, *, out_dir: str | Path | None = None, show: bool = True) -> Evidence:
    """Run one claim on ``lab``, show it (claim, verdict, summary, chart, images) and save it under ``out_dir``."""
    claim = get_claim(claim_id)
    evidence = claim.run(lab)
    if out_dir is not None:
        save_evidence(evidence, out_dir, claim_id)
    if show:
        show_evidence(evidence, claim=claim)
    return evidence


# ---------------------------------------------------------------------------------------------------------------
# the verdict table


def verdict_table(evidence: Mapping[str, Evidence]) -> pd.DataFrame:
    """One row per claim: id, the claim, its article, the computed verdict, the evidence summary, seconds."""
    rows = []
    for claim_id, ev in evidence.items():
        claim = get_claim(claim_id)
        rows.append(
            {"claim": claim_id, "text": claim.text, "source": claim.source, "verdict": ev.verdict,
             "summary": ev.summary, "seconds": round(ev.seconds, 2)}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["claim", "text", "source", "verdict", "summary", "seconds"])


def verdict_markdown(table: pd.DataFrame) -> str:
    """The verdict table as a Markdown table (claim, article, verdict, evidence)."""
    lines = ["| claim | article | verdict | evidence |", "|---|---|---|---|"]
    for row in table.itertuples(index=False):
        cells = [f"{row.text} (`{row.claim}`)", row.source, f"**{row.verdict}**", row.summary]
        lines.append("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def verdict_figure(table: pd.DataFrame) -> Any:
    """Every claim on one line with its verdict in colour (a matplotlib figure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 0.3 * len(table) + 0.8), layout="constrained")
    ax = fig.add_subplot()
    for k, row in enumerate(table.itertuples(index=False)):
        ax.text(0.0, k, row.verdict, color="white", fontsize=8, fontweight="bold", va="center",
                bbox={"facecolor": _COLOURS[row.verdict], "edgecolor": "none", "pad": 2})  # fmt: skip
        text = row.text if len(row.text) <= 110 else row.text[:107] + "..."
        ax.text(0.14, k, f"{text} [{row.source}]", fontsize=8, va="center")
    ax.set(xlim=(0, 1), ylim=(len(table) - 0.5, -0.5), title="Sampler folklore: computed verdicts")
    ax.axis("off")
    return fig


def save_verdicts(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write the verdict table as ``verdicts.csv``, ``verdicts.md`` and ``verdicts.png``, and each claim's wall
    time apart in ``timings.csv`` (so a rebuild writes the same three files, as ``make figures`` checks); returns
    the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timed = "seconds" in table.columns
    (table.drop(columns="seconds") if timed else table).to_csv(out / "verdicts.csv", index=False)
    (out / "verdicts.md").write_text(verdict_markdown(table), encoding="utf-8")
    verdict_figure(table).savefig(out / "verdicts.png", dpi=110)
    written = [out / "verdicts.csv", out / "verdicts.md", out / "verdicts.png"]
    if timed:
        table[["claim", "seconds"]].to_csv(out / "timings.csv", index=False)
        written.append(out / "timings.csv")
    return written


# ---------------------------------------------------------------------------------------------------------------
# one claim's evidence


def show_evidence(evidence: Evidence, *, claim: Claim | None = None, return_html: bool = False) -> str | None:
    """Show a verdict in Jupyter: the claim, a coloured verdict, the summary, the chart and the images side by side.
    ``return_html=True`` returns the HTML instead (for tests and pages)."""
    colour = _COLOURS[evidence.verdict]
    head = ""
    if claim is not None:
        head = f"<p><i>“{escape(claim.text)}”</i> — {escape(claim.source_title)}</p>"
    badge = (
        f"<span style='background:{colour};color:white;padding:2px 8px;border-radius:4px;font-weight:bold'>"
        f"{evidence.verdict.upper()}</span>"
    )
    parts = [head, f"<p>{badge} {escape(evidence.summary)}</p>"]
    row = []
    if evidence.figure is not None:
        row.append(f"<img src='{png_data_url(evidence.figure_png())}' style='max-width:620px'>")
    if evidence.images:
        row.append(show_images(evidence.images, return_html=True, columns=4))
    parts.append(
        "<div style='display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap'>"
        + "".join(f"<div>{r}</div>" for r in row)
        + "</div>"
    )
    html = "".join(parts)
    if return_html:
        return html
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return None
    if get_ipython() is not None:
        display(HTML(html))
    return None


def save_evidence(evidence: Evidence, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``<name>.png`` (the chart), ``<name>_images.png`` (an image strip) and ``<name>.csv`` (the table);
    the table's wall times (``metric == "seconds"`` rows) go to ``<name>_timings.csv``, so a rebuild writes the
    same ``<name>.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if evidence.figure is not None:
        (out / f"{name}.png").write_bytes(evidence.figure_png())
        written.append(out / f"{name}.png")
    if evidence.images:
        save_image(image_strip(evidence.images, scale=2), out / f"{name}_images.png")
        written.append(out / f"{name}_images.png")
    table = evidence.table
    timed = table["metric"].eq("seconds") if "metric" in table.columns else pd.Series(False, index=table.index)
    table[~timed].to_csv(out / f"{name}.csv", index=False)
    written.append(out / f"{name}.csv")
    if timed.any():
        table[timed].to_csv(out / f"{name}_timings.csv", index=False)
        written.append(out / f"{name}_timings.csv")
    return written


# ---------------------------------------------------------------------------------------------------------------
# change a threshold, see the verdict move


def rejudge(
    claim_id: str, evidence: Evidence, threshold: str, values: Sequence[float], *, static: bool | None = None
) -> Any:
    """The verdict of one claim's evidence under each value of one of its judge's thresholds (``tol``, ``same``,
    ``degrade`` ...): a slider over ``values`` with the verdict and summary under it, in a Jupyter kernel with
    ipywidgets; a table (threshold value, verdict, summary) otherwise or with ``static=True`` (papermill, scripts).
    Nothing is re-run: the judge reads the same evidence table.

    >>> rejudge("lms_needs_100_steps", lab.evidence["lms_needs_100_steps"], "tol", [0.005, 0.01, 0.02, 0.05])
    """
    claim = get_claim(claim_id)
    names = [p.name for p in inspect.signature(claim.judge).parameters.values() if p.kind is p.KEYWORD_ONLY]
    if threshold not in names:
        raise SdlabError(
            f"the judge of {claim_id!r} has no threshold {threshold!r}", claim=claim_id, threshold=threshold,
            hint=f"its thresholds: {', '.join(names) or 'none'}",
        )  # fmt: skip
    values = list(values)
    if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise SdlabError("rejudge needs finite threshold values", claim=claim_id, values=values)
    rows = [(v, *claim.judge(evidence.table, **{threshold: v})) for v in values]
    table = pd.DataFrame(rows, columns=[threshold, "verdict", "summary"])
    widgets = live_widgets(static)
    return table if widgets is None else _rejudge_widget(widgets, table, threshold)


def _rejudge_widget(widgets: Any, table: pd.DataFrame, threshold: str) -> Any:
    slider = widgets.SelectionSlider(
        options=[(f"{v:g}", k) for k, v in enumerate(table[threshold])], description=threshold, value=0
    )
    shown = widgets.HTML()
    shown.add_class("sdlab-driven")

    def redraw(_: Any = None) -> None:
        row = table.iloc[slider.value]
        badge = (
            f"<span style='background:{_COLOURS[row.verdict]};color:white;padding:2px 8px;border-radius:4px;"
            f"font-weight:bold'>{row.verdict.upper()}</span>"
        )
        shown.value = f"<p>{badge} {escape(row.summary)}</p>"

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, shown])
