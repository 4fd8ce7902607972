"""Claims about how many steps a sampler needs, on the ground truth (true errors against steps): Heun and DPM2 in
fewer steps at twice the cost (2) and twice as fast as LMS (3), LMS degrading at 60 steps (5) and needing 100 (16),
DDIM needing many (18), DPM++ 2M Karras good at 20-30 (20), more steps always better (24), the stated orders (27).

"Converged" is a true error below :data:`~sdlab.folklore.verdicts.TOL`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pandas as pd

from sdlab.folklore.lab import Lab, gt_chart, gt_evidence, reference_rows, run_images
from sdlab.folklore.registry import claim
from sdlab.folklore.verdicts import (
    BETTER,
    CONVERGED_RMSE,
    DEGRADE,
    HALF,
    NOT_HALF,
    ORDER_SLACK,
    TOL,
    TWICE,
    Evidence,
    band,
    combine,
    curve,
    error_metric,
    fmt,
    fmt_steps,
    make_evidence,
    nfe_per_step,
    reach,
    select,
)
from sdlab.groundtruth import fit_order
from sdlab.viz.mpl import bar_chart

SECOND_ORDER = ("Heun", "DPM2")


def _second_order_reach(table: pd.DataFrame, baseline: str, tol: float) -> Iterator[tuple[str, str, float, float]]:
    """Per schedule and sampler of :data:`SECOND_ORDER`: (schedule, sampler, its steps to reach ``tol``, the
    ``baseline`` sampler's) (:func:`~sdlab.folklore.verdicts.reach`)."""
    for schedule in sorted(table["schedule"].unique()):
        base = reach(curve(table, baseline, schedule=schedule), tol)
        for s in SECOND_ORDER:
            yield schedule, s, reach(curve(table, s, schedule=schedule), tol), base


def judge_heun_dpm2_fewer_steps(
    table: pd.DataFrame, *, tol: float = TOL, twice: tuple[float, float] = TWICE
) -> tuple[str, str]:
    """Steps to reach ``tol`` (Heun, DPM2 vs Euler, per schedule) and model evaluations per step."""
    fewer, parts = [], []
    for schedule, s, mine, euler in _second_order_reach(table, "Euler", tol):
        if math.isnan(mine) or math.isnan(euler) or (math.isinf(mine) and math.isinf(euler)):
            continue
        fewer.append(mine < euler)
        nfe_mine = mine * nfe_per_step(select(table, schedule=schedule), s)
        reached = f"{mine:.0f} steps ({nfe_mine:.0f} NFE)" if math.isfinite(mine) else fmt_steps(mine)
        parts.append(f"{s} {reached} vs Euler {fmt_steps(euler)} ({schedule})")
    cost = [nfe_per_step(table, s) for s in SECOND_ORDER]
    double = all(twice[0] <= c <= twice[1] for c in cost)
    verdict = combine([{"supported": True, "refuted": False}.get(combine(fewer)), double])
    return verdict, (
        f"Fewer steps than Euler in {sum(fewer)} of {len(fewer)} (sampler, schedule) cells. To reach the true "
        f"solution within {tol}: {'; '.join(parts) or 'not measured'}. Model evaluations per step: "
        f"Heun {fmt(cost[0])}, DPM2 {fmt(cost[1])} (twice = {twice[0]}-{twice[1]})."
    )


@claim(
    2,
    "heun_dpm2_fewer_steps_twice_cost",
    "Heun and DPM2 converge in fewer steps, but are slower (twice the cost per step).",
    "ru",
    judge=judge_heun_dpm2_fewer_steps,
    original="Методы K_HEUN и K_DPM_2 сходятся за меньшее количество шагов (но медленнее).",
    method="ground truth: steps and model evaluations to reach the true ODE solution within TOL, Karras and uniform",
)
def _heun_dpm2_fewer_steps(lab: Lab) -> Evidence:
    samplers, title = ("Euler", "Heun", "DPM2", "LMS"), "True error against steps (Karras and uniform)"
    return gt_evidence(lab, judge_heun_dpm2_fewer_steps, samplers, title, schedules=("karras", "uniform"))


def judge_heun_dpm2_twice_lms(
    table: pd.DataFrame, *, tol: float = TOL, half: float = HALF, not_half: float = NOT_HALF
) -> tuple[str, str]:
    """Heun's and DPM2's steps to ``tol`` over LMS's: at most ``half`` confirms "twice as fast"."""
    flags, parts = [], []
    for schedule, s, mine, lms in _second_order_reach(table, "LMS", tol):
        if not (math.isfinite(mine) and math.isfinite(lms)):
            if math.isinf(mine) == math.isinf(lms):
                continue  # neither (or only one of NaN) reached the tolerance: nothing to compare
            flags.append(math.isinf(lms))
            parts.append(f"{s} {fmt_steps(mine)} vs LMS {fmt_steps(lms)} ({schedule})")
            continue
        fraction = mine / lms
        flags.append(band(fraction, half, not_half))
        parts.append(f"{s}/LMS = {fraction:.2f} ({schedule})")
    return combine(flags), (
        f"Steps to reach the true solution within {tol}, as a fraction of LMS's: {'; '.join(parts)} "
        f"(twice as fast: <= {half}; clearly not: >= {not_half}). Per model evaluation they pay twice."
    )


@claim(
    3,
    "heun_dpm2_twice_as_fast_as_lms",
    "At 20-40+ steps Heun and DPM2 are twice as slow but converge twice as fast as LMS.",
    "ru",
    judge=judge_heun_dpm2_twice_lms,
    original="K_HEUN и K_DPM_2 в 2 раза медленнее, но сходятся в 2 раза быстрее, чем K_LMS",
    method="ground truth: steps to reach the true solution within TOL, Heun and DPM2 over LMS",
)
def _heun_dpm2_twice_lms(lab: Lab) -> Evidence:
    samplers, title = ("Heun", "DPM2", "LMS"), "True error against steps"
    return gt_evidence(lab, judge_heun_dpm2_twice_lms, samplers, title, schedules=("karras", "uniform"))


def judge_lms_degrades(table: pd.DataFrame, *, degrade: float = DEGRADE, around: int = 50) -> tuple[str, str]:
    """Per ground and schedule: does LMS's error at >= ``around`` steps rise ``degrade`` above its best below it?
    The other samplers are the control."""
    flags, parts, controls = [], [], []
    for (ground, schedule), g in table.groupby(["ground", "schedule"]):
        metric = error_metric(ground)
        for sampler in g["sampler"].unique():
            errors = curve(g, sampler, metric=metric)
            before, after = errors[errors.index < around], errors[errors.index >= around]
            if before.empty or after.empty:
                continue
            rise = float(after.max() / before.min()) - 1
            if sampler == "LMS":
                flags.append(rise > degrade)
                parts.append(f"{ground} {schedule}: {rise:+.0%}")
            elif rise > degrade:
                controls.append(f"{sampler} ({ground} {schedule}) {rise:+.0%}")
    return combine(flags), (
        f"LMS's largest error at >= {around} steps against its best below: {'; '.join(parts) or 'not measured'} "
        f"(degrades: > +{degrade:.0%}). Other samplers that degrade: {', '.join(controls) or 'none'}."
    )


@claim(
    5,
    "lms_degrades_at_60",
    "LMS is limited and starts to degrade at around 60 steps.",
    "ru",
    judge=judge_lms_degrades,
    original="LMS-K ограничен и начинает демонстрировать некоторую деградацию примерно на 60 шагах.",
    method="ground truth at 30-80 steps (Karras, uniform); full mode adds the embedded model at 40-80 steps",
)
def _lms_degrades(lab: Lab) -> Evidence:
    samplers = ("LMS", "Euler", "DPM++ 2M", "Heun")
    table = lab.gt_errors(samplers, lab.pick((30, 60), (30, 40, 50, 60, 70, 80)), schedules=("karras", "uniform"))
    images = {}
    if not lab.smoke:  # image-level half: 540 model evaluations, full mode only
        ref = lab.reference()
        runs = [lab.run(s, n) for s in samplers[:3] for n in (40, 60, 80)]
        rows = [{**r, "schedule": "A1111 default"} for r in reference_rows(runs, ref)]
        table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
        images = run_images([r for r in runs if r.sampler == "LMS"] + [ref], lab.seeds[0])
    fig = gt_chart(select(table, ground="ground truth"), "True error at 30-80 steps")
    return make_evidence(judge_lms_degrades, table, images=images, figure=fig)


def judge_lms_needs_100(table: pd.DataFrame, *, tol: float = TOL, needs: int = 60) -> tuple[str, str]:
    """LMS's steps to reach ``tol`` per schedule: >= ``needs`` and more than Euler's confirms it."""
    flags, parts = [], []
    for schedule in sorted(table["schedule"].unique()):
        lms, euler = (reach(curve(table, s, schedule=schedule), tol) for s in ("LMS", "Euler"))
        if math.isnan(lms) or (math.isinf(lms) and table["steps"].max() < needs):
            continue  # not reached within the steps measured, and those stop short of `needs`
        flags.append(lms >= needs)
        parts.append(f"{schedule}: LMS {fmt_steps(lms)}, Euler {fmt_steps(euler)}")
    return combine(
        flags
    ), f"Steps to reach the true solution within {tol}: {'; '.join(parts)} (needs ~100: >= {needs})."


@claim(
    16,
    "lms_needs_100_steps",
    "LMS is not worth it: it needs around 100 steps to give something decent (psychedelic images at few steps).",
    "es",
    judge=judge_lms_needs_100,
    original=(
        "es un sampler que no merece la pena porque a pesar de ser rápido necesita en torno a 100 pasos para ofrecer "
        "algo decente"
    ),
    method="ground truth: steps LMS needs to reach the true solution within TOL, against Euler",
)
def _lms_needs_100(lab: Lab) -> Evidence:
    title = "True error: LMS against Euler"
    return gt_evidence(lab, judge_lms_needs_100, ("LMS", "Euler"), title, schedules=("karras", "uniform"))


def judge_ddim_many_steps(
    table: pd.DataFrame, *, tol: float = TOL, many: float = 2.0, same: float = 1.2
) -> tuple[str, str]:
    """DDIM's steps to ``tol`` over DPM++ 2M's: >= ``many`` confirms "needs many steps", <= ``same`` refutes it."""
    ddim, dpm = reach(curve(table, "DDIM"), tol), reach(curve(table, "DPM++ 2M"), tol)
    if math.isnan(ddim) or math.isnan(dpm) or math.isinf(dpm):
        return "inconclusive", "DPM++ 2M did not reach the tolerance"
    times = ddim / dpm if math.isfinite(ddim) else float(table["steps"].max()) / dpm
    verdict = {True: "refuted", False: "supported", None: "mixed"}[band(times, same, many)]
    return verdict, (
        f"Steps to reach the true solution within {tol}: DDIM {fmt_steps(ddim)}, DPM++ 2M {fmt_steps(dpm)}: "
        f"{'>= ' if math.isinf(ddim) else ''}{times:.1f} x (many: >= {many}; as few: <= {same}). Both cost 1 NFE "
        "per step."
    )


@claim(
    18,
    "ddim_needs_many_steps",
    "DDIM is fast per step but inefficient: it needs many steps (100+) for a good result; better alternatives exist.",
    "ru,es",
    judge=judge_ddim_many_steps,
    original=(
        "DDIM ... It's quite fast per step, but relatively inefficient in that it takes a bunch of steps to get a "
        "good result."
    ),
    method="ground truth: DDIM's steps to reach the true solution within TOL against DPM++ 2M's",
)
def _ddim_many_steps(lab: Lab) -> Evidence:
    return gt_evidence(lab, judge_ddim_many_steps, ("DDIM", "DPM++ 2M"), "True error: DDIM and DPM++ 2M")


def judge_dpmpp_2m_karras_20_30(
    table: pd.DataFrame, *, converged: float = CONVERGED_RMSE, tol: float = TOL
) -> tuple[str, str]:
    """At 20-30 steps: embedded model within ``converged`` latent RMSE of the reference (every seed), ground truth
    within ``tol``."""
    flags, parts = [], []
    for n, g in select(table, ground="embedded model", metric="reference_distance").groupby("steps"):
        flags.append(bool(g["value"].max() <= converged))
        parts.append(f"model {n} steps: worst seed {g['value'].max():.3f}")
    for n, v in curve(select(table, ground="ground truth"), "DPM++ 2M").items():
        flags.append(v <= tol)
        parts.append(f"ground truth {n} steps: {v:.4f}")
    return combine(
        flags
    ), f"{'; '.join(parts)} (converged: latent RMSE <= {converged} to the reference, true error <= {tol})."


@claim(
    20,
    "dpmpp_2m_karras_good_at_20_30",
    "DPM++ 2M Karras gives very good results at 20-30 steps.",
    "es",
    judge=judge_dpmpp_2m_karras_20_30,
    original="Con estos samplers mencionados obtendrás buenos resultados en 20-30 pasos",
    method="embedded model: distance to the reference at 20 and 30 steps; ground truth error at 20 and 30",
)
def _dpmpp_2m_karras(lab: Lab) -> Evidence:
    ref = lab.reference()
    runs = [lab.run("DPM++ 2M", n, schedule="Karras") for n in lab.pick((20,), (20, 30))]
    rows = reference_rows(runs, ref)
    gt = lab.gt_errors(("DPM++ 2M",), (20, 30))
    table = pd.concat([gt, pd.DataFrame(rows)], ignore_index=True)
    dist = select(table, metric="reference_distance")
    fig = bar_chart(
        {f"seed {s:.0f}, {n:.0f} steps": v for s, n, v in dist[["seed", "steps", "value"]].to_numpy()},
        title=f"DPM++ 2M Karras against {ref.sampler} {ref.schedule} at {ref.steps} steps", xlabel="latent RMSE",
        lines={f"converged ({CONVERGED_RMSE})": CONVERGED_RMSE},
    )  # fmt: skip
    return make_evidence(judge_dpmpp_2m_karras_20_30, table, images=run_images(runs + [ref], lab.seeds[0]), figure=fig)


MONOTONE_SAMPLERS = ("Euler", "Heun", "DPM2", "LMS", "DPM++ 2M", "DDIM", "PLMS", "UniPC")


def judge_more_steps_better(table: pd.DataFrame, *, slack: float = BETTER) -> tuple[str, str]:
    """Per (sampler, schedule): does the true error never rise by more than ``slack`` from one step count to the
    next? All: supported; at least half: mixed; fewer: refuted."""
    bad = []
    cells = 0
    for (sampler, schedule), g in table.groupby(["sampler", "schedule"]):
        errors = curve(g, sampler)
        cells += 1
        rises = [
            (a, b) for a, b in zip(errors.index, errors.index[1:], strict=False) if errors[b] > (1 + slack) * errors[a]
        ]
        if rises:
            bad.append(f"{sampler} ({schedule}) {rises[0][0]} -> {rises[0][1]}")
    if not cells:
        return "inconclusive", "not measured"
    share = 1 - len(bad) / cells
    verdict = "supported" if not bad else "mixed" if share >= 0.5 else "refuted"
    return verdict, (
        f"The true error never rises by > {slack:.0%} with more steps in {cells - len(bad)} of {cells} "
        f"(sampler, schedule) curves; it does for: {', '.join(bad) or 'none'}."
    )


@claim(
    24,
    "more_steps_better",
    "With non-ancestral samplers, more steps means better results.",
    "ru",
    judge=judge_more_steps_better,
    original=(
        "Non-ancestral models have the advantage of being easier to reason about; generally, more steps == more good "
        "there."
    ),
    method="ground truth: is every deterministic sampler's true error non-increasing in steps (Karras and uniform)?",
)
def _more_steps_better(lab: Lab) -> Evidence:
    title = "True error against steps"
    return gt_evidence(lab, judge_more_steps_better, MONOTONE_SAMPLERS, title, schedules=("karras", "uniform"))


STATED_ORDERS = {"Euler": 1.0, "Heun": 2.0, "DPM2": 2.0, "DPM++ 2M": 2.0}


def judge_stated_orders(table: pd.DataFrame, *, slack: float = ORDER_SLACK) -> tuple[str, str]:
    """Fitted order of accuracy (:func:`sdlab.groundtruth.fit_order`, median error, schedules stopping at
    sigma_min) within ``slack`` of the order the articles state."""
    fits = fit_order(table, metric="median_error", steps_range=None, x=("steps",))
    flags, parts = [], []
    for _, f in fits.iterrows():
        stated = STATED_ORDERS.get(f["sampler"])
        if stated is None or not math.isfinite(f["order"]):
            continue
        flags.append(abs(f["order"] - stated) <= slack)
        parts.append(f"{f['sampler']} {f['order']:.2f} (stated {stated:g})")
    return combine(flags), f"Fitted orders: {'; '.join(parts)} (confirmed within +-{slack})."


@claim(
    27,
    "stated_orders",
    "Heun is a second-order improvement of Euler; the 2 in DPM2 and DPM++ 2M means second order.",
    "es",
    judge=judge_stated_orders,
    original=(
        "Heun realiza dos tareas en cada paso, convirtiéndolo en un sampler de segundo orden ... el número 2 "
        "significa que son de segundo orden"
    ),
    method="ground truth: order of accuracy fitted to the true error against steps (Karras, stopping at sigma_min)",
)
def _stated_orders(lab: Lab) -> Evidence:
    steps, title = lab.pick((8, 16, 32), (16, 24, 32, 48, 64)), "True error against steps (to sigma_min)"
    return gt_evidence(lab, judge_stated_orders, STATED_ORDERS, title, steps=steps, stop_at_sigma_min=True)
