"""Claims about what samplers cost, counted in model evaluations (NFE): DPM adaptive ignores the step count (8)
and is the slowest (9), DPM++ 2M against 2S (21), LMS precise but slower (22), SDE samplers slower (23).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from sdlab.folklore.lab import Lab, cost_rows, gt_chart, gt_evidence, gt_steps, run_images
from sdlab.folklore.registry import claim
from sdlab.folklore.verdicts import BETTER, Evidence, combine, curve, lower_at, make_evidence, nfe_per_step, select
from sdlab.groundtruth import run_sampler
from sdlab.samplers.catalogue import A1111_SAMPLERS
from sdlab.viz.mpl import bar_chart


def judge_dpm_adaptive_ignores_steps(table: pd.DataFrame, *, atol: float = 1e-9) -> tuple[str, str]:
    """Same result (largest difference <= ``atol``) and same model evaluations at every step count, per ground."""
    same_result, same_cost, parts = [], [], []
    for ground, g in table.groupby("ground"):
        diff = float(select(g, metric="max_difference")["value"].max())
        nfe = select(g, metric="nfe")["value"]
        same_result.append(diff <= atol)
        same_cost.append(nfe.nunique() == 1)
        parts.append(f"{ground}: largest difference {diff:.2g}, NFE {sorted(set(nfe.astype(int)))}")
    verdict = combine([all(same_result), all(same_cost)]) if same_result else "inconclusive"
    steps = [int(n) for n in sorted(table["steps"].unique())]
    return verdict, f"DPM adaptive at {steps} steps: {'; '.join(parts)} (the same result: difference <= {atol})."


@claim(
    8,
    "dpm_adaptive_ignores_steps",
    "DPM adaptive ignores the step count you set and adapts its own step size.",
    "es",
    judge=judge_dpm_adaptive_ignores_steps,
    original="es como si se ignorase el número de pasos especificado",
    method="ground truth at several step counts (smoke); full mode adds the embedded model",
)
def _dpm_adaptive_ignores_steps(lab: Lab) -> Evidence:
    steps = lab.pick((5, 20, 50), (5, 10, 20, 50, 100))
    noise = torch.randn(32, lab.dist.dim, generator=torch.Generator().manual_seed(lab.seeds[0]), dtype=torch.float64)
    runs = {n: run_sampler("DPM adaptive", lab.dist, noise, steps=n, stop_at_sigma_min=False) for n in steps}
    first = runs[steps[0]].x_end
    rows = []
    for n, r in runs.items():
        base = {"ground": "ground truth", "sampler": "DPM adaptive", "steps": n}
        rows += [{**base, "metric": "nfe", "value": float(r.nfe)},
                 {**base, "metric": "max_difference", "value": float((r.x_end - first).abs().max())}]  # fmt: skip
    images = {}
    if not lab.smoke:  # ~100 model evaluations per run on the embedded model
        model_runs = [lab.run("DPM adaptive", n, seeds=lab.seeds[:1]) for n in (10, 30)]
        for r in model_runs:
            base = {"ground": "embedded model", "sampler": "DPM adaptive", "steps": r.steps}
            rows += [{**base, "metric": "nfe", "value": float(r.nfe)},
                     {**base, "metric": "max_difference",
                      "value": float((r.latents - model_runs[0].latents).abs().max())}]  # fmt: skip
        images = run_images(model_runs, lab.seeds[0])
    table = pd.DataFrame(rows)
    fig = bar_chart(
        {f"{g} {n} steps": v for g, n, v in select(table, metric="nfe")[["ground", "steps", "value"]].to_numpy()},
        title="DPM adaptive: model evaluations at each step count", xlabel="NFE",
    )  # fmt: skip
    return make_evidence(judge_dpm_adaptive_ignores_steps, table, images=images, figure=fig)


def judge_dpm_adaptive_slowest(table: pd.DataFrame) -> tuple[str, str]:
    """DPM adaptive's model evaluations (embedded model) against every fixed-step A1111 sampler's at the same steps."""
    adaptive = select(table, sampler="DPM adaptive", metric="nfe")["value"]
    others = select(table, metric="nfe")
    others = others[others["sampler"] != "DPM adaptive"]
    if adaptive.empty or others.empty:
        return "inconclusive", "not measured"
    a, top = float(adaptive.median()), others.loc[others["value"].idxmax()]
    median, steps = float(others["value"].median()), int(table["steps"].max())
    verdict = "supported" if a > top["value"] else "refuted"
    return verdict, (
        f"DPM adaptive: {a:.0f} model evaluations per image on the embedded model at {steps} steps; the most "
        f"expensive fixed-step sampler: {top['sampler']} {top['value']:.0f}; their median {median:.0f} "
        f"(DPM adaptive costs {a / median:.1f} x the median)."
    )


@claim(
    9,
    "dpm_adaptive_slowest",
    "DPM adaptive is the slowest sampler (three to four times the time of the others).",
    "es",
    judge=judge_dpm_adaptive_slowest,
    original="ha tardado el triple o cuádruple de tiempo con respecto a otros samplers",
    method="embedded model: DPM adaptive's model evaluations against every A1111 sampler's at 20 steps",
)
def _dpm_adaptive_slowest(lab: Lab) -> Evidence:
    n = 20  # A1111's default step count
    adaptive = lab.run("DPM adaptive", n, seeds=lab.seeds[:1])
    rows = [_nfe_row("embedded model", "DPM adaptive", n, adaptive.nfe)]
    noise = torch.zeros(1, lab.dist.dim, dtype=torch.float64)  # fixed-step samplers: NFE does not depend on the model
    for name in A1111_SAMPLERS:
        if name in ("DPM adaptive", "LCM"):
            continue
        r = run_sampler(name, lab.dist, noise, steps=n, stop_at_sigma_min=False, eta=0.0 if name != "Restart" else 1.0)
        rows.append(_nfe_row("embedded model", name, n, r.nfe))
    table = pd.DataFrame(rows)
    fig = bar_chart(
        dict(zip(table["sampler"], table["value"], strict=True)), title=f"Model evaluations per image at {n} steps",
        xlabel="NFE",
    )  # fmt: skip
    return make_evidence(judge_dpm_adaptive_slowest, table, images=run_images([adaptive], lab.seeds[0]), figure=fig)


def _nfe_row(ground: str, sampler: str, steps: int, count: int, **extra: Any) -> dict[str, Any]:
    """One row: a run's ``count`` of model evaluations (metric ``nfe``); ``extra`` columns before the metric."""
    return {"ground": ground, "sampler": sampler, "steps": steps, **extra, "metric": "nfe", "value": float(count)}


