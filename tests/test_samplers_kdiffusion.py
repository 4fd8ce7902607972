"""The k-diffusion samplers on analytic denoisers: convergence order, exact identities, noise, batches, callbacks.

The data are N(MU, S^2) per element, whose exact denoiser is the posterior mean
D(x, sigma) = (S^2 x + sigma^2 MU) / (S^2 + sigma^2); its probability-flow ODE keeps
(x - MU) / sqrt(S^2 + sigma^2) constant, so every deterministic sampler has an exact answer to converge to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.noise.brownian import BrownianTreeNoiseSampler
from sdlab.samplers.kdiffusion import SAMPLERS, lms_coefficients

MU, S = 0.3, 0.6
F64 = torch.float64


def gaussian_denoiser(x: Tensor, sigma: Tensor) -> Tensor:
    s = sigma.view(-1, *[1] * (x.ndim - 1))
    return (S**2 * x + s**2 * MU) / (S**2 + s**2)


def bent_denoiser(x: Tensor, sigma: Tensor) -> Tensor:
    """Nonlinear but elementwise, so batch items stay independent."""
    s = sigma.view(-1, *[1] * (x.ndim - 1))
    return gaussian_denoiser(x, sigma) + 0.1 * torch.tanh(x) * s / (1 + s**2)


class Counted:
    """Wraps a denoiser and counts its calls."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.calls += 1
        return self.fn(x, sigma)


def exact_ode(x0: Tensor, sigma0: float, sigma1: float) -> Tensor:
    return MU + (x0 - MU) * math.sqrt(S**2 + sigma1**2) / math.sqrt(S**2 + sigma0**2)


def log_uniform(n: int, hi: float = 10.0, lo: float = 0.1) -> Tensor:
    """n steps from hi to lo, uniform in log sigma, no final 0 (so the error is all discretisation)."""
    return torch.linspace(math.log(hi), math.log(lo), n + 1, dtype=F64).exp()


def karras(n: int, lo: float = 0.02, hi: float = 10.0, rho: float = 7.0) -> Tensor:
    ramp = torch.linspace(0, 1, n, dtype=F64)
    sigmas = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return torch.cat([sigmas, torch.zeros(1, dtype=F64)])


