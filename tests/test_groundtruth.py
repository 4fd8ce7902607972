"""Ground truth: exact denoisers, the true PF-ODE solution, error/order experiments and MMD (all CPU, small)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sdlab import groundtruth as gt
from sdlab.errors import SdlabError
from sdlab.generation import schedule_for

F64 = torch.float64


# tiny tensors: with a busy second core, OpenMP's thread syncs cost ~10 ms per op
pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_posterior_mean_matches_importance_weighted_monte_carlo() -> None:
    # E[x0 | x] = int x0 p(x0) N(x; x0, sigma^2) / int p(x0) N(x; x0, sigma^2): estimate with x0 ~ p
    gmm = gt.toy_mixture()
    x0 = gmm.sample(200_000, _gen(0))
    sigma = 0.4
    queries = torch.tensor([[0.0, 0.0], [-1.0, 1.0], [1.2, -0.5], [2.0, 2.0]], dtype=F64)
    exact = gmm(queries, torch.full((4,), sigma, dtype=F64))
    for q, d in zip(queries, exact, strict=True):
        logw = -((x0 - q) ** 2).sum(1) / (2 * sigma**2)
        w = torch.softmax(logw, 0)
        est = (w[:, None] * x0).sum(0)
        se = ((w[:, None] ** 2) * (x0 - est) ** 2).sum(0).sqrt()  # delta-method standard error
        assert ((est - d).abs() <= 5 * se + 1e-12).all(), (q, est, d, se)
        assert (se < 0.02).all()  # the check has teeth: the estimate is precise


def test_gmm_with_vanishing_stds_is_the_ideal_denoiser() -> None:
    data = torch.randn(20, 3, generator=_gen(1), dtype=F64)
    ideal = gt.IdealDenoiser(data)
    gmm = gt.GaussianMixture(data, torch.full((20,), 1e-7, dtype=F64))
    x = 2 * torch.randn(16, 3, generator=_gen(2), dtype=F64)
    for sigma in (0.05, 0.5, 5.0):
        s = torch.full((16,), sigma, dtype=F64)
        torch.testing.assert_close(gmm(x, s), ideal(x, s), atol=1e-9, rtol=0)
        torch.testing.assert_close(gmm.log_density(x, sigma), ideal.log_density(x, sigma), atol=1e-6, rtol=0)
    # ideal denoiser: softmax over -|x - y_i|^2 / (2 sigma^2), written out
    s = 0.7
    w = torch.softmax(-(torch.cdist(x, data) ** 2) / (2 * s**2), dim=1)
    torch.testing.assert_close(ideal(x, torch.full((16,), s, dtype=F64)), w @ data, atol=1e-12, rtol=0)


def test_score_is_the_gradient_of_log_density_and_tweedie_holds() -> None:
    gmm = gt.toy_mixture()
    x = torch.randn(8, 2, generator=_gen(3), dtype=F64).requires_grad_(True)
    for sigma in (0.0, 0.3, 2.0):
        (grad,) = torch.autograd.grad(gmm.log_density(x, sigma).sum(), x)
        score = gmm.score(x.detach(), sigma)
        torch.testing.assert_close(score, grad, atol=1e-9, rtol=1e-9)
        if sigma > 0:  # D = x + sigma^2 * score (Tweedie)
            d = gmm(x.detach(), torch.full((8,), sigma, dtype=F64))
            torch.testing.assert_close(d, x.detach() + sigma**2 * score, atol=1e-12, rtol=1e-12)


def test_denoiser_interface_shapes_dtypes_and_nfe() -> None:
    gmm = gt.toy_mixture()
    assert gmm.sigmas.shape == (1000,) and gmm.sigma_min == pytest.approx(0.0291672, rel=1e-5)
    x = torch.randn(5, 1, 2, generator=_gen(4))
    gmm.nfe = 0
    out = gmm(x, torch.full((5,), 1.0))
    assert out.shape == x.shape and out.dtype == torch.float32 and gmm.nfe == 1
    torch.testing.assert_close(out.double(), gmm(x.double(), torch.tensor(1.0, dtype=F64)), atol=1e-5, rtol=0)
    mixed = gmm(x.double(), torch.tensor([0.1, 0.1, 2.0, 2.0, 0.5], dtype=F64))  # per-item sigmas
    torch.testing.assert_close(mixed[2], gmm(x[2:3].double(), torch.tensor(2.0, dtype=F64))[0])
    with pytest.raises(SdlabError):
        gt.GaussianMixture([[0.0, 0.0]], [0.0])
    with pytest.raises(SdlabError):
        gt.IdealDenoiser(torch.zeros(3, 2)).log_density(torch.zeros(1, 2), 0.0)
    with pytest.raises(SdlabError):
        gmm(torch.zeros(2, 3), torch.ones(2))


def test_true_solution_matches_the_closed_form_for_one_gaussian() -> None:
    # N(mu, diag(s^2)): x(sigma) = mu + (x_T - mu) * sqrt((s^2 + sigma^2) / (s^2 + sigma_T^2)), exactly
    mu, s = torch.tensor([0.3, -0.2], dtype=F64), torch.tensor([0.5, 0.2], dtype=F64)
    one = gt.GaussianMixture(mu[None], s[None])
    x = 14.6 * torch.randn(6, 2, generator=_gen(5), dtype=F64)
    for end in (0.03, 0.0):
        sol = gt.true_solution(one, x, 14.6, end)
        exact = mu + (x - mu) * torch.sqrt((s**2 + end**2) / (s**2 + 14.6**2))
        assert sol.error_estimate < 1e-8
        assert float((sol.x_end - exact).abs().max()) < 1e-9


def test_true_solution_reports_a_small_error_on_the_mixture() -> None:
    gmm = gt.toy_mixture()
    x = gmm.sigma_max * torch.randn(8, 2, generator=_gen(6), dtype=F64)
    gmm.nfe = 0
    sol = gt.true_solution(gmm, x, gmm.sigma_max, gmm.sigma_min)
    assert sol.error_estimate < 1e-8 and sol.nfe > 100 and gmm.nfe == 0  # the reference does not count
    path, err = gt.true_path(gmm, x, torch.tensor([gmm.sigma_max, 1.0, 0.1, gmm.sigma_min], dtype=F64))
    assert path.shape == (4, 8, 2) and err < 1e-8
    torch.testing.assert_close(path[-1], sol.x_end, atol=1e-8, rtol=0)


def test_sampler_error_falls_with_steps_at_its_order() -> None:
    gmm = gt.toy_mixture()
    df = gt.error_vs_steps(["Euler", "Heun"], steps=(8, 16, 32), dist=gmm, n=16)
    med = df[df.metric == "median_error"].pivot_table(index="sampler", columns="steps", values="value")
    for sampler in ("Euler", "Heun"):
        assert med.loc[sampler, 8] > med.loc[sampler, 16] > med.loc[sampler, 32]
    assert 1.6 < med.loc["Euler", 16] / med.loc["Euler", 32] < 2.5  # first order: halves
    assert med.loc["Heun", 16] / med.loc["Heun", 32] > 3.2  # second order: about quarters
    nfe = df[(df.metric == "rms_error") & (df.steps == 16)].set_index("sampler")["nfe"]
    assert nfe["Euler"] == 16 and nfe["Heun"] == 32  # stops at sigma_min: Heun's last step is a full Heun step


def test_timestep_samplers_run_on_their_own_grid() -> None:
    gmm = gt.toy_mixture()
    noise = torch.randn(4, 2, generator=_gen(7), dtype=F64)
    run = gt.run_sampler("DDIM", gmm, noise, steps=10)
    sigmas, _ = schedule_for("DDIM", "Automatic", 10, gmm)
    assert run.schedule == "ddim timesteps" and run.sigma_end == pytest.approx(float(gmm.sigmas[1]))
    assert run.sigma_start == pytest.approx(float(sigmas[0])) and run.nfe == len(sigmas) - 1
    torch.testing.assert_close(run.x_start, noise * math.sqrt(1 + run.sigma_start**2))
    with pytest.raises(SdlabError):
        gt.run_sampler("Restart", gmm, noise, steps=10)  # always re-noises: no ODE form


def test_claimed_order_and_schedule_rule_read_the_resolved_sampler() -> None:
    assert (gt.claimed_order("Euler"), gt.claimed_order("heunpp2")) == ("1", "2-3")  # the catalogue's order range
    assert gt.claimed_order("diffusers:EulerDiscreteScheduler") == "?"  # unknown order
    for name in ("DDIM", "DPM fast", "DPM++ 2M Karras"):  # own timesteps, model's range, a name with its schedule
        assert gt.ignores_schedule(name), name
    assert not gt.ignores_schedule("Euler") and not gt.ignores_schedule("dpmpp_2m")


def test_fit_order_recovers_synthetic_power_laws() -> None:
    rng = np.random.default_rng(0)
    steps = np.array([8, 12, 16, 24, 32, 48, 64], dtype=float)
    rows = []
    for name, p, c in (("first", 1, 3.0), ("second", 2, 5.0)):
        for k in steps:
            noisy = c * k**-p * math.exp(0.01 * rng.standard_normal())
            rows.append({"sampler": name, "schedule": "karras", "steps": k, "nfe": 2 * k, "metric": "rms_error",
                         "value": noisy, "truth_error": 1e-12})  # fmt: skip
    fits = gt.fit_order(pd.DataFrame(rows), steps_range=None)
    for name, p in (("first", 1), ("second", 2)):
        for x in ("steps", "nfe"):
            row = fits[(fits.sampler == name) & (fits.x == x)].iloc[0]
            assert abs(row.order - p) < 0.03 and row.ci_low < p < row.ci_high
            assert row.r2 > 0.999 and row.n_points == len(steps)
    flat = pd.DataFrame({"sampler": "fixed", "steps": steps, "nfe": 39, "metric": "rms_error", "value": 0.07})
    assert fits.columns.isin(["order"]).any() and np.isnan(gt.fit_order(flat, steps_range=None).order).all()


def test_mmd_is_zero_on_itself_and_grows_with_a_shift() -> None:
    x = torch.randn(300, 2, generator=_gen(8), dtype=F64)
    assert gt.mmd(x, x) == 0.0
    values = [gt.mmd(x + torch.tensor([d, 0.0], dtype=F64), x) for d in (0.1, 0.5, 1.0, 2.0)]
    assert 0 < values[0] < values[1] < values[2] < values[3]
    y = torch.randn(300, 2, generator=_gen(9), dtype=F64)  # same distribution: near the noise floor
    assert gt.mmd(y, x) < values[1]


def test_distribution_experiment_reports_mmd_floor_and_path_change() -> None:
    gmm = gt.toy_mixture()
    df = gt.distribution_vs_steps(["Euler a", "DPM++ 2M"], steps=(4, 16), dist=gmm, n=300, repeats=3)
    assert set(df.metric) == {"mmd", "path_change_plus_one", "path_change_double"}
    assert (df.floor_mean > 0).all() and (df.value >= 0).all()
    change = df[df.metric == "path_change_double"].set_index(["sampler", "steps"])["value"]
    assert change["DPM++ 2M", 16] < 0.1 * change["Euler a", 16]  # a deterministic path settles, an ancestral not


def test_ideal_denoiser_from_scenes() -> None:
    ideal = gt.IdealDenoiser.from_scenes(n=12, size=8)
    assert ideal.dim == 192 and ideal.shape == (3, 8, 8)
    assert float(ideal.data.min()) >= -1 and float(ideal.data.max()) <= 1
    x = ideal.data[:3] + 0.01 * torch.randn(3, 192, generator=_gen(10), dtype=F64)
    torch.testing.assert_close(ideal(x, torch.full((3,), 0.01, dtype=F64)), ideal.data[:3])  # collapsed
