"""Sampler folklore, tested: every claim two popular articles make about samplers, each with a small experiment
and a verdict computed from its evidence.

The articles (in ``shared/seeds``): "Что такое семплеры и какое их влияние?" (Russian, ``ru``; it quotes
Reddit comparisons from 2022) and "Guía completa de samplers en Stable Diffusion" (Spanish, ``es``). Each
:class:`Claim` quotes one statement in English, names its article, and runs an experiment that returns
:class:`Evidence`: a tidy table, the images it made, a chart, and a verdict ("supported", "refuted", "mixed" or
"inconclusive") that its ``judge`` computes from the table with the thresholds of :mod:`sdlab.folklore.verdicts`.
Nobody writes a verdict by hand: change a threshold and the verdict follows.

Two grounds. Claims about convergence, order and step counts stand on the ground truth
(:mod:`sdlab.groundtruth`: a 2-D Gaussian mixture whose exact denoiser gives the true ODE solution and true
distribution). Claims about images stand on the embedded model (or any checkpoint, ``model=``), where
"the same image" means a latent distance below :data:`SAME` times the distance between two seeds.

Every judge is a module function, ``judge_<what>(table, *, <thresholds>) -> (verdict, summary)``: rejudge any
evidence with other thresholds, e.g. ``F.judge_lms_degrades(evidence.table, degrade=0.1)``.

>>> import sdlab.folklore as F
>>> table, evidence = F.run_claims(["dpm_adaptive_ignores_steps", "ancestral_same_on_rerun"])   # smoke mode
>>> table[["claim", "verdict"]]
>>> evidence["ancestral_same_on_rerun"].table.head()
>>> F.CLAIMS["lms_degrades_at_60"].text

Where things live: ``verdicts`` (verdicts, thresholds, evidence, the pieces of judgement the judges share),
``lab`` (the shared runs and their caches), ``registry`` (claims and their order), ``report`` (running claims,
the verdict table, showing and saving evidence), and the claims by theme: ``same_image``, ``step_counts``,
``few_steps``, ``cost``, ``stochastic``, ``reproducibility``.
"""

from __future__ import annotations

from sdlab.folklore import report

# importing the theme modules registers every claim in CLAIMS; every judge, threshold and sampler list stays
# reachable as sdlab.folklore.<name> (``X as X``: re-exported beside __all__)
from sdlab.folklore.cost import SDE as SDE
from sdlab.folklore.cost import judge_dpm_adaptive_ignores_steps as judge_dpm_adaptive_ignores_steps
from sdlab.folklore.cost import judge_dpm_adaptive_slowest as judge_dpm_adaptive_slowest
from sdlab.folklore.cost import judge_dpmpp_2m_vs_2s as judge_dpmpp_2m_vs_2s
from sdlab.folklore.cost import judge_lms_precise_slower as judge_lms_precise_slower
from sdlab.folklore.cost import judge_sde_slower as judge_sde_slower
from sdlab.folklore.few_steps import LOW_STEP_SAMPLERS as LOW_STEP_SAMPLERS
from sdlab.folklore.few_steps import judge_karras_low_steps as judge_karras_low_steps
from sdlab.folklore.few_steps import judge_lms_best_low_steps as judge_lms_best_low_steps
from sdlab.folklore.few_steps import judge_plms_low_steps as judge_plms_low_steps
from sdlab.folklore.few_steps import judge_unipc_low_steps as judge_unipc_low_steps
from sdlab.folklore.lab import DEFAULT_PROMPT as DEFAULT_PROMPT
from sdlab.folklore.lab import DISTRIBUTION_SAMPLERS as DISTRIBUTION_SAMPLERS
from sdlab.folklore.lab import REFERENCE as REFERENCE
from sdlab.folklore.lab import Lab, Run
from sdlab.folklore.registry import CLAIMS, NOT_TESTED, SOURCES, Claim, get_claim
from sdlab.folklore.report import *  # noqa: F403 (its __all__ is part of this package's, as asyncio does)
from sdlab.folklore.reproducibility import ANCESTRAL as ANCESTRAL
from sdlab.folklore.reproducibility import DETERMINISTIC as DETERMINISTIC
from sdlab.folklore.reproducibility import judge_ancestral_implementation as judge_ancestral_implementation
from sdlab.folklore.reproducibility import judge_ancestral_same_on_rerun as judge_ancestral_same_on_rerun
from sdlab.folklore.same_image import judge_converge_same_image as judge_converge_same_image
from sdlab.folklore.same_image import judge_dpm_fast_different as judge_dpm_fast_different
from sdlab.folklore.same_image import judge_euler_previews_heun as judge_euler_previews_heun
from sdlab.folklore.step_counts import MONOTONE_SAMPLERS as MONOTONE_SAMPLERS
from sdlab.folklore.step_counts import SECOND_ORDER as SECOND_ORDER
from sdlab.folklore.step_counts import STATED_ORDERS as STATED_ORDERS
from sdlab.folklore.step_counts import judge_ddim_many_steps as judge_ddim_many_steps
from sdlab.folklore.step_counts import judge_dpmpp_2m_karras_20_30 as judge_dpmpp_2m_karras_20_30
from sdlab.folklore.step_counts import judge_heun_dpm2_fewer_steps as judge_heun_dpm2_fewer_steps
from sdlab.folklore.step_counts import judge_heun_dpm2_twice_lms as judge_heun_dpm2_twice_lms
from sdlab.folklore.step_counts import judge_lms_degrades as judge_lms_degrades
from sdlab.folklore.step_counts import judge_lms_needs_100 as judge_lms_needs_100
from sdlab.folklore.step_counts import judge_more_steps_better as judge_more_steps_better
from sdlab.folklore.step_counts import judge_stated_orders as judge_stated_orders
from sdlab.folklore.stochastic import judge_ancestral_far_from_twins as judge_ancestral_far_from_twins
from sdlab.folklore.stochastic import judge_ancestral_never_converge as judge_ancestral_never_converge
from sdlab.folklore.stochastic import judge_dpm2a_prev_seed as judge_dpm2a_prev_seed
from sdlab.folklore.stochastic import judge_euler_a_low_steps as judge_euler_a_low_steps
from sdlab.folklore.stochastic import judge_sde_never_converge as judge_sde_never_converge
from sdlab.folklore.verdicts import BETTER as BETTER
from sdlab.folklore.verdicts import CONVERGED_RMSE as CONVERGED_RMSE
from sdlab.folklore.verdicts import DEGRADE as DEGRADE
from sdlab.folklore.verdicts import DIFFERENT, SAME, TOL, VERDICTS, Evidence
from sdlab.folklore.verdicts import ENSD as ENSD
from sdlab.folklore.verdicts import HALF as HALF
from sdlab.folklore.verdicts import MMD_SIGMAS as MMD_SIGMAS
from sdlab.folklore.verdicts import NOT_HALF as NOT_HALF
from sdlab.folklore.verdicts import ORDER_SLACK as ORDER_SLACK
from sdlab.folklore.verdicts import PERTURBATION as PERTURBATION
from sdlab.folklore.verdicts import SETTLES as SETTLES
from sdlab.folklore.verdicts import TWICE as TWICE

__all__ = [
    "VERDICTS",
    "SOURCES",
    "SAME",
    "DIFFERENT",
    "TOL",
    "Evidence",
    "Claim",
    "Lab",
    "Run",
    "CLAIMS",
    "NOT_TESTED",
    "get_claim",
    *report.__all__,  # running claims, the verdict table, showing and saving evidence
]
