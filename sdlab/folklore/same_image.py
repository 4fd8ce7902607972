"""Claims about which runs give the same image, on the embedded model: every regular sampler converges to the
same image (1), DPM fast gives a different one (25), Euler at few steps previews Heun at more (26).

"The same image" is a latent distance below :data:`~sdlab.folklore.verdicts.SAME` times the seed-to-seed distance,
"a different image" one above :data:`~sdlab.folklore.verdicts.DIFFERENT` times it.
"""

from __future__ import annotations

import math
from itertools import combinations

import pandas as pd

from sdlab.folklore.lab import Lab, pair_rows, run_images, seed_rows
from sdlab.folklore.registry import claim
from sdlab.folklore.verdicts import (
    DIFFERENT,
    SAME,
    Evidence,
    band,
    band_verdict,
    combine,
    fmt,
    make_evidence,
    ratio,
    seed_scale,
    select,
)
from sdlab.viz.mpl import bar_chart, line_chart


def judge_converge_same_image(
    table: pd.DataFrame, *, same: float = SAME, different: float = DIFFERENT
) -> tuple[str, str]:
    """At the largest step count, the farthest pair of deterministic samplers against the seed-to-seed distance."""
    top = int(table["steps"].max())
    at_top = table[table["steps"] == top]
    pairs = select(at_top, metric="pair_distance")
    if pairs.empty or not math.isfinite(seed_scale(at_top)):
        return "inconclusive", "no pairs measured"
    per_pair = pairs.groupby(["sampler", "against"])["value"].median() / seed_scale(at_top)
    worst, (a, b) = float(per_pair.max()), per_pair.idxmax()
    anc = ratio(at_top, "ancestral_distance")
    verdict = band_verdict(worst, same, different)
    return verdict, (
        f"At {top} steps the farthest pair of deterministic samplers ({a} vs {b}) is {worst:.2f} x the seed-to-seed "
        f"distance (same image below {same}, different above {different}); Euler a lands {fmt(anc, 2)} x away."
    )


@claim(
    1,
    "converge_same_image",
    "All the regular (non-ancestral) samplers converge to the same image after a lot of steps.",
    "ru",
    judge=judge_converge_same_image,
    original="All the regular samples converge to the same image after a lot of steps.",
    method="embedded model: deterministic samplers at high steps against each other, beside seed-to-seed distance",
)
def _converge_same_image(lab: Lab) -> Evidence:
    samplers = lab.pick(
        ("Euler", "Heun", "LMS", "DPM++ 2M"), ("Euler", "Heun", "DPM2", "LMS", "DPM++ 2M", "UniPC", "DDIM")
    )
    rows: list[dict] = []
    for n in lab.pick((8, 16), (20, 40, 80)):
        runs = {s: lab.run(s, n) for s in samplers}
        anc = lab.run("Euler a", n)
        rows += seed_rows(*runs.values())
        for a, b in combinations(samplers, 2):
            rows += pair_rows(runs[a], runs[b], "pair_distance")
        for s in samplers:
            rows += pair_rows(anc, runs[s], "ancestral_distance")
    table = pd.DataFrame(rows)
    plot = _converge_lines(table)
    fig = line_chart(
        plot, series=("line",), title="Distance between samplers / seed-to-seed distance", ylabel="ratio",
        hlines={f"same image ({SAME})": SAME, f"different image ({DIFFERENT})": DIFFERENT},
    )  # fmt: skip
    images = run_images([*runs.values(), anc], lab.seeds[0])
    return make_evidence(judge_converge_same_image, table, images=images, figure=fig)


def _converge_lines(table: pd.DataFrame) -> pd.DataFrame:
    """Per step count: the farthest and the median pair of deterministic samplers, and Euler a against them, each
    a median over seeds divided by the seed-to-seed distance at that step count."""
    scale = table[table["metric"] == "seed_to_seed"].groupby("steps")["value"].median()
    med = table[table["metric"] != "seed_to_seed"].groupby(["metric", "steps", "sampler", "against"])["value"].median()
    ratios = (med / med.index.get_level_values("steps").map(scale).to_numpy()).rename("value").reset_index()
    pairs, anc = ratios[ratios["metric"] == "pair_distance"], ratios[ratios["metric"] == "ancestral_distance"]
    return pd.concat(
        [pairs.groupby("steps")["value"].max().reset_index().assign(line="farthest deterministic pair"),
         pairs.groupby("steps")["value"].median().reset_index().assign(line="median deterministic pair"),
         anc.groupby("steps")["value"].median().reset_index().assign(line="Euler a vs each deterministic (median)")],
        ignore_index=True,
    )  # fmt: skip


