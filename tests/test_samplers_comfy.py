"""ComfyUI's own samplers (sdlab.samplers.comfy) on an exactly solvable problem.

The data are Gaussian, N(mu, s^2 I), so the ideal denoiser is D(x, sigma) = (s^2 x + sigma^2 mu) / (s^2 + sigma^2)
and the probability-flow ODE has the closed form x(sigma) = mu + (x_T - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_T^2).
Every sampler ends with a jump from sigma_min to 0 that returns D(x, sigma_min), so the exact answer on a schedule
ending at sigma_min then 0 is D(x(sigma_min), sigma_min).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.samplers import comfy, comfy_multistep
from sdlab.samplers.base import append_dims
from sdlab.samplers.comfy import NOT_IMPLEMENTED, SAMPLERS

MU, S = 0.7, 0.5
SIGMA_MIN, SIGMA_MAX = 0.05, 10.0
F64 = torch.float64

# ComfyUI's SAMPLER_NAMES at Comfy-Org/ComfyUI a125cd84 (comfy/samplers.py), by who implements them in sdlab
COMFY_KDIFFUSION = {
    "euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive",
    "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddim",
}  # fmt: skip
COMFY_OWN = {
    "euler_cfg_pp", "euler_ancestral_cfg_pp", "heunpp2", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_2m_cfg_pp", "ddpm",
    "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "uni_pc", "uni_pc_bh2",
}  # fmt: skip


def sd_sigma_table() -> Tensor:
    """Stable Diffusion's 1000 training sigmas (scaled-linear betas 0.00085 .. 0.012)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=F64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


class Gaussian:
    """The exact denoiser of N(mu, s^2 I) data; ``sigmas`` is an SD training table for SA-Solver's default tau."""

    def __init__(self, mu: float = MU, s: float = S) -> None:
        self.mu, self.s, self.calls = mu, s, 0
        self.sigmas = sd_sigma_table()

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.calls += 1
        sigma = append_dims(sigma, x.ndim)
        return (self.s**2 * x + sigma**2 * self.mu) / (self.s**2 + sigma**2)


class CFGGaussian:
    """Classifier-free guidance between two Gaussian denoisers; records the unconditional prediction."""

    def __init__(self, scale: float) -> None:
        self.cond, self.uncond, self.scale = Gaussian(mu=MU), Gaussian(mu=-0.4), scale
        self.sigmas = self.cond.sigmas
        self.last_uncond_denoised: Tensor | None = None

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        cond, uncond = self.cond(x, sigma), self.uncond(x, sigma)
        self.last_uncond_denoised = uncond
        return uncond + self.scale * (cond - uncond)


def karras(n: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = 7.0) -> Tensor:
    ramp = torch.linspace(0, 1, n, dtype=F64)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def start(seed: int = 0, shape: tuple[int, ...] = (3, 4)) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64) * SIGMA_MAX


def exact(x_t: Tensor) -> Tensor:
    """D(x(sigma_min), sigma_min) for the PF-ODE started at (x_t, SIGMA_MAX)."""
    x_min = MU + (x_t - MU) * math.sqrt(S**2 + SIGMA_MIN**2) / math.sqrt(S**2 + SIGMA_MAX**2)
    return (S**2 * x_min + SIGMA_MIN**2 * MU) / (S**2 + SIGMA_MIN**2)