def seeded_noise(x: Tensor, seed: int) -> Callable[[Any, Any], Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(x.shape, generator=generator, dtype=x.dtype)


def per_item_noise(x: Tensor, seeds: list[int]) -> Callable[[Any, Any], Tensor]:
    """Each batch item draws from its own generator, so its noise does not depend on the others."""
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    shape = (1, *x.shape[1:])
    return lambda sigma, sigma_next: torch.cat([torch.randn(shape, generator=g, dtype=x.dtype) for g in generators])


ALL = sorted(SAMPLERS)
SDE = ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"]  # Brownian-tree noise by default

# sampler, options that make it deterministic, expected order band (in steps; loose), steps (coarse, fine)
CONVERGENCE = [
    ("euler", {}, (0.85, 1.2), (16, 64)),
    ("euler_ancestral", {"eta": 0.0}, (0.85, 1.2), (16, 64)),
    ("heun", {}, (1.8, 2.4), (16, 64)),
    ("dpm_2", {}, (1.8, 2.4), (16, 64)),
    ("dpm_2_ancestral", {"eta": 0.0}, (1.8, 2.4), (16, 64)),
    ("dpmpp_2s_ancestral", {"eta": 0.0}, (1.8, 2.4), (16, 64)),
    ("dpmpp_sde", {"eta": 0.0}, (1.8, 2.4), (16, 64)),
    ("dpmpp_2m", {}, (1.7, 2.4), (16, 64)),
    ("dpmpp_2m_sde", {"eta": 0.0}, (1.7, 2.4), (16, 64)),
    ("dpmpp_2m_sde", {"eta": 0.0, "solver_type": "heun"}, (1.7, 2.4), (16, 64)),
    # multistep order 3 and 4, capped near 2 by their 1st-order starting step: loose bands
    ("dpmpp_3m_sde", {"eta": 0.0}, (1.9, 3.5), (16, 64)),
    ("lms", {}, (2.5, 4.5), (16, 64)),
    # n = 3k + 2 evaluations: order-3 steps and a final order-2 step, step count m = n // 3 + 1
    ("dpm_fast", {}, (2.7, 3.8), (11, 47)),
]


def test_samplers_are_the_13_kdiffusion_functions() -> None:
    assert set(SAMPLERS) == {
        "euler",
        "euler_ancestral",
        "heun",
        "dpm_2",
        "dpm_2_ancestral",
        "lms",
        "dpm_fast",
        "dpm_adaptive",
        "dpmpp_2s_ancestral",
        "dpmpp_sde",
        "dpmpp_2m",
        "dpmpp_2m_sde",
        "dpmpp_3m_sde",
    }


@pytest.mark.parametrize(
    ("name", "options", "band", "steps"), CONVERGENCE, ids=[f"{c[0]}{c[1] or ''}" for c in CONVERGENCE]
)
def test_deterministic_samplers_converge_to_the_exact_ode_solution_with_their_order(
    name: str, options: dict[str, Any], band: tuple[float, float], steps: tuple[int, int]
) -> None:
    x0 = torch.linspace(-20, 20, 5, dtype=F64).view(5, 1)
    exact = exact_ode(x0, 10.0, 0.1)
    quiet = {"noise_sampler": lambda sigma, sigma_next: torch.zeros_like(x0)}  # eta=0: noise is drawn, unused
    errors = [
        (SAMPLERS[name](gaussian_denoiser, x0, log_uniform(n), **quiet, **options) - exact).abs().max() for n in steps
    ]
    order = math.log(errors[0] / errors[1]) / math.log(steps[1] / steps[0])
    assert errors[1] < 0.02 * exact.abs().max()  # converged, not merely converging
    assert band[0] < order < band[1], f"{name}: observed order {order:.2f}"


def test_dpm_adaptive_meets_its_tolerance_and_reports_every_evaluation() -> None:
    x0 = torch.linspace(-20, 20, 5, dtype=F64).view(5, 1)
    exact = exact_ode(x0, 10.0, 0.1)
    errors, nfes = [], []
    for tolerances in ({}, {"rtol": 1e-3, "atol": 1e-5}):
        model, records = Counted(gaussian_denoiser), []
        x, info = SAMPLERS["dpm_adaptive"](
            model, x0, log_uniform(3), callback=records.append, return_info=True, **tolerances
        )
        errors.append(float((x - exact).abs().max()))
        nfes.append(info["nfe"])
        assert info["nfe"] == model.calls == 3 * info["steps"] == records[-1]["nfe"]
        assert info["n_accept"] + info["n_reject"] == info["steps"] == len(records)
    assert errors[0] < 0.05 * float(exact.abs().max())
    assert errors[1] < errors[0] / 3 and nfes[1] > nfes[0]


def test_dpm_adaptive_ignores_the_step_count() -> None:
    x0 = torch.linspace(-20, 20, 5, dtype=F64).view(5, 1)
    few = SAMPLERS["dpm_adaptive"](gaussian_denoiser, x0, log_uniform(2))
    many = SAMPLERS["dpm_adaptive"](gaussian_denoiser, x0, log_uniform(50))
    assert torch.equal(few, many)


def test_dpm_solvers_derive_their_endpoints_from_sigmas() -> None:
    x0 = torch.linspace(-20, 20, 5, dtype=F64).view(5, 1)
    sigmas = torch.tensor([10.0, 5.0, 1.0, 0.1, 0.0], dtype=F64)
    # taken from sigmas, the endpoints are 0-d tensors of their dtype (as ComfyUI hands them to k-diffusion)
    explicit = {"sigma_min": torch.tensor(0.1, dtype=F64), "sigma_max": torch.tensor(10.0, dtype=F64)}
    other = torch.tensor([3.0, 2.0], dtype=F64)
    derived = SAMPLERS["dpm_fast"](gaussian_denoiser, x0, sigmas)
    assert torch.equal(derived, SAMPLERS["dpm_fast"](gaussian_denoiser, x0, other, n=4, **explicit))
    derived = SAMPLERS["dpm_adaptive"](gaussian_denoiser, x0, sigmas)
    assert torch.equal(derived, SAMPLERS["dpm_adaptive"](gaussian_denoiser, x0, other, **explicit))


def test_dpm_adaptive_keeps_the_dtype_of_endpoints_taken_from_float64_sigmas() -> None:
    """k-diffusion computes DPM-Solver's times in the endpoints' dtype: ComfyUI's float64 sigmas give float64
    times, while Python-float endpoints (A1111 passes the model's range so) give torch's default float32."""
    x0 = torch.linspace(-20, 20, 5, dtype=F64).view(5, 1)
    sigmas = torch.tensor([10.0, 5.0, 1.0, 0.1, 0.0], dtype=F64)
    calls: list[tuple[Tensor, Tensor]] = []

    def noise(sigma: Tensor, sigma_next: Tensor) -> Tensor:
        calls.append((sigma, sigma_next))
        return torch.zeros_like(x0)

    SAMPLERS["dpm_adaptive"](gaussian_denoiser, x0, sigmas, eta=1.0, noise_sampler=noise)
    assert calls and all(a.dtype == b.dtype == F64 for a, b in calls)
    assert math.isclose(float(calls[0][0]), 10.0, rel_tol=1e-14)  # starts at sigmas[0] ...
    assert math.isclose(float(calls[-1][1]), 0.1, rel_tol=1e-14)  # ... and ends at the smallest positive sigma
    calls.clear()
    SAMPLERS["dpm_adaptive"](gaussian_denoiser, x0, sigmas, eta=1.0, noise_sampler=noise, sigma_min=0.1, sigma_max=10.0)
    assert calls and all(a.dtype == b.dtype == torch.float32 for a, b in calls)


def test_dpm_fast_with_eta_stays_finite_on_float64_endpoints() -> None:
    """dpm_fast's grid is float32 (as in k-diffusion) and a float64 t_end may round below its last time:
    k-diffusion's noise radicand then goes negative (NaN); sdlab clamps it, adding no noise on that step."""
    x = torch.randn(64, 1, generator=torch.Generator().manual_seed(0), dtype=F64) * 10
    out = SAMPLERS["dpm_fast"](gaussian_denoiser, x, karras(30), eta=1.0, noise_sampler=seeded_noise(x, 1))
    assert torch.isfinite(out).all()


def test_euler_ancestral_with_eta_0_is_euler() -> None:
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0), dtype=F64) * 10
    euler = SAMPLERS["euler"](bent_denoiser, x, karras(10))
    assert torch.equal(SAMPLERS["euler_ancestral"](bent_denoiser, x, karras(10), eta=0.0), euler)