def judge_dpm_fast_different(
    table: pd.DataFrame, *, different: float = DIFFERENT, worse: float = 2.0
) -> tuple[str, str]:
    """DPM fast (A1111: eta 1) against DPM++ 2M at the most steps (different: >= ``different`` x seed-to-seed), and
    its distance to the reference at the fewest steps against Euler's (useless: >= ``worse`` x)."""
    top, low = int(table["steps"].max()), int(table["steps"].min())
    diff = ratio(table, "vs_dpmpp_2m", sampler="DPM fast", steps=top)
    diff0 = ratio(table, "vs_dpmpp_2m", sampler="DPM fast eta 0", steps=top)
    fast = select(table, metric="reference_distance", sampler="DPM fast", steps=low)["value"].median()
    euler = select(table, metric="reference_distance", sampler="Euler", steps=low)["value"].median()
    useless = fast / euler if euler > 0 else math.nan
    flags = [diff >= different if math.isfinite(diff) else None, useless >= worse if math.isfinite(useless) else None]
    return combine(flags), (
        f"At {top} steps DPM fast lands {diff:.2f} x the seed-to-seed distance from DPM++ 2M (different: >= "
        f"{different}); at eta 0 {fmt(diff0, 2)} x: A1111's eta 1 makes the difference. At {low} steps its "
        f"distance to the reference is {useless:.1f} x Euler's (useless: >= {worse} x)."
    )


@claim(
    25,
    "dpm_fast_different",
    "DPM fast is useless at few steps, and gives a different result from the rest of the samplers.",
    "es",
    judge=judge_dpm_fast_different,
    original="utilizando pocos pasos es inservible. Curiosamente ofrece un resultado distinto al resto de samplers",
    method=(
        "embedded model: DPM fast (A1111's eta 1, and eta 0) against DPM++ 2M, and against the reference at few steps"
    ),
)
def _dpm_fast_different(lab: Lab) -> Evidence:
    low, high = lab.pick((8, 16), (10, 40))
    ref, twin = lab.reference(), lab.run("DPM++ 2M", high)
    fast_low, fast, fast0 = lab.run("DPM fast", low), lab.run("DPM fast", high), lab.run("DPM fast", high, eta=0.0)
    rows = pair_rows(fast, twin, "vs_dpmpp_2m") + [
        {**r, "sampler": "DPM fast eta 0"} for r in pair_rows(fast0, twin, "vs_dpmpp_2m")
    ]
    rows += pair_rows(fast_low, ref, "reference_distance") + pair_rows(lab.run("Euler", low), ref, "reference_distance")
    rows += seed_rows(twin)
    table = pd.DataFrame(rows)
    images = run_images(
        [fast_low, fast, fast0, twin],
        lab.seeds[0],
        lambda r: f"{r.sampler} {r.steps}" + (" eta 0" if r is fast0 else ""),
    )
    scale = seed_scale(table)
    fig = bar_chart(
        {"DPM fast vs DPM++ 2M": ratio(table, "vs_dpmpp_2m", sampler="DPM fast"),
         "DPM fast (eta 0) vs DPM++ 2M": ratio(table, "vs_dpmpp_2m", sampler="DPM fast eta 0")},
        title=f"At {high} steps: distance / seed-to-seed ({fmt(scale)})", xlabel="ratio",
        lines={f"different ({DIFFERENT})": DIFFERENT, f"same ({SAME})": SAME},
    )  # fmt: skip
    return make_evidence(judge_dpm_fast_different, table, images=images, figure=fig)


def judge_euler_previews_heun(
    table: pd.DataFrame, *, same: float = SAME, different: float = DIFFERENT
) -> tuple[str, str]:
    """Euler at few steps against Heun at more (a preview: <= ``same`` x seed-to-seed), and Heun closer to the
    reference than Euler at the same steps (more detail)."""
    preview = ratio(table, "euler_vs_heun")
    heun = select(table, metric="reference_distance", sampler="Heun")["value"].median()
    euler = select(table, metric="reference_distance", sampler="Euler")["value"].median()
    flags = [band(preview, same, different), heun < euler]
    return combine(flags), (
        f"Euler at few steps vs Heun at more: {preview:.2f} x the seed-to-seed distance (a preview: <= {same}; a "
        f"different image: >= {different}); at equal steps Heun is {heun:.3f} from the reference, Euler {euler:.3f}."
    )


@claim(
    26,
    "euler_previews_heun",
    "Euler and Heun make a nice pair: Euler to iterate fast until you like the image, then Heun for better detail.",
    "ru",
    judge=judge_euler_previews_heun,
    original=(
        "Euler for fast iteration over a seed+prompt+config until you get something you like, then run Heun to get a "
        "better level of details."
    ),
    method="embedded model: Euler at few steps against Heun at more steps; each against the reference",
)
def _euler_previews_heun(lab: Lab) -> Evidence:
    low, high = lab.pick((8, 16), (10, 30))
    ref, euler, heun, euler_high = lab.reference(), lab.run("Euler", low), lab.run("Heun", high), lab.run("Euler", high)
    rows = pair_rows(euler, heun, "euler_vs_heun") + seed_rows(heun)
    rows += pair_rows(heun, ref, "reference_distance") + pair_rows(euler_high, ref, "reference_distance")
    table = pd.DataFrame(rows)
    scale = seed_scale(table)
    fig = bar_chart(
        {f"Euler {low} vs Heun {high} / seed-to-seed": ratio(table, "euler_vs_heun"),
         f"Heun {high} to the reference / seed-to-seed": ratio(table, "reference_distance", sampler="Heun"),
         f"Euler {high} to the reference / seed-to-seed": ratio(table, "reference_distance", sampler="Euler")},
        title=f"Distances / seed-to-seed distance ({fmt(scale)})", xlabel="ratio", lines={f"same ({SAME})": SAME},
    )  # fmt: skip
    return make_evidence(
        judge_euler_previews_heun, table, images=run_images([euler, heun, euler_high, ref], lab.seeds[0]), figure=fig
    )