def seeded_noise(like: Tensor, seed: int = 123) -> Callable[[Tensor, Tensor], Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(like.shape, generator=generator, dtype=like.dtype)


def no_noise(sigma: Tensor, sigma_next: Tensor) -> Tensor:
    raise AssertionError("a deterministic setting drew noise")


def ode(lam: Tensor) -> Tensor:
    """ER-SDE noise scaler of the ODE (ComfyUI's "ODE" solver type)."""
    return lam


# --- small reference samplers, from the k-diffusion papers' formulas ------------------------------------------


def ref_euler(model: Any, x: Tensor, sigmas: Tensor) -> Tensor:
    for i in range(len(sigmas) - 1):
        d = (x - model(x, sigmas[i] * x.new_ones(x.shape[0]))) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def ref_euler_ancestral(model: Any, x: Tensor, sigmas: Tensor, noise: Callable[..., Tensor]) -> Tensor:
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        d = (x - model(x, sigmas[i] * x.new_ones(x.shape[0]))) / sigma
        sigma_up = min(sigma_next, math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
        sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
        x = x + d * (sigma_down - sigma)
        if sigma_next > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * sigma_up
    return x


def ref_dpmpp_2m(model: Any, x: Tensor, sigmas: Tensor) -> Tensor:
    old = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * x.new_ones(x.shape[0]))
        if sigmas[i + 1] == 0:
            return denoised
        h = math.log(sigmas[i] / sigmas[i + 1])
        d = denoised
        if old is not None:
            r = math.log(sigmas[i - 1] / sigmas[i]) / h
            d = (1 + 1 / (2 * r)) * denoised - 1 / (2 * r) * old
        x = math.exp(-h) * x - math.expm1(-h) * d
        old = denoised
    return x


# --- registry -------------------------------------------------------------------------------------------------


def test_registry_covers_comfyui_own_algorithms_by_their_names() -> None:
    assert set(SAMPLERS) | set(NOT_IMPLEMENTED) == COMFY_OWN
    assert not set(SAMPLERS) & set(NOT_IMPLEMENTED)
    assert not COMFY_OWN & COMFY_KDIFFUSION
    assert len(COMFY_OWN | COMFY_KDIFFUSION) == 42  # ComfyUI's SAMPLER_NAMES
    for name, fn in SAMPLERS.items():
        params = inspect.signature(fn).parameters
        assert list(params)[:3] == ["model", "x", "sigmas"], name
        for knob in ("extra_args", "callback", "noise_sampler"):
            assert params[knob].kind is inspect.Parameter.KEYWORD_ONLY, (name, knob)


# --- convergence to the exact PF-ODE solution -----------------------------------------------------------------

# (name, options, lowest, highest observed order between 16 and 64 steps of a Karras schedule). Multistep
# methods that start with an Euler step are second order overall however high their nominal order.
ORDERS = [
    ("euler_cfg_pp", {}, 0.8, 1.3),
    ("euler_ancestral_cfg_pp", {"eta": 0.0}, 0.8, 1.3),
    ("heunpp2", {}, 0.8, 1.3),  # its weights favour Euler as sigma falls: first order
    ("ipndm", {}, 1.7, 2.6),
    ("ipndm_v", {}, 0.8, 3.0),  # ComfyUI's order-4 weights do not sum to 1 on unequal steps: ~1st order late
    ("deis", {}, 2.5, 3.4),
    ("res_multistep", {}, 1.7, 2.6),
    ("res_multistep_cfg_pp", {}, 1.7, 2.6),
    ("res_multistep_ancestral", {"eta": 0.0}, 1.7, 2.6),
    ("gradient_estimation", {}, 0.6, 1.3),
    ("gradient_estimation_cfg_pp", {}, 0.6, 1.3),
    ("dpmpp_2m_cfg_pp", {}, 1.7, 2.6),
    ("seeds_2", {"eta": 0.0}, 1.7, 2.6),
    ("seeds_3", {"eta": 0.0}, 2.6, 3.4),
    ("er_sde", {"noise_scaler": ode, "s_noise": 0.0}, 1.7, 2.6),
    ("sa_solver", {"tau_func": lambda sigma: 0.0}, 1.7, 3.4),
    ("sa_solver_pece", {"tau_func": lambda sigma: 0.0}, 1.7, 3.4),
    ("dpmpp_3m", {}, 1.7, 3.4),
]


@pytest.mark.parametrize(("name", "options", "lowest", "highest"), ORDERS, ids=[o[0] for o in ORDERS])
def test_converges_to_the_exact_solution_at_its_order(
    name: str, options: dict[str, Any], lowest: float, highest: float
) -> None:
    sampler, x_t = getattr(comfy, name), start()
    errors = [float((sampler(Gaussian(), x_t, karras(n), **options) - exact(x_t)).abs().max()) for n in (16, 64)]
    order = math.log(errors[0] / errors[1]) / math.log(4)
    assert errors[1] < 0.1 * S, errors  # within 10 % of the data scale at 64 steps, even for Euler
    assert lowest <= order <= highest, (errors, order)


# --- twins ----------------------------------------------------------------------------------------------------

TWINS = [  # ComfyUI defines the first as the second at eta 0
    ("euler_cfg_pp", {}, "euler_ancestral_cfg_pp", {"eta": 0.0}),
    ("res_multistep", {}, "res_multistep_ancestral", {"eta": 0.0}),
    ("res_multistep_cfg_pp", {}, "res_multistep_ancestral_cfg_pp", {"eta": 0.0}),
]


@pytest.mark.parametrize(("plain", "plain_options", "ancestral", "options"), TWINS, ids=[t[0] for t in TWINS])
def test_eta_zero_is_the_deterministic_twin_and_draws_no_noise(
    plain: str, plain_options: dict[str, Any], ancestral: str, options: dict[str, Any]
) -> None:
    x_t, sigmas, model = start(), karras(12), CFGGaussian(scale=3.0)
    expected = SAMPLERS[plain](model, x_t, sigmas, **plain_options)
    got = SAMPLERS[ancestral](model, x_t, sigmas, noise_sampler=no_noise, **options)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "options"),
    [("seeds_2", {"eta": 0.0}), ("seeds_3", {"eta": 0.0}), ("dpmpp_2s_ancestral_cfg_pp", {"eta": 0.0}),
     ("er_sde", {"s_noise": 0.0}), ("sa_solver", {"tau_func": lambda sigma: 0.0}), ("heunpp2", {}),
     ("sa_solver_pece", {"s_noise": 0.0})],
)  # fmt: skip
def test_deterministic_settings_draw_no_noise(name: str, options: dict[str, Any]) -> None:
    SAMPLERS[name](Gaussian(), start(), karras(8), noise_sampler=no_noise, **options)


