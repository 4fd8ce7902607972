"""Claims about ancestral and SDE samplers, whose per-step noise makes each seed's path keep moving: DPM2 a looks
like Euler a on the previous seed (6), ancestral (10) and SDE (11) samplers never converge, ancestral samplers land
far from their deterministic twins (12), Euler a is good at few steps (15).

On the ground truth a path "settles" when its change from N to 2N steps shrinks below
:data:`~sdlab.folklore.verdicts.SETTLES` times; the distribution is judged by its MMD to the true one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from torch import Tensor

from sdlab.folklore.lab import Lab, distance, pair_rows, run_images, seed_rows
from sdlab.folklore.registry import claim
from sdlab.folklore.verdicts import (
    DIFFERENT,
    MMD_SIGMAS,
    SAME,
    SETTLES,
    Evidence,
    band_verdict,
    combine,
    curve,
    fmt,
    make_evidence,
    ratio,
    seed_scale,
    select,
)
from sdlab.viz.mpl import bar_chart, line_chart


def judge_dpm2a_prev_seed(table: pd.DataFrame, *, close: float = 0.5, far: float = 0.8) -> tuple[str, str]:
    """DPM2 a at seed s against Euler a at s - 1, as a fraction of its distance to Euler a at unrelated seeds."""
    unrelated = select(table, metric="unrelated_seed")["value"].median()
    prev = select(table, metric="previous_seed")["value"].median()
    same = select(table, metric="same_seed")["value"].median()
    if not (math.isfinite(prev) and math.isfinite(unrelated) and unrelated > 0):
        return "inconclusive", "not enough seeds to compare"
    r_prev, r_same = prev / unrelated, same / unrelated
    verdict = band_verdict(r_prev, close, far)
    return verdict, (
        f"DPM2 a at seed s vs Euler a at s - 1: {r_prev:.2f} x its distance to Euler a at unrelated seeds (similar: "
        f"<= {close}; no closer than chance: >= {far}); vs Euler a at the same seed: {r_same:.2f} x."
    )


@claim(
    6,
    "dpm2a_is_euler_a_previous_seed",
    "DPM2 a generates images very similar to Euler a's on the previous seed.",
    "ru",
    judge=judge_dpm2a_prev_seed,
    original="in some comparisons DPM2-A generates very similar images as Euler-A... on the previous seed.",
    method="embedded model: DPM2 a at seed s against Euler a at seeds s - 1, s and unrelated seeds",
)
def _dpm2a_prev_seed(lab: Lab) -> Evidence:
    n = lab.pick(16, 30)
    targets = [s for s in lab.seeds if s >= 1] or [1]
    euler_seeds = sorted({t + d for t in targets for d in (-1, 0, 1)} | set(lab.seeds))
    euler, dpm2a = lab.run("Euler a", n, seeds=euler_seeds), lab.run("DPM2 a", n, seeds=targets)
    rows = []
    for s in targets:
        for t in euler_seeds:
            kind = "previous_seed" if t == s - 1 else "same_seed" if t == s else "unrelated_seed"
            rows.append(
                {"ground": "embedded model", "sampler": "DPM2 a", "steps": n, "seed": s, "against": f"Euler a seed {t}",
                 "metric": kind, "value": distance(dpm2a.latent(s), euler.latent(t))}
            )  # fmt: skip
    table = pd.DataFrame(rows)
    means = table.groupby("metric")["value"].median()
    fig = bar_chart(
        {k.replace("_", " "): float(means.get(k, math.nan)) for k in ("previous_seed", "same_seed", "unrelated_seed")},
        title="DPM2 a at seed s against Euler a", xlabel="latent RMSE (median over seeds)",
    )  # fmt: skip
    s = targets[0]
    images = {f"DPM2 a seed {s}": dpm2a.image(s), f"Euler a seed {s - 1}": euler.image(s - 1)}
    images |= {f"Euler a seed {s}": euler.image(s), f"Euler a seed {s + 1}": euler.image(s + 1)}
    return make_evidence(judge_dpm2a_prev_seed, table, images=images, figure=fig)


def _settling(table: pd.DataFrame, sampler: str) -> tuple[float, float, float]:
    """Ground truth: (path change N -> 2N at the largest N over at the smallest N, MMD at the largest N, the MMD
    noise floor + its margin there)."""
    rows = select(table, ground="ground truth", sampler=sampler)
    path = curve(rows, sampler, metric="path_change_double")
    mmd = select(rows, metric="mmd")
    if path.empty or mmd.empty:
        return math.nan, math.nan, math.nan
    last = mmd[mmd["steps"] == mmd["steps"].max()].iloc[0]
    return float(path.iloc[-1] / path.iloc[0]), float(last["value"]), float(last["floor_mean"] + 3 * last["floor_std"])


def _model_change(table: pd.DataFrame, sampler: str) -> float:
    """Embedded model: the change from N to 2N steps at the largest N, over the seed-to-seed distance."""
    rows = select(table, ground="embedded model", sampler=sampler, metric="n_to_2n")
    if rows.empty:
        return math.nan
    return float(rows[rows["steps"] == rows["steps"].max()]["value"].median()) / seed_scale(table)


def judge_ancestral_never_converge(
    table: pd.DataFrame, *, settles: float = SETTLES, same: float = SAME
) -> tuple[str, str]:
    """Each seed's path (ground truth: does its N -> 2N change shrink below ``settles`` x? embedded model: is the
    image at 2N steps still the same image, within ``same`` x seed-to-seed, as at N?) and the distribution (MMD
    against its noise floor): paths that never settle but a distribution that converges make it "mixed"."""
    paths, parts, dist_ok = [], [], []
    for sampler in ("Euler a", "DPM2 a"):
        shrink, mmd, floor = _settling(table, sampler)
        if math.isfinite(shrink):
            paths.append(shrink > settles)
            dist_ok.append(mmd <= floor)
            parts.append(f"{sampler}: path change x{shrink:.2f} over the steps, MMD {mmd:.3f} (floor {floor:.3f})")
        change = _model_change(table, sampler)
        if math.isfinite(change):
            paths.append(change > same)
            parts.append(f"{sampler} on the model: N -> 2N = {change:.2f} x seed-to-seed")
    never = combine(paths)
    if never == "supported" and dist_ok and all(dist_ok):
        never = "mixed"
    return never, (
        f"{'; '.join(parts)}. A path settles when its change shrinks below x{settles} over the steps (ground "
        f"truth) or stays within {same} x seed-to-seed from N to 2N (model: the same image); the distribution has "
        "converged when its MMD is within 3 sd of the noise floor."
    )


@claim(
    10,
    "ancestral_never_converge",
    "Ancestral samplers never converge, because of the random noise they add at every step.",
    "es",
    judge=judge_ancestral_never_converge,
    original="Samplers con esta característica nunca convergen debido al ruido aleatorio que se añade en cada paso.",
    method="ground truth: each seed's path and the distribution (MMD) vs steps; embedded model: N vs 2N steps",
)
def _ancestral_never_converge(lab: Lab) -> Evidence:
    dist = select(lab.gt_distribution(), sampler=["Euler a", "DPM2 a", "Euler"])
    rows, images = _n_to_2n(lab, ("Euler a", "Euler"))
    table = pd.concat([dist, pd.DataFrame(rows)], ignore_index=True)
    fig = line_chart(
        select(dist, metric=["path_change_double", "mmd"]), series=("sampler", "metric"),
        title="Ground truth: each seed's change N -> 2N, and MMD to the true distribution", ylabel="distance",
        hlines={"MMD noise floor": float(dist["floor_mean"].iloc[0])},
    )  # fmt: skip
    return make_evidence(judge_ancestral_never_converge, table, images=images, figure=fig)


def _n_to_2n(lab: Lab, samplers: Sequence[str]) -> tuple[list[dict], dict[str, Tensor]]:
    """Embedded model: each sampler at N and 2N steps, their distance, plus seed-to-seed rows."""
    rows, images = [], {}
    for s in samplers:
        for n in lab.pick((8,), (10, 20, 40)):
            a, b = lab.run(s, n), lab.run(s, 2 * n)
            rows += pair_rows(a, b, "n_to_2n") + seed_rows(b)
            images |= run_images([a, b], lab.seeds[0])
    return rows, images


def judge_sde_never_converge(table: pd.DataFrame, *, settles: float = SETTLES, same: float = SAME) -> tuple[str, str]:
    """Does each seed's path keep changing as steps grow? Ground truth: its N -> 2N change does not shrink below
    ``settles`` x; embedded model: the image at 2N steps is not the same (> ``same`` x seed-to-seed) as at N."""
    flags, parts = [], []
    for sampler in ("DPM++ SDE", "DPM++ 2M SDE"):
        shrink, _, _ = _settling(table, sampler)
        if math.isfinite(shrink):
            flags.append(shrink > settles)
            parts.append(f"{sampler}: path change x{shrink:.2f} from fewest to most steps")
        change = _model_change(table, sampler)
        if math.isfinite(change):
            flags.append(change > same)
            parts.append(f"{sampler} on the model: N -> 2N = {change:.2f} x seed-to-seed")
    euler_a, _, _ = _settling(table, "Euler a")
    return combine(flags), (
        f"{'; '.join(parts)} (Euler a for comparison: x{fmt(euler_a, 2)}). Never converges: the change does not "
        f"shrink below x{settles} (ground truth), or the image at 2N steps is not the same as at N (model: above "
        f"{same} x seed-to-seed)."
    )


@claim(
    11,
    "sde_never_converge",
    "SDE samplers are stochastic and never converge: more steps give variations, not quality, like ancestral ones.",
    "es",
    judge=judge_sde_never_converge,
    original=(
        "Al ser estocástico nunca converge, por lo que a mayor número de pasos no ofrecen mayor calidad, si no más "
        "variaciones"
    ),
    method="ground truth: each seed's change N -> 2N (Brownian-tree noise); embedded model: N vs 2N steps",
)
def _sde_never_converge(lab: Lab) -> Evidence:
    dist = select(lab.gt_distribution(), sampler=["DPM++ SDE", "DPM++ 2M SDE", "Euler a"])
    rows, images = _n_to_2n(lab, ("DPM++ 2M SDE",))
    table = pd.concat([dist, pd.DataFrame(rows)], ignore_index=True)
    fig = line_chart(
        select(dist, metric="path_change_double"), title="Ground truth: each seed's change from N to 2N steps",
        ylabel="mean distance",
    )  # fmt: skip
    return make_evidence(judge_sde_never_converge, table, images=images, figure=fig)


def judge_ancestral_far_from_twins(table: pd.DataFrame, *, different: float = DIFFERENT) -> tuple[str, str]:
    """Each ancestral sampler against its deterministic twin (far: >= ``different`` x seed-to-seed) and the two
    ancestral samplers against each other (closer than to their twins)."""
    twins = select(table, metric="vs_twin").groupby("sampler")["value"].median() / seed_scale(table)
    each_other = ratio(table, "vs_other_ancestral")
    if twins.empty or not math.isfinite(each_other):
        return "inconclusive", "not measured"
    far = bool((twins >= different).all())
    closer = bool(each_other < twins.min())
    return combine([far, closer]), (
        f"Distance to the deterministic twin / seed-to-seed: {', '.join(f'{k} {v:.2f}' for k, v in twins.items())} "
        f"(far: >= {different}); Euler a vs DPM2 a: {each_other:.2f} (closer to each other than to their twins: "
        f"{'yes' if closer else 'no'})."
    )


@claim(
    12,
    "ancestral_far_from_twins",
    (
        "Ancestral samplers land much further away from the corresponding non-ancestral samplers, and closer to each "
        "other."
    ),
    "ru",
    judge=judge_ancestral_far_from_twins,
    original=(
        "The Ancestral samplers are deceptively much further away from the corresponding non-Ancestral samplers and "
        "closer to each other."
    ),
    method="embedded model: Euler a vs Euler, DPM2 a vs DPM2, Euler a vs DPM2 a, same seed, beside seed-to-seed",
)
def _ancestral_far_from_twins(lab: Lab) -> Evidence:
    n = lab.pick(16, 40)
    ea, e, da, d = (lab.run(s, n) for s in ("Euler a", "Euler", "DPM2 a", "DPM2"))
    rows = pair_rows(ea, e, "vs_twin") + pair_rows(da, d, "vs_twin") + pair_rows(ea, da, "vs_other_ancestral")
    rows += seed_rows(e, d)
    table = pd.DataFrame(rows)
    scale = seed_scale(table)
    bars = {
        f"{k[0]} vs {k[1]}": v / scale
        for k, v in table[table["metric"] != "seed_to_seed"].groupby(["sampler", "against"])["value"].median().items()
    }
    fig = bar_chart(
        bars, title="Distance / seed-to-seed distance", xlabel="ratio", lines={f"different ({DIFFERENT})": DIFFERENT}
    )
    return make_evidence(
        judge_ancestral_far_from_twins, table, images=run_images([ea, e, da, d], lab.seeds[0]), figure=fig
    )


def judge_euler_a_low_steps(table: pd.DataFrame, *, sigmas: float = MMD_SIGMAS, low_max: int = 10) -> tuple[str, str]:
    """At each step count <= ``low_max``: Euler a's MMD to the true distribution against Euler's (ties within
    ``sigmas`` noise-floor sd)."""
    flags, parts = [], []
    for n in sorted(table["steps"].unique()):
        if n > low_max:
            continue
        a, e = (
            select(table, sampler="Euler a", steps=n, metric="mmd"),
            select(table, sampler="Euler", steps=n, metric="mmd"),
        )
        if a.empty or e.empty:
            continue
        margin = sigmas * float(a["floor_std"].iloc[0]) * math.sqrt(2)
        diff = float(e["value"].iloc[0] - a["value"].iloc[0])
        flags.append(True if diff > margin else False if diff < -margin else None)
        parts.append(f"{n} steps: Euler a {a['value'].iloc[0]:.3f} vs Euler {e['value'].iloc[0]:.3f} (+-{margin:.3f})")
    verdict = combine(flags)
    return verdict, f"MMD to the true distribution (lower is better; a tie within the margin): {'; '.join(parts)}."


@claim(
    15,
    "euler_a_good_at_few_steps",
    (
        "Euler a generates good results in few steps (5-10): the extra noise helps get something cohesive at low step "
        "counts."
    ),
    "ru",
    judge=judge_euler_a_low_steps,
    original=(
        "k_euler_ancestral — генерировать высококачественные результаты за небольшое количество шагов (5-10 шагов)"
    ),
    method="ground truth: the distribution of results (MMD to the true one) of Euler a against Euler at few steps",
)
def _euler_a_low_steps(lab: Lab) -> Evidence:
    table = select(lab.gt_distribution(), sampler=["Euler a", "Euler", "DPM++ 2M"])
    fig = line_chart(
        select(table, metric="mmd"), title="MMD to the true distribution", ylabel="MMD",
        hlines={"noise floor": float(table["floor_mean"].iloc[0])},
    )  # fmt: skip
    return make_evidence(judge_euler_a_low_steps, table, figure=fig)