def test_dpm_2_ancestral_with_eta_0_is_dpm_2() -> None:
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0), dtype=F64) * 10
    dpm_2 = SAMPLERS["dpm_2"](bent_denoiser, x, karras(10))
    assert torch.equal(SAMPLERS["dpm_2_ancestral"](bent_denoiser, x, karras(10), eta=0.0), dpm_2)


def test_deterministic_limits_of_the_dpmpp_sde_samplers() -> None:
    """eta=0 turns DPM++ 2M SDE (midpoint) into DPM++ 2M and DPM++ SDE into DPM++ 2S, algebraically."""
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0), dtype=F64) * 10
    sigmas = karras(10)
    two_m = SAMPLERS["dpmpp_2m"](bent_denoiser, x, sigmas)
    assert torch.allclose(SAMPLERS["dpmpp_2m_sde"](bent_denoiser, x, sigmas, eta=0.0), two_m, rtol=1e-12, atol=1e-12)
    two_s = SAMPLERS["dpmpp_2s_ancestral"](bent_denoiser, x, sigmas, eta=0.0)
    assert torch.allclose(SAMPLERS["dpmpp_sde"](bent_denoiser, x, sigmas, eta=0.0), two_s, rtol=1e-12, atol=1e-12)


STOCHASTIC = [
    ("euler_ancestral", {}, 0.15),  # 1st order: visibly biased at 30 steps
    ("euler", {"s_churn": 10.0}, 0.15),
    ("dpm_2_ancestral", {}, 0.05),
    ("dpmpp_2s_ancestral", {}, 0.05),
    ("heun", {"s_churn": 10.0}, 0.05),
    ("dpm_2", {"s_churn": 10.0}, 0.05),
    ("dpmpp_sde", {}, 0.05),
    ("dpmpp_2m_sde", {}, 0.05),
    ("dpmpp_2m_sde", {"solver_type": "heun"}, 0.05),
    ("dpmpp_3m_sde", {}, 0.05),
    ("dpm_fast", {"eta": 1.0}, 0.05),
    ("dpm_adaptive", {"eta": 1.0}, 0.05),
]