def test_ddpm_is_euler_ancestral_at_eta_one() -> None:
    # the DDPM posterior q(x_{t-1} | x_t, x0) in VE scaling is exactly an Euler ancestral step (eta 1)
    x_t, sigmas = start(), karras(10)
    got = comfy.ddpm(Gaussian(), x_t, sigmas, noise_sampler=seeded_noise(x_t))
    expected = ref_euler_ancestral(Gaussian(), x_t, sigmas, seeded_noise(x_t))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_ipndm_v_equals_ipndm_on_equal_steps_up_to_order_3() -> None:
    x_t, sigmas = start(), torch.linspace(SIGMA_MAX, 0, 21, dtype=F64)
    got = comfy.ipndm_v(Gaussian(), x_t, sigmas, max_order=3)
    torch.testing.assert_close(got, comfy.ipndm(Gaussian(), x_t, sigmas, max_order=3), rtol=1e-11, atol=1e-11)


def test_ipndm_v_weights() -> None:
    t, equal = [10.0, 7.0, 5.0, 3.5, 2.4], [4.0, 3.0, 2.0, 1.0, 0.0]
    for order in (2, 3):  # consistent on unequal steps, Adams-Bashforth on equal ones
        assert math.isclose(sum(comfy_multistep._ipndm_variable(order, t, 3)), 1.0, rel_tol=1e-12)
        assert comfy_multistep._ipndm_variable(order, equal, 3) == pytest.approx(
            comfy_multistep._ipndm_fixed(order), rel=1e-12
        )
    assert comfy_multistep._ipndm_variable(2, t, 3) == pytest.approx([1 + 1.1 / 3, -1.1 / 3])  # variable-step AB2
    # ComfyUI's (zju-pi's) order 4 is third order on equal steps: sum w_j j^2 = 1/3 but sum w_j j^3 != -1/4
    w4 = comfy_multistep._ipndm_variable(4, equal, 3)
    assert sum(w * j**2 for j, w in enumerate(w4)) == pytest.approx(1 / 3)
    assert sum(w * j**3 for j, w in enumerate(w4)) == pytest.approx(-18 / 24)


# --- CFG++ ----------------------------------------------------------------------------------------------------

CFG_PP = [  # (CFG++ form, options, reference plain form without guidance)
    ("euler_cfg_pp", {}, lambda m, x, s, n: ref_euler(m, x, s)),
    ("euler_ancestral_cfg_pp", {}, lambda m, x, s, n: ref_euler_ancestral(m, x, s, n)),
    ("dpmpp_2m_cfg_pp", {}, lambda m, x, s, n: ref_dpmpp_2m(m, x, s)),
    ("res_multistep_cfg_pp", {}, lambda m, x, s, n: comfy.res_multistep(m, x, s)),
    ("res_multistep_ancestral_cfg_pp", {}, lambda m, x, s, n: comfy.res_multistep_ancestral(m, x, s, noise_sampler=n)),
    ("gradient_estimation_cfg_pp", {}, lambda m, x, s, n: comfy.gradient_estimation(m, x, s)),
]


