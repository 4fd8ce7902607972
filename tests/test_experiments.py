"""Experiments at tiny sizes: convergence on the embedded model; stability, ancestral divergence, predictability
and cost on a tiny random-weight model (plumbing); the power-law fit and steps-to-converge on synthetic data; the
cached run-maker (sdlab.measure.runs)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import sdlab
import sdlab.experiments as X
import sdlab.measure.metrics as M
from sdlab import SdlabError
from sdlab.measure.runs import RunCache, Runner, run_key
from sdlab.spec import RunSpec

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def conv():
    return X.convergence(
        ["Euler", "DPM++ 2M"],
        steps=(3, 6, 12),
        seeds=[0],
        reference={"sampler": "DPM++ 2M", "schedule": "Karras", "steps": 24},
        step_image_metrics=("ssim",),
    )


def _unflatten(row: pd.Series) -> RunSpec:
    d = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    d["sampler_options"] = {k.split(".", 1)[1]: v for k, v in d.items() if k.startswith("sampler_options.")}
    d["versions"] = {k.split(".", 1)[1]: v for k, v in d.items() if k.startswith("versions.")}
    return RunSpec.from_dict(d)


def test_convergence_rows_carry_their_full_spec(conv):
    table = conv.table
    assert {"experiment", "sampler", "schedule", "steps", "seed", "cfg", "step", "sigma", "metric", "value"} <= set(
        table.columns
    )
    assert {"nfe", "seconds", "spec_key"} <= set(table.columns)
    for _, row in table.drop_duplicates("spec_key").iterrows():
        assert _unflatten(row).key() == row["spec_key"]  # the row's columns rebuild its exact spec
    final = table[table["step"] == -1]
    assert set(final["image"]) <= set(conv.images)
    if X.lpips_unavailable():
        assert any(n.startswith("LPIPS unavailable") for n in conv.notes)
        assert "lpips" not in set(table["metric"])


def test_without_lpips_its_offline_stand_in_is_reported_under_its_own_name(monkeypatch):
    import sdlab.measure.common as common
    import sdlab.measure.metrics as metrics

    for module in (common, metrics):
        monkeypatch.setattr(module, "lpips_unavailable", lambda: "no ImageNet backbone here (test)")
    stand_in = metrics.default_perceptual()
    assert stand_in in metrics.PERCEPTUAL_FALLBACKS
    run = X.convergence(["Euler"], steps=(3, 6), seeds=[0], reference={"sampler": "Euler", "steps": 12})
    assert stand_in in set(run.table["metric"]) and "lpips" not in set(run.table["metric"])
    assert any("LPIPS unavailable" in n and stand_in in n for n in run.notes)
    reached = run.table.query("metric == @stand_in and comparison == 'reference'").sort_values("steps")["value"]
    assert reached.notna().all() and len(reached) == 2


def test_deterministic_samplers_approach_the_reference(conv):
    ref = conv.table.query("comparison == 'reference' and metric == 'latent_rmse'")
    for sampler, rows in ref.groupby("sampler"):
        curve = rows.sort_values("steps")["value"].to_numpy()
        assert (np.diff(curve) < 0).all(), (sampler, curve)
    fits = conv.summary.query("metric == 'latent_rmse'").set_index("sampler")
    assert (fits["b"] < 0).all()
    assert {"b_low", "b_high", "steps_to_converge"} <= set(conv.summary.columns)


def test_per_step_deltas(conv):
    table = conv.table
    one = table[(table["sampler"] == "Euler") & (table["steps"] == 6)]
    nxt = one.query("comparison == 'next' and metric == 'latent_rmse'")
    fin = one.query("comparison == 'final' and metric == 'latent_rmse'").sort_values("step")
    assert sorted(nxt["step"]) == [0, 1, 2, 3, 4]
    assert sorted(fin["step"]) == [0, 1, 2, 3, 4, 5]
    assert fin["value"].iloc[-1] < 1e-5  # the last prediction is the final latent (Euler ends at sigma 0)
    assert fin["sigma"].is_monotonic_decreasing
    assert set(one.query("comparison == 'next'")["metric"]) == {"latent_rmse", "ssim"}  # decoded per-step SSIM


def test_step_deltas_match_direct_metrics():
    res = sdlab.generate(X.DEFAULT_PROMPT, sampler="Euler", steps=4, cfg=5, seeds=[1], trajectory=True)
    rows = pd.DataFrame(X.step_deltas(res.trajectories[0], res.latents[0]))
    den = res.trajectories[0].latents()
    want = M.latent_rmse(den[:-1], den[1:])
    got = rows.query("comparison == 'next'").sort_values("step")["value"].to_numpy()
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


def test_batched_decode_matches_model_decode():
    sd = sdlab.generation.load(None)
    lat = torch.randn(5, *sd.latent_shape(64, 64), generator=torch.Generator().manual_seed(0))
    assert (X.decode_latents(sd, lat, batch_size=3) - sd.decode(lat)).abs().max() < 1e-4


def test_fit_power_law_recovers_a_known_exponent():
    rng = np.random.default_rng(0)
    rows = []
    for sampler, b in (("A", -0.8), ("B", -1.6)):
        for steps in (5, 8, 12, 20, 32, 50):
            for seed in range(4):
                value = 3.0 * steps**b * math.exp(rng.normal(0, 0.05))
                rows.append(
                    {"comparison": "reference", "step": -1, "metric": "latent_rmse", "sampler": sampler,
                     "schedule_resolved": "karras", "steps": steps, "seed": seed, "value": value}
                )  # fmt: skip
    fit = X.fit_power_law(pd.DataFrame(rows), confidence=0.999).set_index("sampler")
    for sampler, b in (("A", -0.8), ("B", -1.6)):
        assert fit.loc[sampler, "b_low"] < b < fit.loc[sampler, "b_high"]
        assert fit.loc[sampler, "b_high"] - fit.loc[sampler, "b_low"] < 0.1
        assert abs(fit.loc[sampler, "b"] - b) < 0.05


def test_gaessler_fit_recovers_a_known_exponent():
    x_ref, rows = 200, []
    for steps in (5, 8, 12, 20, 32, 50, 80):
        value = 2.0 * (steps**-1.2 - x_ref**-1.2)
        rows.append(
            {"comparison": "reference", "step": -1, "metric": "latent_rmse", "sampler": "A",
             "schedule_resolved": "karras", "steps": steps, "seed": 0, "value": value, "reference_steps": x_ref}
        )  # fmt: skip
    fit = X.fit_power_law(pd.DataFrame(rows), method="gaessler").iloc[0]
    assert fit["b"] == pytest.approx(-1.2, abs=1e-3)
    with pytest.raises(SdlabError, match="similarity"):
        X.fit_power_law(pd.DataFrame(rows), metric="ssim")


def test_steps_to_converge_needs_the_distance_to_stay_below():
    values = {5: 0.2, 10: 0.04, 20: 0.06, 40: 0.03, 80: 0.02}  # dips below at 10, back above at 20
    rows = [
        {"comparison": "reference", "step": -1, "metric": "latent_rmse", "sampler": "A",
         "schedule_resolved": "karras", "steps": s, "seed": 0, "value": v}
        for s, v in values.items()
    ]  # fmt: skip
    out = X.steps_to_converge(pd.DataFrame(rows), 0.05).iloc[0]
    assert out["steps_to_converge"] == 40
    never = X.steps_to_converge(pd.DataFrame(rows), 0.01).iloc[0]
    assert math.isnan(never["steps_to_converge"])


def test_stability_reruns_are_identical_and_variants_are_measured(tiny):
    res = X.stability(
        model=tiny, size=(64, 64), steps=3, reruns=2, batch_sizes=(1, 3), rng_sources=("GPU", "NV"),
        dtypes=("float32", "bfloat16"), perturbation=1e-3,
    )  # fmt: skip
    t = res.table.pivot_table("value", ["comparison", "variant"], "metric")
    assert (t.loc["rerun", "identical"] == 1).all() and (t.loc["rerun", "max_abs"] == 0).all()
    batch = t.loc["batch"]
    assert list(batch.index) == ["batch_size=3 position=0", "batch_size=3 position=2"]
    assert (batch["max_abs"] < 1e-4).all()  # per-image noise: only batched-kernel rounding differs
    assert t.loc[("rng_source", "rng=NV"), "identical"] == 0
    assert t.loc[("rng_source", "rng=NV"), "latent_rmse"] > 100 * t.loc[("perturbation",)]["latent_rmse"].iloc[0]
    assert t.loc[("perturbation",)]["latent_rmse"].iloc[0] > 0
    assert "dtype" in t.index.get_level_values(0) or any("bfloat16 skipped" in n for n in res.notes)


def test_ancestral_divergence_eta_zero_is_the_deterministic_twin(tiny):
    res = X.ancestral_divergence(
        pairs=[("Euler a", "Euler")], steps=(3,), eta=(0.0, 1.0), model=tiny, size=(64, 64), seeds=[0],
        metrics=("latent_rmse",),
    )  # fmt: skip
    eta = res.table.query("comparison == 'eta'").set_index("eta")["value"]
    assert eta[0.0] == 0.0  # eta 0: no noise, exactly Euler's steps
    assert eta[1.0] > 0
    vs = res.table.query("comparison == 'vs_deterministic'")["value"]
    assert (vs == eta[1.0]).all()  # A1111's default eta is 1
    steps = res.table.query("comparison == 'n_to_n+1'")
    assert set(steps["sampler"]) == {"Euler a", "Euler"} and set(steps["against"]) == {
        "Euler a at 4 steps",
        "Euler at 4 steps",
    }
    # every image compared is kept under its own name: each eta, and the N+1-step runs
    assert set(res.table["image"]) | set(res.table["against_image"]) <= set(res.images)
    etas = res.table.query("comparison == 'eta'")["image"]
    assert etas.nunique() == 2 and any("eta=0.0" in n for n in etas) and any("eta=1.0" in n for n in etas)
    assert any("steps=4" in n for n in steps["against_image"])


def test_predictability_reports_the_largest_jump(tiny):
    res = X.predictability(
        "Euler", cfgs=(2, 5, 9), steps=(2, 3, 5), at_steps=3, model=tiny, size=(64, 64), seeds=[0],
        metrics=("latent_rmse",),
    )  # fmt: skip
    cfg = res.table.query("comparison == 'cfg'")
    assert sorted(zip(cfg["setting_from"], cfg["setting_to"], strict=True)) == [(2.0, 5.0), (5.0, 9.0)]
    row = res.summary.query("sweep == 'cfg'").iloc[0]
    assert row["largest_jump"] == cfg["value"].max()
    assert (row["from"], row["to"]) == tuple(cfg.loc[cfg["value"].idxmax(), ["setting_from", "setting_to"]])
    assert [n.split("/")[3] for n in cfg.sort_values("setting_from")["against_image"]] == ["cfg=5", "cfg=9"]
    assert set(res.table["against_image"]) <= set(res.images)


def test_cost_counts_model_evaluations(tiny):
    res = X.cost(["Euler", "Heun", "DPM++ 2M"], steps=(3, 5), model=tiny, size=(64, 64))
    nfe = res.table.query("metric == 'nfe'").set_index(["sampler", "steps"])["value"]
    for n in (3, 5):
        assert nfe["Euler", n] == n and nfe["DPM++ 2M", n] == n
        assert nfe["Heun", n] == 2 * n - 1  # EDM (Karras et al. 2022): the last Heun step is an Euler step
    assert (res.table.query("metric == 'seconds_per_image'")["value"] > 0).all()


def test_bad_experiment_input():
    with pytest.raises(SdlabError, match="unknown metric"):
        X.resolve_metrics(["fid"], [])
    with pytest.raises(SdlabError, match="unknown reference key"):
        X.Reference.coerce({"sampler": "Euler", "stps": 10})
    with pytest.raises(SdlabError, match="steps"):
        X.convergence(["Euler"], steps=(0,))


def test_run_settings_are_told_apart_from_sampler_options():
    settings, options = X.RunSettings.split({"model": "m", "size": (64, 64), "progress": True, "eta": 0.5})
    assert (settings.model, settings.size, settings.rng, settings.progress) == ("m", (64, 64), "GPU", True)
    assert options == {"eta": 0.5}
    with pytest.raises(SdlabError, match="unknown setting 'sise'"):
        X.ancestral_divergence(sise=(64, 64))  # takes no sampler options: a misspelt setting is an error


def test_experiments_gathers_the_measure_families():
    from sdlab.measure import common, convergence, divergence, stability

    assert X.convergence is convergence.convergence and X.stability is stability.stability
    assert X.ancestral_divergence is divergence.ancestral_divergence and X.Reference is common.Reference
    assert set(X.__all__) <= set(dir(X))
    from sdlab.experiments import _distances  # the old private name sdlab.sweep imports

    assert _distances is X.distances


def test_run_cache_keeps_the_most_recently_used():
    cache = RunCache(2)
    for key in ("a", "b", "a", "c"):
        cache.get_or_make(key, key.upper)
    assert "b" not in cache and cache.get("a") == "A" and len(cache) == 2
    assert cache.get("b", "none") == "none"
    cache.put("d", "D")  # "c" is now the least recently used
    assert "c" not in cache and "a" in cache
    with pytest.raises(SdlabError, match="size"):
        RunCache(0)
    assert run_key("Euler", "Karras", 10, seeds=[0], cfg=5.0) != run_key("Euler", "Karras", 10, seeds=[0], cfg=6.0)
    assert run_key("Euler", "Karras", 10, a=1, b=2) == run_key("Euler", "Karras", 10, b=2, a=1)


def test_runner_makes_each_run_once(tiny):
    with Runner(prompt=X.DEFAULT_PROMPT, seeds=[0], model=tiny, size=(64, 64)) as runner:
        plain = runner("Euler", "Automatic", 2)
        assert runner("Euler", "Automatic", 2) is plain
        assert runner("Euler", "Automatic", 2, cfg=6.0) is not plain
        assert runner("Euler", "Automatic", 2, fresh=True) is not plain
        traj = runner("Euler", "Automatic", 2, trajectory=True)
        assert traj is not plain and len(traj.trajectories[0]) == 2
        assert runner("Euler", "Automatic", 2) is traj  # a run with its trajectory serves one without
        assert torch.equal(traj.latents, plain.latents)
        a = runner.per_seed("Euler", "Automatic", 2, seeds=[1])
        both = runner.per_seed("Euler", "Uniform", 2, seeds=[0, 1])  # Euler's "Automatic" here: seed 1 kept
        assert [s.seed for s in both.specs] == [0, 1] and torch.equal(both.latents[1:], a.latents)
        assert both.specs[1] is a.specs[0] and len(runner.cache) == 5  # fresh runs are not kept
    with pytest.raises(SdlabError, match="seeds"):
        Runner(prompt="x", seeds=[], model=tiny)