@pytest.mark.parametrize(("name", "options", "tol"), STOCHASTIC, ids=[f"{c[0]}{c[1] or ''}" for c in STOCHASTIC])
def test_stochastic_samplers_reach_the_data_distribution(name: str, options: dict[str, Any], tol: float) -> None:
    """From x ~ N(MU, S^2 + sigma_max^2), 4000 samples end near N(MU, S^2) (dpm_fast/adaptive: + sigma_min^2)."""
    sigmas = karras(30)
    z = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    x = MU + math.sqrt(S**2 + sigmas[0] ** 2) * z
    noise = BrownianTreeNoiseSampler(x, 0.02, 10.0, seed=3) if name in SDE else seeded_noise(x, 1)
    out = SAMPLERS[name](gaussian_denoiser, x, sigmas, noise_sampler=noise, **options)
    assert abs(out.mean().item() - MU) < 0.04
    assert abs(out.std().item() / S - 1) < tol


@pytest.mark.parametrize("name", ALL)
def test_two_runs_are_bit_identical(name: str) -> None:
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float32) * 10
    sigmas = karras(8).float()
    runs = []
    for _ in range(2):
        torch.manual_seed(5)  # global RNG: default noise and the Brownian tree's seed
        options = {"eta": 1.0} if name in ("dpm_fast", "dpm_adaptive") else {}
        runs.append(SAMPLERS[name](bent_denoiser, x, sigmas, **options))
    assert torch.equal(runs[0], runs[1])


# model evaluations for n steps ending in sigma = 0 (the last step of a 2-stage method is a single Euler step)
NFE = {
    "euler": lambda n: n,
    "euler_ancestral": lambda n: n,
    "heun": lambda n: 2 * n - 1,
    "dpm_2": lambda n: 2 * n - 1,
    "dpm_2_ancestral": lambda n: 2 * n - 1,
    "lms": lambda n: n,
    "dpm_fast": lambda n: n,
    "dpmpp_2s_ancestral": lambda n: 2 * n - 1,
    "dpmpp_sde": lambda n: 2 * n - 1,
    "dpmpp_2m": lambda n: n,
    "dpmpp_2m_sde": lambda n: n,
    "dpmpp_3m_sde": lambda n: n,
}


@pytest.mark.parametrize("name", sorted(NFE))
def test_callbacks_and_model_evaluations(name: str) -> None:
    n = 7
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 10
    sigmas = karras(n)
    model, records = Counted(bent_denoiser), []
    SAMPLERS[name](model, x, sigmas, callback=records.append, noise_sampler=seeded_noise(x, 0))
    assert model.calls == NFE[name](n)
    steps = n // 3 + 1 if name == "dpm_fast" else n
    assert [r["i"] for r in records] == list(range(steps))
    for r in records:
        assert {"x", "i", "sigma", "sigma_hat", "denoised"} <= set(r)
        assert r["x"].shape == r["denoised"].shape == x.shape
        assert float(r["sigma_hat"]) == float(r["sigma"])
    if name != "dpm_fast":
        assert [float(r["sigma"]) for r in records] == sigmas[:-1].tolist()
    else:  # uniform steps in log sigma from sigmas[0] to the smallest positive sigma
        assert math.isclose(float(records[0]["sigma"]), 10.0, rel_tol=1e-6)
        assert all(float(a["sigma"]) > float(b["sigma"]) > 0.02 for a, b in zip(records, records[1:], strict=False))


