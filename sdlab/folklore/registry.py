"""The claims: each statement quoted from an article, its source, the experiment that tests it and the judge
that turns the experiment's table into a verdict; the registry :data:`CLAIMS` the theme modules fill, in the
order the notebook shows them; and the statements no experiment here can settle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sdlab.errors import SdlabError, closest
from sdlab.folklore.lab import Lab
from sdlab.folklore.verdicts import Evidence

__all__ = ["SOURCES", "Claim", "CLAIMS", "NOT_TESTED", "claim", "get_claim"]

SOURCES = {
    "ru": "«Что такое семплеры и какое их влияние?» (Russian; quotes Reddit comparisons of 2022)",
    "es": "«Guía completa de samplers en Stable Diffusion» (Spanish)",
}

Judge = Callable[[pd.DataFrame], tuple[str, str]]
Experiment = Callable[[Lab], Evidence]


@dataclass(frozen=True)
class Claim:
    """One statement from an article: quoted in English (``text``), its article (``source``, a key of
    :data:`SOURCES`), the original words (``original``), how it is tested (``method``), the experiment
    (``experiment(lab) -> Evidence``) and the judge that turns an evidence table into (verdict, summary)."""

    id: str
    text: str
    source: str
    experiment: Callable[..., Evidence]
    judge: Judge
    original: str = ""
    method: str = ""

    def run(self, lab: Lab | None = None, **lab_options: Any) -> Evidence:
        """Run the experiment on ``lab`` (default: a new :class:`Lab` from ``lab_options``: smoke, model, seeds)."""
        lab = lab if lab is not None else Lab(**lab_options)
        start = time.perf_counter()
        evidence = self.experiment(lab)
        evidence.seconds = time.perf_counter() - start
        lab.evidence[self.id] = evidence
        return evidence

    @property
    def source_title(self) -> str:
        return ", ".join(SOURCES[s] for s in self.source.split(","))


CLAIMS: dict[str, Claim] = {}
"""Every tested claim by id, in the order the notebook shows them."""

_NUMBERS: dict[str, int] = {}  # claim id -> its place in the notebook

NOT_TESTED: tuple[tuple[str, str, str], ...] = (
    ("Euler a is not the best sampler; it is popular because it is WebUI's default.", "ru",
     "about popularity, not about the sampler"),
    ("Generating a batch at 8-30 steps and picking the best can save hours of compute.", "ru",
     "workflow advice; its premise (convergence in few steps) is tested by the step-count claims"),
    ("Euler a follows complex prompts better with higher steps.", "ru",
     "needs a prompt-adherence score; the embedded model knows simple captions only"),
    ("Euler a and DPM2 a give more anime / cartoon-like results.", "ru", "a style judgement, no metric here"),
    ("Switching the sampler shakes up the noise pattern and removes artifacts.", "ru",
     "artifacts of a real checkpoint; no artifact detector here"),
    ("DDPM needs a great many steps and is no longer in Automatic1111.", "es",
     "about A1111's menu; DDPM's step needs follow from the DDIM claim's ground truth"),
    ("DPM adaptive's composition differs from all other samplers and resembles DPM fast.", "es",
     "one image in the article; the DPM fast claim tests the 'different result' part"),
    ("Karras variants were developed by Tero Karras (Nvidia); Heun's method is over a century old.", "es",
     "history, not behaviour"),
)  # fmt: skip
"""Statements the articles make that these experiments cannot settle: (statement, source, why)."""


def claim(
    number: int, id: str, text: str, source: str, *, judge: Judge, original: str, method: str
) -> Callable[[Experiment], Experiment]:
    """Register an experiment as the test of one claim, shown ``number``-th in :data:`CLAIMS` (and the notebook)."""

    def register(experiment: Experiment) -> Experiment:
        _NUMBERS[id] = number
        CLAIMS[id] = Claim(id, text, source, experiment, judge, original, method)
        ordered = sorted(CLAIMS.items(), key=lambda item: _NUMBERS[item[0]])
        CLAIMS.clear()
        CLAIMS.update(ordered)
        return experiment

    return register


def get_claim(claim_id: str) -> Claim:
    """The claim with this id (a "did you mean" hint for a near miss)."""
    if claim_id not in CLAIMS:
        raise SdlabError(f"unknown claim {claim_id!r}", claim=claim_id, hint=closest(claim_id, list(CLAIMS)))
    return CLAIMS[claim_id]