def judge_dpmpp_2m_vs_2s(table: pd.DataFrame, *, better: float = BETTER) -> tuple[str, str]:
    """Is DPM++ 2M slower per step than DPM++ 2S, and more precise at equal steps (``better`` lower error in
    most step counts)?"""
    m, s = nfe_per_step(table, "DPM++ 2M"), nfe_per_step(table, "DPM++ 2S a")
    wins, common = lower_at(curve(table, "DPM++ 2M"), curve(table, "DPM++ 2S a"), better)
    precise = wins > common / 2 if common else None
    return combine([m > s, precise]), (
        f"Model evaluations per step: DPM++ 2M {m:.2f}, DPM++ 2S {s:.2f}. DPM++ 2M's true error is lower at "
        f"{wins} of {common} step counts (more precise: most of them, by > {better:.0%})."
    )


@claim(
    21,
    "dpmpp_2m_multistep_slower",
    "In DPM++ 2M the M (multistep) means several calculations per step: more precise but slower than 2S (single step).",
    "es",
    judge=judge_dpmpp_2m_vs_2s,
    original=(
        "la letra M proviene de Multi step, un enfoque en el cual se realizan múltiples cálculos en cada paso ... a "
        "costa de tardar más"
    ),
    method="ground truth: model evaluations per step and true error of DPM++ 2M and DPM++ 2S (2S a at eta 0)",
)
def _dpmpp_2m_vs_2s(lab: Lab) -> Evidence:
    return gt_evidence(lab, judge_dpmpp_2m_vs_2s, ("DPM++ 2M", "DPM++ 2S a"), "True error: DPM++ 2M and 2S")