def test_churn_raises_sigma_hat_inside_the_churn_window() -> None:
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 10
    sigmas, records = karras(10), []
    SAMPLERS["heun"](bent_denoiser, x, sigmas, callback=records.append, s_churn=2.0, s_tmin=0.1, s_tmax=5.0)
    gamma = min(2.0 / 10, 2**0.5 - 1)
    for r in records:
        factor = 1 + gamma if 0.1 <= float(r["sigma"]) <= 5.0 else 1.0
        assert math.isclose(float(r["sigma_hat"]), factor * float(r["sigma"]), rel_tol=1e-12)


@pytest.mark.parametrize("name", [n for n in ALL if n != "dpm_adaptive"])
def test_batch_of_3_equals_3_single_runs(name: str) -> None:
    """With per-item noise, an item's result does not depend on the batch (not dpm_adaptive: its error
    norm, hence its step sizes, spans the batch)."""
    x = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(0), dtype=F64) * 10
    sigmas, seeds = karras(8), [11, 12, 13]
    options = {"eta": 1.0} if name == "dpm_fast" else {"s_churn": 1.0} if name in ("euler", "heun", "dpm_2") else {}

    def noise(x: Tensor, seeds: list[int]) -> Callable[[Any, Any], Tensor]:
        if name in SDE:
            return BrownianTreeNoiseSampler(x, sigmas[-2], sigmas[0], seed=seeds)
        return per_item_noise(x, seeds)

    batch = SAMPLERS[name](bent_denoiser, x, sigmas, noise_sampler=noise(x, seeds), **options)
    for k in range(3):
        item = x[k : k + 1]
        single = SAMPLERS[name](bent_denoiser, item, sigmas, noise_sampler=noise(item, [seeds[k]]), **options)
        assert torch.allclose(batch[k : k + 1], single, rtol=1e-12, atol=1e-12)


# --- Brownian-tree noise -----------------------------------------------------------------------------------


def _t(v: float) -> Tensor:
    return torch.tensor(v, dtype=F64)


def test_brownian_noise_of_an_item_does_not_depend_on_the_batch() -> None:
    x3, x1 = torch.zeros(3, 4, 5, dtype=F64), torch.zeros(1, 4, 5, dtype=F64)
    batch = BrownianTreeNoiseSampler(x3, 0.03, 14.6, seed=[1, 2, 3])
    alone = BrownianTreeNoiseSampler(x1, 0.03, 14.6, seed=[2])
    for a, b in [(14.6, 9.0), (9.0, 2.5), (2.5, 0.03)]:
        assert torch.equal(batch(_t(a), _t(b))[1:2], alone(_t(a), _t(b)))


def test_brownian_noise_is_standard_normal_and_additive_like_a_brownian_path() -> None:
    x = torch.zeros(2, 5000, dtype=F64)
    noise = BrownianTreeNoiseSampler(x, 0.03, 14.6, seed=[4, 5])
    a, b, c = _t(0.5), _t(2.0), _t(7.0)
    w_ac = noise(a, c)
    assert abs(w_ac.mean().item()) < 0.06 and abs(w_ac.std().item() - 1) < 0.04
    # W(c) - W(a) = (W(b) - W(a)) + (W(c) - W(b)), each noise being an increment over its sqrt(length)
    joined = noise(a, b) * math.sqrt(1.5) + noise(b, c) * math.sqrt(5.0)
    assert torch.allclose(w_ac * math.sqrt(6.5), joined, rtol=0, atol=1e-10)
    assert torch.equal(noise(c, a), -w_ac)  # the direction of the step flips the sign


