"""Running the claims and reporting their verdicts: run them all (or some) on one lab, the verdict table, as
Markdown and as a figure, and one claim's evidence shown in Jupyter or written to files.

>>> table, evidence = run_claims(["dpm_adaptive_ignores_steps"])     # smoke mode
>>> save_verdicts(table, "figures/folklore")                         # verdicts.csv, .md, .png
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from sdlab.folklore.lab import Lab
from sdlab.folklore.registry import CLAIMS, Claim, get_claim
from sdlab.folklore.verdicts import Evidence
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
    """Write the verdict table as ``verdicts.csv``, ``verdicts.md`` and ``verdicts.png``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "verdicts.csv", index=False)
    (out / "verdicts.md").write_text(verdict_markdown(table), encoding="utf-8")
    verdict_figure(table).savefig(out / "verdicts.png", dpi=110)
    return [out / "verdicts.csv", out / "verdicts.md", out / "verdicts.png"]


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
    """Write ``<name>.png`` (the chart), ``<name>_images.png`` (an image strip) and ``<name>.csv`` (the table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if evidence.figure is not None:
        (out / f"{name}.png").write_bytes(evidence.figure_png())
        written.append(out / f"{name}.png")
    if evidence.images:
        save_image(image_strip(evidence.images, scale=2), out / f"{name}_images.png")
        written.append(out / f"{name}_images.png")
    evidence.table.to_csv(out / f"{name}.csv", index=False)
    written.append(out / f"{name}.csv")
    return written