def judge_lms_precise_slower(table: pd.DataFrame, *, better: float = BETTER) -> tuple[str, str]:
    """LMS against Euler: lower true error at most step counts, and more model evaluations per step?"""
    gt = select(table, ground="ground truth")
    wins, common = lower_at(curve(gt, "LMS"), curve(gt, "Euler"), better)
    cost = nfe_per_step(gt, "LMS") / nfe_per_step(gt, "Euler")
    # the evidence table also holds each sampler's wall time on this machine ("seconds" rows); the summary states
    # the model evaluations only, so that it reads the same on every rebuild
    return combine([wins > common / 2 if common else None, cost > 1.05]), (
        f"LMS's true error is lower than Euler's at {wins} of {common} step counts; model evaluations per step "
        f"LMS / Euler = {cost:.2f} (slower: > 1.05)."
    )


@claim(
    22,
    "lms_precise_but_slower",
    "LMS uses the previous steps to be more precise, at the cost of more computation (slower).",
    "es",
    judge=judge_lms_precise_slower,
    original="Ofrece una mejor precisión a cambio de mayores requerimientos de computación (más lento).",
    method="ground truth: true error and model evaluations per step of LMS and Euler; embedded model: seconds",
)
def _lms_precise_slower(lab: Lab) -> Evidence:
    gt = lab.gt_errors(("LMS", "Euler"), gt_steps(lab))
    n = lab.pick(8, 20)
    table = pd.concat([gt, pd.DataFrame(cost_rows(lab.run("LMS", n), lab.run("Euler", n)))], ignore_index=True)
    return make_evidence(judge_lms_precise_slower, table, figure=gt_chart(gt, "True error: LMS and Euler"))


SDE = ("DPM++ SDE", "DPM++ 2M SDE", "DPM++ 3M SDE")


def judge_sde_slower(table: pd.DataFrame) -> tuple[str, str]:
    """Each SDE sampler's model evaluations per step against DPM++ 2M's."""
    base = nfe_per_step(table, "DPM++ 2M")
    per = {s: nfe_per_step(table, s) for s in SDE if s in set(table["sampler"])}
    flags = [v > 1.05 * base for v in per.values()]
    return combine(flags), (
        f"Model evaluations per step: {', '.join(f'{k} {v:.2f}' for k, v in per.items())}; DPM++ 2M {base:.2f} "
        "(slower: > 5 % more). The Brownian-tree noise adds some time per step on top, small beside a real UNet."
    )


@claim(
    23,
    "sde_slower",
    "SDE samplers model the noise more precisely, giving higher quality at the cost of being slower.",
    "es",
    judge=judge_sde_slower,
    original="lo que en principio generaría imágenes de mayor calidad a cambio de ser más lentos",
    method="ground truth (NFE counted on the denoiser): model evaluations per step of the SDE samplers vs DPM++ 2M",
)
def _sde_slower(lab: Lab) -> Evidence:
    rows = []
    noise = torch.zeros(1, lab.dist.dim, dtype=torch.float64)
    for s in (*SDE, "DPM++ 2M"):
        for n in (10, 20):
            r = run_sampler(s, lab.dist, noise, steps=n, stop_at_sigma_min=False)
            rows.append(_nfe_row("ground truth", s, n, r.nfe, nfe=r.nfe))
    table = pd.DataFrame(rows)
    fig = bar_chart(
        {s: nfe_per_step(table, s) for s in table["sampler"].unique()},
        title="Model evaluations per step",
        xlabel="NFE / step",
    )
    return make_evidence(judge_sde_slower, table, figure=fig)