@pytest.mark.parametrize(("name", "options", "plain"), CFG_PP, ids=[c[0] for c in CFG_PP])
def test_cfg_pp_without_guidance_is_the_plain_form(name: str, options: dict[str, Any], plain: Callable) -> None:
    x_t, sigmas = start(), karras(12)
    got = SAMPLERS[name](Gaussian(), x_t, sigmas, noise_sampler=seeded_noise(x_t), **options)
    expected = plain(Gaussian(), x_t, sigmas, seeded_noise(x_t))
    torch.testing.assert_close(got, expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("name", [n for n in SAMPLERS if n.endswith("_cfg_pp")])
def test_cfg_pp_forms_read_the_unconditional_prediction(name: str) -> None:
    class Hidden(CFGGaussian):  # the same guided output, without last_uncond_denoised
        def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
            out = super().__call__(x, sigma)
            self.last_uncond_denoised = None
            return out

    x_t, sigmas = start(), karras(8)
    with_uncond = SAMPLERS[name](CFGGaussian(3.0), x_t, sigmas, noise_sampler=seeded_noise(x_t))
    without = SAMPLERS[name](Hidden(3.0), x_t, sigmas, noise_sampler=seeded_noise(x_t))
    assert (with_uncond - without).abs().max() > 1e-3


def test_euler_cfg_pp_step_renoises_with_the_unconditional_noise() -> None:
    # CFG++ (Chung et al. 2024): x_next = D_guided + sigma_next * (x - D_uncond) / sigma
    model, x, sigmas = CFGGaussian(scale=5.0), start(), torch.tensor([4.0, 1.5], dtype=F64)
    guided = model(x, sigmas[:1].expand(x.shape[0]))
    expected = guided + 1.5 * (x - model.last_uncond_denoised) / 4.0
    torch.testing.assert_close(comfy.euler_cfg_pp(model, x, sigmas), expected, rtol=1e-13, atol=1e-13)


def test_dpmpp_2s_ancestral_cfg_pp_step_uses_comfyui_midpoint_uncond() -> None:
    # ComfyUI shifts the full step by the uncond of the midpoint call (Comfy-Org/ComfyUI PRs #11914, #14814)
    model, x, sigma, sigma_next = CFGGaussian(scale=5.0), start(), 4.0, 1.5
    denoised = model(x, torch.full((x.shape[0],), sigma, dtype=F64))
    uncond = model.last_uncond_denoised
    h = math.log(sigma / sigma_next)
    sigma_mid = math.sqrt(sigma * sigma_next)
    x_2 = (sigma_mid / sigma) * (x + denoised - uncond) - math.expm1(-h / 2) * denoised
    denoised_2 = model(x_2, torch.full((x.shape[0],), sigma_mid, dtype=F64))
    expected = (sigma_next / sigma) * (x + denoised - model.last_uncond_denoised) - math.expm1(-h) * denoised_2
    got = comfy.dpmpp_2s_ancestral_cfg_pp(model, x, torch.tensor([sigma, sigma_next], dtype=F64), eta=0.0)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


# --- stochastic samplers --------------------------------------------------------------------------------------

STOCHASTIC = [  # (name, options, steps): the final samples follow N(mu, s^2)
    ("ddpm", {}, 100),
    ("euler_ancestral_cfg_pp", {}, 100),
    ("res_multistep_ancestral", {}, 30),
    ("er_sde", {}, 30),
    ("seeds_2", {}, 30),
    ("seeds_3", {}, 30),
    ("sa_solver", {"tau_func": lambda sigma: 1.0}, 30),
    ("sa_solver_pece", {"tau_func": lambda sigma: 1.0}, 30),
]


@pytest.mark.parametrize(("name", "options", "steps"), STOCHASTIC, ids=[s[0] for s in STOCHASTIC])
def test_stochastic_samplers_sample_the_data_distribution(name: str, options: dict[str, Any], steps: int) -> None:
    sigmas = karras(steps)
    x_t = MU + math.sqrt(S**2 + SIGMA_MAX**2) * start(seed=1, shape=(10_000, 1)) / SIGMA_MAX  # exact marginal
    out = SAMPLERS[name](Gaussian(), x_t, sigmas, noise_sampler=seeded_noise(x_t), **options)
    assert abs(float(out.mean()) - MU) < 0.03
    assert abs(float(out.std()) / S - 1) < 0.06


def test_lcm_is_exact_for_a_point_mass() -> None:
    x0, seen = torch.tensor([[0.3, -1.2]], dtype=F64), []
    sigmas = karras(6)
    out = SAMPLERS["lcm"](lambda x, sigma: x0.expand_as(x), start(shape=(1, 2)), sigmas, callback=seen.append)
    torch.testing.assert_close(out, x0, rtol=0, atol=0)
    assert all(float((s["x"] - x0).abs().max()) > 0 for s in seen[1:])  # re-noised between steps


# --- SA-Solver's default stochastic interval ------------------------------------------------------------------


def test_sa_solver_default_tau_is_stochastic_between_20_and_80_percent_of_training_time() -> None:
    log_table = sd_sigma_table().log()
    start_sigma = math.exp(0.2 * log_table[799] + 0.8 * log_table[800])  # t = 0.8 * 999 = 799.2
    end_sigma = math.exp(0.8 * log_table[199] + 0.2 * log_table[200])  # t = 0.2 * 999 = 199.8
    sigmas, drawn = karras(20), []
    x_t = start()

    def counting(sigma: Tensor, sigma_next: Tensor) -> Tensor:
        drawn.append(float(sigma_next))
        return torch.zeros_like(x_t)

    comfy.sa_solver(Gaussian(), x_t, sigmas, noise_sampler=counting)
    expected = [float(s) for s in sigmas[1:] if end_sigma <= s <= start_sigma and s > 0]
    assert drawn == pytest.approx(expected) and 0 < len(expected) < 19


def test_sa_solver_without_sigma_range_asks_for_tau_func() -> None:
    with pytest.raises(SdlabError, match="tau_func"):
        comfy.sa_solver(lambda x, sigma: x * 0, start(), karras(4))


# --- ComfyUI's names where A1111's samplers of the same algorithm differ --------------------------------------


def test_comfyui_lms_ends_with_the_denoised_prediction_a1111_lms_does_not() -> None:
    # ComfyUI (2025) makes the step to a final 0 a plain denoise; k-diffusion, hence A1111's LMS, steps there
    from sdlab.samplers import sample

    x_t, sigmas = start(), karras(8)
    for name, denoises in (("lms", True), ("LMS", False)):
        seen: list[dict[str, Any]] = []
        out = sample(Gaussian(), x_t, sigmas, name, callback=seen.append)
        assert torch.equal(out, seen[-1]["denoised"]) == denoises, name
    # without a final 0 both are k-diffusion's multistep to the last sigma
    assert torch.equal(sample(Gaussian(), x_t, sigmas[:-1], "lms"), sample(Gaussian(), x_t, sigmas[:-1], "LMS"))


class NoTable:
    """A k-diffusion-convention denoiser without a training sigma table (no ``.sigmas``)."""

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return Gaussian()(x, sigma)


@pytest.mark.parametrize("name", ["uni_pc", "uni_pc_bh2"])
def test_comfyui_uni_pc_runs_on_any_sigmas_without_a_training_table(name: str) -> None:
    from sdlab.samplers import sample

    x_t, sigmas = start(), karras(12)
    out = sample(NoTable(), x_t, sigmas, name)
    assert torch.isfinite(out).all()
    # it lands on sigma 0.001 in place of the final 0 (no denoising step): near the exact PF-ODE solution there
    x_end = MU + (x_t - MU) * math.sqrt(S**2 + comfy.UNI_PC_FINAL_SIGMA**2) / math.sqrt(S**2 + SIGMA_MAX**2)
    assert float((out - x_end).abs().max()) < 0.03 * S
    with pytest.raises(SdlabError, match="training sigma table"):  # A1111's UniPC stays on A1111's timesteps
        sample(NoTable(), x_t, sigmas, "UniPC")


def test_comfyui_uni_pc_variants_and_one_step_quirk() -> None:
    x_t, sigmas = start(), karras(10)
    bh2 = comfy.uni_pc_bh2(Gaussian(), x_t, sigmas)
    assert torch.equal(bh2, comfy.uni_pc(Gaussian(), x_t, sigmas, variant="bh2"))
    assert not torch.equal(bh2, comfy.uni_pc(Gaussian(), x_t, sigmas))
    # one step: ComfyUI's order min(3, steps - 1) is 0, so it takes no step and only rescales the latent
    one = comfy.uni_pc(Gaussian(), x_t, torch.tensor([SIGMA_MAX, 0.0], dtype=F64))
    torch.testing.assert_close(one, x_t * math.sqrt((1 + 0.001**2) / (1 + SIGMA_MAX**2)), rtol=1e-14, atol=0)
    with pytest.raises(SdlabError, match="repeated"):
        comfy.uni_pc(Gaussian(), x_t, torch.tensor([SIGMA_MAX, 1.0, 1.0, 0.0], dtype=F64))


@pytest.mark.parametrize("name", ["uni_pc", "uni_pc_bh2"])
def test_comfyui_uni_pc_converges_at_second_order_without_a_final_zero(name: str) -> None:
    sampler, x_t = getattr(comfy, name), start()
    exact_min = MU + (x_t - MU) * math.sqrt(S**2 + SIGMA_MIN**2) / math.sqrt(S**2 + SIGMA_MAX**2)
    errors = [float((sampler(Gaussian(), x_t, karras(n)[:-1]) - exact_min).abs().max()) for n in (16, 64)]
    assert 1.7 <= math.log(errors[0] / errors[1]) / math.log(4) <= 3.0, errors


# --- reproducibility, callbacks, bad knobs --------------------------------------------------------------------

ALL = [*SAMPLERS, "dpmpp_3m"]


@pytest.mark.parametrize("name", ALL)
def test_reruns_are_bit_identical(name: str) -> None:
    sampler, x_t, sigmas = getattr(comfy, name), start(), karras(7)
    runs = [sampler(CFGGaussian(2.0), x_t, sigmas, noise_sampler=seeded_noise(x_t)) for _ in range(2)]
    assert torch.equal(*runs)
    default_rng = []
    for _ in range(2):
        torch.manual_seed(5)
        default_rng.append(sampler(CFGGaussian(2.0), x_t, sigmas))
    assert torch.equal(*default_rng)


def test_heunpp2_churn_noise_comes_from_the_noise_sampler() -> None:
    x_t, sigmas = start(), karras(7)
    runs = [comfy.heunpp2(Gaussian(), x_t, sigmas, s_churn=2.0, noise_sampler=seeded_noise(x_t, s)) for s in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


@pytest.mark.parametrize("name", ALL)
def test_callback_reports_every_step_with_the_current_x(name: str) -> None:
    x_t, sigmas, seen = start(), karras(7), []
    getattr(comfy, name)(Gaussian(), x_t, sigmas, callback=seen.append, noise_sampler=seeded_noise(x_t))
    assert [s["i"] for s in seen] == list(range(len(sigmas) - 1))
    for i, info in enumerate(seen):
        assert set(info) == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert float(info["sigma"]) == float(sigmas[i]) and info["denoised"].shape == x_t.shape
    assert torch.equal(seen[0]["x"], x_t) and not torch.equal(seen[-1]["x"], x_t)


@pytest.mark.parametrize(
    ("name", "options"),
    [("ipndm", {"max_order": 5}), ("ipndm_v", {"max_order": 0}), ("deis", {"max_order": 5}),
     ("deis", {"deis_mode": "rhoab"}), ("er_sde", {"max_stage": 4}), ("sa_solver", {"predictor_order": 0}),
     ("sa_solver_pece", {"corrector_order": 7})],
)  # fmt: skip
def test_bad_knobs_raise(name: str, options: dict[str, Any]) -> None:
    with pytest.raises(SdlabError):
        SAMPLERS[name](Gaussian(), start(), karras(4), **options)


def test_split_modules_keep_their_public_home():
    from sdlab.samplers import comfy_multistep, comfy_sde
    from sdlab.samplers.domains import domains_for, function_key

    for fn in (comfy.deis, comfy.uni_pc, comfy.res_multistep, comfy.sa_solver, comfy.er_sde, comfy.seeds_3):
        assert function_key(fn) == f"comfy:{fn.__name__}" and domains_for(fn) is not None
    assert comfy.deis is comfy_multistep.deis and comfy.sa_solver is comfy_sde.sa_solver
