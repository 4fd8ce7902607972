"""Claims about the best sampler or schedule at very few steps (4-10), on the ground truth and the embedded model
(distance to the reference run): LMS best at 8 steps or fewer (4), Karras schedules help (7), PLMS bad (17), UniPC
best (19).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sdlab.folklore.lab import Lab, gt_chart, gt_steps, pair_rows, reference_rows, run_images
from sdlab.folklore.registry import Judge, claim
from sdlab.folklore.verdicts import (
    BETTER,
    TOL,
    Evidence,
    combine,
    curve,
    error_metric,
    fmt_steps,
    lowest,
    make_evidence,
    reach,
    select,
)

LOW_STEP_SAMPLERS = ("Euler", "Heun", "DPM2", "LMS")


def judge_lms_best_low_steps(table: pd.DataFrame, *, max_steps: int = 8) -> tuple[str, str]:
    """In every (ground, schedule, steps <= ``max_steps``) cell: is LMS's error the lowest? Failing that, is it the
    lowest at equal model evaluations (the others interpolated to LMS's NFE)?"""
    cells, at_nfe, parts = [], [], []
    low = table[table["steps"] <= max_steps]
    for (ground, schedule), g in low.groupby(["ground", "schedule"]):
        metric = error_metric(ground)
        for n in sorted(g["steps"].unique()):
            best = lowest(g, LOW_STEP_SAMPLERS, n, metric=metric)
            if best is None:
                continue
            cells.append(best == "LMS")
            at_nfe.append(_lms_best_at_equal_nfe(g, n, metric))
            parts.append(f"{ground} {schedule} {n}: {best}")
    n_best, n_nfe = sum(cells), sum(bool(v) for v in at_nfe)
    verdict = combine(cells)
    if verdict == "refuted" and n_nfe:
        verdict = "mixed"
    return verdict, (
        f"Lowest error at equal steps: LMS in {n_best} of {len(cells)} cells ({'; '.join(parts)}). At equal model "
        f"evaluations LMS is lowest in {n_nfe} of {len(at_nfe)} (Heun and DPM2 spend 2 per step)."
    )


def _lms_best_at_equal_nfe(g: pd.DataFrame, n: int, metric: str) -> bool:
    lms = curve(g, "LMS", metric=metric).get(n, math.nan)
    for s in LOW_STEP_SAMPLERS[:-1]:
        rows = select(g, sampler=s, metric=metric).groupby("nfe")["value"].mean().sort_index()
        if len(rows) and rows.index.min() <= n <= rows.index.max():
            other = float(np.exp(np.interp(np.log(n), np.log(rows.index.to_numpy(float)), np.log(rows.to_numpy()))))
            if other <= lms:
                return False
    return math.isfinite(lms)


@claim(
    4,
    "lms_best_at_8_steps",
    "At very few steps (8 or fewer) LMS is best; Heun and DPM2 are not recommended.",
    "ru",
    judge=judge_lms_best_low_steps,
    original="При очень малом количестве шагов (≤ 8) лучше всего подходит метод K_LMS",
    method="ground truth (Karras and uniform) and the embedded model (distance to the reference) at 4-8 steps",
)
def _lms_best_low_steps(lab: Lab) -> Evidence:
    steps = lab.pick((4, 8), (4, 5, 6, 8))
    gt = lab.gt_errors(LOW_STEP_SAMPLERS, steps, schedules=("karras", "uniform"))
    ref = lab.reference()
    runs = [lab.run(s, n) for s in LOW_STEP_SAMPLERS for n in lab.pick((6,), (4, 6, 8))]
    rows = [r | {"nfe": run.nfe} for run in runs for r in pair_rows(run, ref, "reference_distance")]
    rows = [{**r, "schedule": "A1111 default"} for r in rows]  # one cell per step count, whatever each default is
    table = pd.concat([gt, pd.DataFrame(rows)], ignore_index=True)
    fig = gt_chart(gt, "True error at few steps")
    images = run_images([r for r in runs if r.steps == runs[0].steps] + [ref], lab.seeds[0])
    return make_evidence(judge_lms_best_low_steps, table, images=images, figure=fig)


def judge_karras_low_steps(
    table: pd.DataFrame, *, better: float = BETTER, tol: float = TOL, low_max: int = 10
) -> tuple[str, str]:
    """Low steps (<= ``low_max``): in how many (ground, sampler, steps) cells is Karras's error ``better`` lower
    than uniform's? High steps: are both within ``tol`` (the difference invisible)?"""
    wins, losses, ties, high_ok = 0, 0, 0, []
    for (ground, sampler), g in table.groupby(["ground", "sampler"]):
        metric = error_metric(ground)
        k, u = (
            curve(g, sampler, metric=metric, schedule="karras"),
            curve(g, sampler, metric=metric, schedule="uniform"),
        )
        for n in sorted(set(k.index) & set(u.index)):
            if n <= low_max:
                wins += k[n] < (1 - better) * u[n]
                losses += u[n] < (1 - better) * k[n]
                ties += (1 - better) * u[n] <= k[n] and (1 - better) * k[n] <= u[n]
            elif ground == "ground truth":
                tie = (1 - better) * u[n] <= k[n] and (1 - better) * k[n] <= u[n]
                high_ok.append(tie or max(k[n], u[n]) <= tol)
    cells = wins + losses + ties
    if not cells:
        return "inconclusive", "no low-step cells measured"
    share = wins / cells
    low = True if share >= 0.75 else False if share <= 0.25 else None
    verdict = "refuted" if low is False else "supported" if low and (not high_ok or all(high_ok)) else "mixed"
    return verdict, (
        f"At <= {low_max} steps Karras beats uniform (by > {better:.0%}) in {wins} of {cells} cells, loses in "
        f"{losses} (helps: >= 75 % of cells). At > {low_max} steps the two are within {better:.0%} of each other "
        f"or both within {tol} of the truth (hard to see) in {sum(high_ok)} of {len(high_ok)} ground-truth cells."
    )


@claim(
    7,
    "karras_helps_low_steps",
    "Karras schedules give better results at low step counts; at high step counts the difference is hard to see.",
    "es",
    judge=judge_karras_low_steps,
    original="la versión Karras tiene la ventaja de ofrecer mejores resultados en un número reducido de pasos",
    method="ground truth and embedded model: Karras against uniform (A1111's pre-Karras default) per sampler",
)
def _karras_low_steps(lab: Lab) -> Evidence:
    samplers = ("Euler", "Heun", "DPM2", "LMS", "DPM++ 2M")
    steps = lab.pick((4, 8, 32), (4, 6, 8, 10, 32, 64, 100))
    gt = lab.gt_errors(samplers, steps, schedules=("karras", "uniform"))
    ref = lab.reference()
    runs = [
        lab.run(s, n, schedule=sched)
        for s in lab.pick(("Euler", "DPM++ 2M"), samplers)
        for n in lab.pick((6,), (6, 10))
        for sched in ("Karras", "Uniform")
    ]
    rows = [{**r, "schedule": run.schedule.lower()} for run in runs for r in pair_rows(run, ref, "reference_distance")]
    table = pd.concat([gt, pd.DataFrame(rows)], ignore_index=True)
    fig = gt_chart(gt, "True error: Karras against uniform")
    images = run_images(
        runs[: 2 * len(lab.pick((6,), (6, 10)))] + [ref], lab.seeds[0], lambda r: f"{r.sampler} {r.schedule} {r.steps}"
    )
    return make_evidence(judge_karras_low_steps, table, images=images, figure=fig)


def judge_plms_low_steps(
    table: pd.DataFrame, *, tol: float = TOL, needs: int = 50, low_max: int = 10
) -> tuple[str, str]:
    """PLMS against DDIM (the method it improves) at few steps, on each ground, and PLMS's steps to ``tol``."""
    worse = []
    for ground, g in table.groupby("ground"):
        metric = error_metric(ground)
        for n in sorted(g["steps"].unique()):
            if n <= low_max:
                p, d = (
                    curve(g, "PLMS", metric=metric).get(n, math.nan),
                    curve(g, "DDIM", metric=metric).get(n, math.nan),
                )
                if math.isfinite(p) and math.isfinite(d):
                    worse.append(p > d)
    reached = reach(curve(select(table, ground="ground truth"), "PLMS"), tol)
    slow = reached >= needs if not math.isnan(reached) else None
    low = combine(worse)
    verdict = combine([low == "supported" if low in ("supported", "refuted") else None, slow])
    return verdict, (
        f"At <= {low_max} steps PLMS is worse than DDIM in {sum(worse)} of {len(worse)} cells; it reaches the true "
        f"solution within {tol} at {fmt_steps(reached)} steps (needs 50-100: >= {needs})."
    )


@claim(
    17,
    "plms_bad_at_few_steps",
    "(P)LMS suffer from ugly artifacts at low step counts: PLMS cannot clean the noise in few steps, it needs 50-100.",
    "ru,es",
    judge=judge_plms_low_steps,
    original="En el caso de PLMS no podemos utilizar pocos pasos porque no es capaz de limpiar el ruido",
    method="ground truth and embedded model: PLMS against DDIM at few steps; PLMS's steps to reach TOL",
)
def _plms_low_steps(lab: Lab) -> Evidence:
    gt = lab.gt_errors(("PLMS", "DDIM"), gt_steps(lab))
    return _against_reference(lab, judge_plms_low_steps, gt, ("PLMS", "DDIM"), "True error: PLMS and DDIM")


def judge_unipc_low_steps(table: pd.DataFrame, *, low_max: int = 10) -> tuple[str, str]:
    """In each (ground, steps <= ``low_max``) cell: is UniPC's error the lowest of UniPC, DPM++ 2M, DPM++ 2S?"""
    flags, parts = [], []
    for ground, g in table.groupby("ground"):
        metric = error_metric(ground)
        rivals = [s for s in ("UniPC", "DPM++ 2M", "DPM++ 2S a") if s in set(g["sampler"])]
        for n in sorted(g["steps"].unique()):
            best = lowest(g, rivals, n, metric=metric) if n <= low_max else None
            if best is not None:
                flags.append(best == "UniPC")
                parts.append(f"{ground} {n}: {best}")
    return combine(
        flags
    ), f"Lowest error at equal steps ({'; '.join(parts)}); DPM++ 2S (DPM++ 2S a at eta 0) costs 2 NFE per step."


@claim(
    19,
    "unipc_best_at_few_steps",
    "UniPC gives the best results at very low step counts (quality images in 5-10 steps), better than DPM++ 2S / 2M.",
    "es",
    judge=judge_unipc_low_steps,
    original="con la particularidad de ofrecer mejores resultados cuando el número de pasos es muy bajo",
    method="ground truth and embedded model: UniPC, DPM++ 2M and DPM++ 2S at 4-10 steps",
)
def _unipc_low_steps(lab: Lab) -> Evidence:
    steps = lab.pick((4, 8), (4, 5, 6, 8, 10))
    gt = lab.gt_errors(("UniPC", "DPM++ 2M", "DPM++ 2S a"), steps)
    return _against_reference(lab, judge_unipc_low_steps, gt, ("UniPC", "DPM++ 2M"), "True error at few steps")


def _against_reference(lab: Lab, judge: Judge, gt: pd.DataFrame, samplers: Sequence[str], title: str) -> Evidence:
    """The embedded model's half of a few-steps claim: ``samplers`` at 5, 8 and 10 steps (smoke: 6) against the
    reference run, beside the ground truth's errors ``gt`` (charted)."""
    ref = lab.reference()
    runs = [lab.run(s, n) for s in samplers for n in lab.pick((6,), (5, 8, 10))]
    table = pd.concat([gt, pd.DataFrame(reference_rows(runs, ref))], ignore_index=True)
    return make_evidence(judge, table, images=run_images(runs + [ref], lab.seeds[0]), figure=gt_chart(gt, title))
