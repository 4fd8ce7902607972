"""sdlab.folklore: claims are registered with their sources, verdicts follow the evidence and its thresholds,
and a few claims run end to end (ground truth; the tiny random SD model)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import sdlab.folklore as F
from sdlab.errors import SdlabError
from sdlab.folklore.verdicts import combine, reach

REQUIRED = (
    "converge_same_image",
    "heun_dpm2_fewer_steps_twice_cost",
    "lms_best_at_8_steps",
    "lms_degrades_at_60",
    "dpm2a_is_euler_a_previous_seed",
    "karras_helps_low_steps",
    "dpm_adaptive_ignores_steps",
    "ancestral_never_converge",
    "ancestral_same_on_rerun",
    "ddim_needs_many_steps",
    "unipc_best_at_few_steps",
    "dpmpp_2m_karras_good_at_20_30",
    "sde_never_converge",
)


pytestmark = pytest.mark.usefixtures("one_thread")


# --- the registry ---------------------------------------------------------------------------------------------


def test_every_required_claim_is_registered_with_a_source_and_a_judge():
    assert set(REQUIRED) <= set(F.CLAIMS)
    for claim_id, claim in F.CLAIMS.items():
        assert claim.id == claim_id
        assert claim.text and claim.original and claim.method
        assert set(claim.source.split(",")) <= set(F.SOURCES)
        assert callable(claim.experiment) and callable(claim.judge)
    assert all(source in F.SOURCES for _, source, _ in F.NOT_TESTED)


# every public name of the single-module sdlab.folklore (before it became a package), still at sdlab.folklore
OLD_PUBLIC_NAMES = (
    "VERDICTS", "SOURCES", "SAME", "DIFFERENT", "TOL", "BETTER", "DEGRADE", "TWICE", "HALF", "NOT_HALF", "SETTLES",
    "ORDER_SLACK", "MMD_SIGMAS", "CONVERGED_RMSE", "PERTURBATION", "ENSD", "DEFAULT_PROMPT", "REFERENCE", "Evidence",
    "Claim", "CLAIMS", "NOT_TESTED", "get_claim", "Run", "Lab", "DISTRIBUTION_SAMPLERS", "judge_converge_same_image",
    "SECOND_ORDER", "judge_heun_dpm2_fewer_steps", "judge_heun_dpm2_twice_lms", "LOW_STEP_SAMPLERS",
    "judge_lms_best_low_steps", "judge_lms_degrades", "judge_dpm2a_prev_seed", "judge_karras_low_steps",
    "judge_dpm_adaptive_ignores_steps", "judge_dpm_adaptive_slowest", "judge_ancestral_never_converge",
    "judge_sde_never_converge", "judge_ancestral_far_from_twins", "ANCESTRAL", "DETERMINISTIC",
    "judge_ancestral_same_on_rerun", "judge_ancestral_implementation", "judge_euler_a_low_steps", "judge_lms_needs_100",
    "judge_plms_low_steps", "judge_ddim_many_steps", "judge_unipc_low_steps", "judge_dpmpp_2m_karras_20_30",
    "judge_dpmpp_2m_vs_2s", "judge_lms_precise_slower", "SDE", "judge_sde_slower", "MONOTONE_SAMPLERS",
    "judge_more_steps_better", "judge_dpm_fast_different", "judge_euler_previews_heun", "STATED_ORDERS",
    "judge_stated_orders", "run_claims", "check", "verdict_table", "verdict_markdown", "verdict_figure",
    "save_verdicts", "show_evidence", "save_evidence",
)  # fmt: skip

ADDED_NAMES = {"rejudge"}  # public names added since, each on purpose

NOTEBOOK_ORDER = (
    "converge_same_image", "heun_dpm2_fewer_steps_twice_cost", "heun_dpm2_twice_as_fast_as_lms", "lms_best_at_8_steps",
    "lms_degrades_at_60", "dpm2a_is_euler_a_previous_seed", "karras_helps_low_steps", "dpm_adaptive_ignores_steps",
    "dpm_adaptive_slowest", "ancestral_never_converge", "sde_never_converge", "ancestral_far_from_twins",
    "ancestral_same_on_rerun", "ancestral_not_reproducible_across_implementations", "euler_a_good_at_few_steps",
    "lms_needs_100_steps", "plms_bad_at_few_steps", "ddim_needs_many_steps", "unipc_best_at_few_steps",
    "dpmpp_2m_karras_good_at_20_30", "dpmpp_2m_multistep_slower", "lms_precise_but_slower", "sde_slower",
    "more_steps_better", "dpm_fast_different", "euler_previews_heun", "stated_orders",
)  # fmt: skip


def test_the_package_keeps_every_name_of_the_old_module_and_the_claims_order():
    missing = [name for name in OLD_PUBLIC_NAMES if not hasattr(F, name)]
    assert not missing
    assert set(F.__all__) <= set(OLD_PUBLIC_NAMES) | ADDED_NAMES
    assert tuple(F.CLAIMS) == NOTEBOOK_ORDER  # the theme modules register out of order; CLAIMS keeps the notebook's
    assert F.judge_lms_degrades is F.CLAIMS["lms_degrades_at_60"].judge


def test_unknown_claim_and_verdict_raise_with_a_hint():
    with pytest.raises(SdlabError) as err:
        F.get_claim("lms_degrades_at_06")
    assert "lms_degrades_at_60" in str(err.value.hint)
    with pytest.raises(SdlabError):
        F.Evidence("true", "", pd.DataFrame())
    with pytest.raises(SdlabError):
        F.Lab(seeds=[0])  # seed-to-seed distances need two seeds


def test_combine():
    assert combine([True, True]) == "supported"
    assert combine([False, False]) == "refuted"
    assert combine([True, False]) == "mixed"
    assert combine([True, None]) == "mixed"  # None: in between, so not all of it holds
    assert combine([None]) == combine([]) == "inconclusive"


def test_reach_interpolates_in_log_log_and_says_never():
    curve = pd.Series([0.1, 0.01], index=[10, 100])  # error ~ 1 / steps
    assert reach(curve, 0.02) == pytest.approx(50.0)
    assert reach(curve, 0.001) == math.inf
    assert reach(curve, 0.5) == 10


# --- verdicts follow the evidence: synthetic tables, thresholds flip them ------------------------------------


def _pairs_table(pair: float) -> pd.DataFrame:
    rows = [{"steps": 40, "metric": "seed_to_seed", "sampler": "Euler", "against": "seed 1", "value": 1.0}]
    rows += [{"steps": 40, "metric": "pair_distance", "sampler": "Euler", "against": "Heun at 40", "value": pair}]
    rows += [{"steps": 40, "metric": "ancestral_distance", "sampler": "Euler a", "against": "Euler", "value": 0.8}]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("pair", "verdict"), [(0.1, "supported"), (0.3, "mixed"), (0.7, "refuted")])
def test_converge_same_image_verdict_follows_the_distances(pair, verdict):
    assert F.judge_converge_same_image(_pairs_table(pair))[0] == verdict


def test_converge_same_image_threshold_flips_the_verdict():
    table = _pairs_table(0.3)
    assert F.judge_converge_same_image(table, same=0.2)[0] == "mixed"
    assert F.judge_converge_same_image(table, same=0.35)[0] == "supported"
    verdict, summary = F.judge_converge_same_image(table)
    assert "0.30" in summary and str(F.SAME) in summary  # the number and the threshold are in the summary


def test_rejudge_moves_the_verdict_with_the_threshold_static_and_as_a_slider():
    evidence = F.Evidence("mixed", "", _pairs_table(0.3))
    table = F.rejudge("converge_same_image", evidence, "same", [0.1, 0.35], static=True)
    assert list(table["same"]) == [0.1, 0.35] and list(table["verdict"]) == ["mixed", "supported"]
    pytest.importorskip("ipywidgets")
    box = F.rejudge("converge_same_image", evidence, "same", [0.1, 0.35], static=False)
    slider, shown = box.children
    assert "MIXED" in shown.value and "0.1" in shown.value
    slider.value = 1  # the second threshold: the verdict and the summary under the slider follow
    assert "SUPPORTED" in shown.value and "0.35" in shown.value


def test_rejudge_refuses_a_threshold_the_judge_does_not_have():
    evidence = F.Evidence("mixed", "", _pairs_table(0.3))
    with pytest.raises(SdlabError, match="no threshold 'tol'") as e:
        F.rejudge("converge_same_image", evidence, "tol", [0.1])
    assert "same" in str(e.value)  # names the thresholds it has
    with pytest.raises(SdlabError, match="finite"):
        F.rejudge("converge_same_image", evidence, "same", [math.nan])


def test_saved_verdicts_keep_wall_times_apart(tmp_path):
    table = pd.DataFrame([{"claim": "a", "text": "t", "source": "ru", "verdict": "supported", "summary": "s",
                           "seconds": 1.5}])  # fmt: skip
    written = F.save_verdicts(table, tmp_path)
    assert {p.name for p in written} == {"verdicts.csv", "verdicts.md", "verdicts.png", "timings.csv"}
    assert "seconds" not in pd.read_csv(tmp_path / "verdicts.csv").columns  # a rebuild writes the same table
    assert pd.read_csv(tmp_path / "timings.csv").to_dict("records") == [{"claim": "a", "seconds": 1.5}]


def test_saved_evidence_keeps_wall_times_apart(tmp_path):
    table = pd.DataFrame([{"sampler": "LMS", "metric": "nfe", "value": 20.0},
                          {"sampler": "LMS", "metric": "seconds", "value": 0.3}])  # fmt: skip
    written = F.save_evidence(F.Evidence("mixed", "", table), tmp_path, "cost")
    assert {p.name for p in written} == {"cost.csv", "cost_timings.csv"}
    assert list(pd.read_csv(tmp_path / "cost.csv")["metric"]) == ["nfe"]
    assert list(pd.read_csv(tmp_path / "cost_timings.csv")["metric"]) == ["seconds"]


def _gt_table(orders: dict[str, float], nfe_per_step: dict[str, int]) -> pd.DataFrame:
    """Synthetic ground-truth errors 0.5 * steps**-order, per sampler and schedule."""
    rows = []
    for sampler, p in orders.items():
        for n in (4, 8, 16, 32, 64):
            rows.append(
                {"ground": "ground truth", "sampler": sampler, "schedule": "karras", "steps": n,
                 "nfe": nfe_per_step[sampler] * n, "metric": "median_error", "value": 0.5 * n**-p}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_second_order_claim_needs_fewer_steps_and_twice_the_cost():
    orders = {"Euler": 1.0, "Heun": 2.0, "DPM2": 2.0}
    assert F.judge_heun_dpm2_fewer_steps(_gt_table(orders, {"Euler": 1, "Heun": 2, "DPM2": 2}))[0] == "supported"
    # the same errors at one evaluation per step: fewer steps, but not twice the cost
    assert F.judge_heun_dpm2_fewer_steps(_gt_table(orders, {"Euler": 1, "Heun": 1, "DPM2": 1}))[0] == "mixed"
    slow = {"Euler": 2.0, "Heun": 1.0, "DPM2": 1.0}
    assert F.judge_heun_dpm2_fewer_steps(_gt_table(slow, {"Euler": 1, "Heun": 1, "DPM2": 1}))[0] == "refuted"


def test_lms_degrades_verdict_follows_the_curve():
    steps = (30, 40, 60, 80)

    def table(lms_errors):
        rows = []
        for sampler, errors in (("LMS", lms_errors), ("Euler", (0.04, 0.03, 0.02, 0.015))):
            for n, e in zip(steps, errors, strict=True):
                rows.append({"ground": "ground truth", "schedule": "karras", "sampler": sampler, "steps": n,
                             "metric": "median_error", "value": e})  # fmt: skip
        return pd.DataFrame(rows)

    assert F.judge_lms_degrades(table((0.01, 0.008, 0.02, 0.03)))[0] == "supported"
    assert F.judge_lms_degrades(table((0.01, 0.008, 0.006, 0.005)))[0] == "refuted"
    assert F.judge_lms_degrades(table((0.01, 0.008, 0.0095, 0.0095)))[0] == "refuted"  # +19 %: below DEGRADE
    assert F.judge_lms_degrades(table((0.01, 0.008, 0.0095, 0.0095)), degrade=0.1)[0] == "supported"


@pytest.mark.parametrize(("previous", "verdict"), [(0.2, "supported"), (0.65, "mixed"), (1.0, "refuted")])
def test_previous_seed_verdict(previous, verdict):
    table = pd.DataFrame(
        [{"metric": "previous_seed", "value": previous}, {"metric": "same_seed", "value": 0.3},
         {"metric": "unrelated_seed", "value": 1.0}, {"metric": "unrelated_seed", "value": 1.0}]
    )  # fmt: skip
    assert F.judge_dpm2a_prev_seed(table)[0] == verdict


def test_rerun_verdict_is_refuted_when_a_rerun_differs():
    def table(anc_identical, anc_nudge):
        rows = []
        for kind, ident, nudge in (("ancestral", anc_identical, anc_nudge), ("deterministic", 1.0, 0.01)):
            rows += [{"kind": kind, "metric": "rerun_identical", "value": ident},
                     {"kind": kind, "metric": "perturbed_change", "value": nudge}]  # fmt: skip
        return pd.DataFrame(rows)

    assert F.judge_ancestral_same_on_rerun(table(1.0, 0.001))[0] == "supported"
    assert F.judge_ancestral_same_on_rerun(table(1.0, 0.01))[0] == "mixed"  # identical reruns, not more stable
    assert F.judge_ancestral_same_on_rerun(table(0.0, 0.001))[0] == "refuted"


def test_mmd_ties_are_inconclusive():
    def table(euler_a):
        return pd.DataFrame(
            [{"sampler": "Euler a", "steps": 8, "metric": "mmd", "value": euler_a, "floor_std": 0.01},
             {"sampler": "Euler", "steps": 8, "metric": "mmd", "value": 0.10, "floor_std": 0.01}]
        )  # fmt: skip

    assert F.judge_euler_a_low_steps(table(0.05))[0] == "supported"
    assert F.judge_euler_a_low_steps(table(0.095))[0] == "inconclusive"  # within 2 floor sd * sqrt(2)
    assert F.judge_euler_a_low_steps(table(0.15))[0] == "refuted"


def test_ancestral_paths_against_distribution():
    def table(path_changes, mmd_last):
        rows = []
        for sampler in ("Euler a", "DPM2 a"):
            for n, change in zip((4, 8, 16), path_changes, strict=True):
                base = {"ground": "ground truth", "sampler": sampler, "steps": n}
                base |= {"floor_mean": 0.02, "floor_std": 0.005}  # the MMD noise floor: 0.035 with its margin
                rows += [{**base, "metric": "path_change_double", "value": change},
                         {**base, "metric": "mmd", "value": mmd_last if n == 16 else 0.2}]  # fmt: skip
        return pd.DataFrame(rows)

    assert F.judge_ancestral_never_converge(table((1.0, 1.1, 1.2), 0.5))[0] == "supported"  # nothing settles
    assert F.judge_ancestral_never_converge(table((1.0, 1.1, 1.2), 0.02))[0] == "mixed"  # the distribution does
    assert F.judge_ancestral_never_converge(table((1.0, 0.3, 0.1), 0.02))[0] == "refuted"  # each path settles


# --- end to end --------------------------------------------------------------------------------------------------


def test_ground_truth_claims_run_and_their_verdicts_follow_their_tables():
    table, evidence = F.run_claims(["dpm_adaptive_ignores_steps", "stated_orders"], progress=False)
    assert list(table["claim"]) == ["dpm_adaptive_ignores_steps", "stated_orders"]
    assert set(table["verdict"]) <= set(F.VERDICTS)
    for ev in evidence.values():
        assert ev.seconds > 0 and ev.figure is not None
    assert list(table["verdict"]) == [ev.verdict for ev in evidence.values()]  # the summary says what was found
    adaptive = evidence["dpm_adaptive_ignores_steps"].table
    assert adaptive[adaptive["metric"] == "nfe"]["value"].nunique() == 1  # the step count changes nothing
    assert evidence["dpm_adaptive_ignores_steps"].verdict == "supported"
    orders = evidence["stated_orders"].table.query("metric == 'median_error'")
    for sampler, rows in orders.groupby("sampler"):  # the order each sampler shows from 16 to 32 steps
        error = rows.set_index("steps")["value"]
        shown = float(np.log2(error[16] / error[32]))
        assert abs(shown - int(rows["claimed_order"].iloc[0])) < 0.45, (sampler, shown)
    assert evidence["stated_orders"].verdict == "supported"  # Euler ~1 and the second-order samplers ~2


@pytest.fixture(scope="module")
def tiny_lab():
    from sdlab.testing import tiny_model

    return F.Lab(model=tiny_model("sd1", seed=0), seeds=[0, 1], size=(32, 32))


def test_ensd_changes_ancestral_images_only(tiny_lab, tmp_path):
    ev = F.CLAIMS["ancestral_not_reproducible_across_implementations"].run(tiny_lab)
    ident = ev.table[ev.table["metric"] == "ensd_identical"]
    assert (ident[ident["kind"] == "deterministic"]["value"] == 1).all()  # no per-step noise: bit-identical
    assert (ident[ident["kind"] == "ancestral"]["value"] == 0).all()  # another noise stream: another image
    moved = ev.table.query("metric == 'ensd_change' and kind == 'ancestral'")["value"]
    assert (moved > 0).all()  # ENSD moves every ancestral image
    assert ev.verdict == "supported"
    written = F.save_evidence(ev, tmp_path, "ensd")
    assert {p.name for p in written} == {"ensd.png", "ensd_images.png", "ensd.csv"}
    html = F.show_evidence(ev, claim=F.CLAIMS["ancestral_not_reproducible_across_implementations"], return_html=True)
    assert ev.verdict.upper() in html and "data:image/png;base64" in html


def test_lab_caches_runs_per_seed(tiny_lab):
    a = tiny_lab.run("Euler", 3, seeds=[0])
    b = tiny_lab.run("Euler", 3, seeds=[0, 1])  # seed 0 reused, seed 1 made
    assert torch.equal(a.latent(0), b.latent(0))
    again = tiny_lab.run("Euler", 3, seeds=[1], fresh=True)
    assert torch.equal(again.latent(1), b.latent(1))  # a rerun is bit-identical
    assert np.isfinite(b.seconds) and b.nfe == 3