def test_brownian_seed_none_draws_from_the_global_rng() -> None:
    x = torch.zeros(2, 8, dtype=F64)
    torch.manual_seed(0)
    first = BrownianTreeNoiseSampler(x, 0.03, 14.6)(_t(5.0), _t(1.0))
    torch.manual_seed(0)
    second = BrownianTreeNoiseSampler(x, 0.03, 14.6)(_t(5.0), _t(1.0))
    third = BrownianTreeNoiseSampler(x, 0.03, 14.6)(_t(5.0), _t(1.0))
    assert torch.equal(first, second) and not torch.equal(second, third)


def test_brownian_cpu_tree_matches_device_tree_on_cpu_and_snaps_rounding_errors(recwarn) -> None:
    x = torch.zeros(2, 8)
    sigmas = torch.tensor([14.6, 3.0, 0.0292])
    on_cpu = BrownianTreeNoiseSampler(x, sigmas[2], sigmas[0], seed=9, cpu=True)
    on_device = BrownianTreeNoiseSampler(x, sigmas[2], sigmas[0], seed=9, cpu=False)
    # exp(log(sigma)) round trips, as the SDE samplers make them, land just outside the tree: no warning
    ends = sigmas.log().exp() * torch.tensor([1 + 1e-7, 1, 1 - 1e-7])
    assert torch.equal(on_cpu(ends[0], ends[2]), on_device(ends[0], ends[2]))
    assert not [w for w in recwarn if "Should have" in str(w.message)]


def test_brownian_needs_one_seed_per_batch_item() -> None:
    with pytest.raises(SdlabError, match="one Brownian-tree seed per batch item"):
        BrownianTreeNoiseSampler(torch.zeros(3, 2), 0.1, 10.0, seed=[1, 2])


# --- LMS coefficients ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_lms_coefficients_integrate_polynomials_exactly(order: int) -> None:
    t = karras(12).numpy()
    i = 6
    coeffs = lms_coefficients(t, i, order)
    # Lagrange weights integrate every polynomial of degree < order exactly; degree 0 gives the step length
    assert math.isclose(sum(coeffs), t[i + 1] - t[i], rel_tol=1e-12)
    for degree in range(order):
        integral = (t[i + 1] ** (degree + 1) - t[i] ** (degree + 1)) / (degree + 1)
        estimate = sum(c * t[i - j] ** degree for j, c in enumerate(coeffs))
        assert math.isclose(estimate, integral, rel_tol=1e-9)


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sigmas", "options", "match"),
    [
        ("euler", torch.ones(2, 3), {}, "1-D"),
        ("heun", torch.tensor([1.0]), {}, "at least 2"),
        ("dpmpp_2m_sde", None, {"solver_type": "euler"}, "solver_type"),
        ("dpm_adaptive", None, {"order": 4}, "order must be 2 or 3"),
        ("dpm_fast", None, {"n": 0}, "n >= 1"),
        ("dpm_fast", None, {"sigma_min": 0.0}, "> 0"),
        ("dpm_fast", None, {"eta": 1.0, "sigma_min": 10.0, "sigma_max": 1.0}, "eta must be 0"),
        ("lms", None, {"order": 0}, "order"),
    ],
)
def test_bad_input_raises(name: str, sigmas: Tensor | None, options: dict[str, Any], match: str) -> None:
    sigmas = karras(4) if sigmas is None else sigmas
    with pytest.raises(SdlabError, match=match):
        SAMPLERS[name](gaussian_denoiser, torch.zeros(1, 2), sigmas, **options)


def test_dpm_solver_module_publishes_from_kdiffusion():
    from sdlab.samplers import dpm_solver, kdiffusion
    from sdlab.samplers.domains import function_key

    assert kdiffusion.dpm_fast is dpm_solver.dpm_fast and kdiffusion.dpm_adaptive is dpm_solver.dpm_adaptive
    assert function_key(kdiffusion.dpm_fast) == "kdiffusion:dpm_fast"
