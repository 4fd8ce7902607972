"""A1111's non-k-diffusion samplers (sdlab.samplers.a1111) on an analytic Gaussian denoiser.

The denoiser is the exact posterior mean of N(mu, s^2 I), so the probability-flow ODE has a closed-form
solution. References are written here from the papers (DDIM eq. 12, Karras Alg. 2, Karras eq. 5) or are
diffusers' schedulers where their semantics agree with A1111's.
"""

from __future__ import annotations

import math

import pytest
import torch

from sdlab.errors import SdlabError
from sdlab.samplers import a1111
from sdlab.samplers.a1111 import (
    SAMPLERS,
    TIMESTEP_SIGMAS,
    ddim,
    ddim_cfgpp,
    ddim_sigmas,
    lcm,
    plms,
    plms_sigmas,
    restart,
    unipc,
    unipc_sigmas,
    ve_to_vp,
    vp_to_ve,
)

F64 = torch.float64
BETAS = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=F64) ** 2  # SD "scaled_linear"
ALPHAS_CUMPROD = torch.cumprod(1 - BETAS, 0)
SD_SIGMAS = ((1 - ALPHAS_CUMPROD) / ALPHAS_CUMPROD).sqrt()
SHAPE = (2, 3, 4, 4)


class Gaussian:
    """Posterior mean of N(mu, s^2 I) under VE noise: D(x, sigma) = (s^2 x + sigma^2 mu) / (s^2 + sigma^2)."""

    def __init__(self, mu: torch.Tensor, s: float = 0.5) -> None:
        self.mu, self.s2, self.sigmas, self.calls = mu, s * s, SD_SIGMAS, 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        self.calls += 1
        assert sigma.shape == (x.shape[0],)
        var = sigma.to(x).view(-1, *[1] * (x.ndim - 1)) ** 2
        return (self.s2 * x + var * self.mu) / (self.s2 + var)

    def exact(self, x: torch.Tensor, sigma_from: float, sigma_to: float) -> torch.Tensor:
        """The PF-ODE solution from x at sigma_from to sigma_to: x - mu scales with sqrt(s^2 + sigma^2)."""
        return self.mu + (x - self.mu) * math.sqrt((self.s2 + sigma_to**2) / (self.s2 + sigma_from**2))


class CFGGaussian(Gaussian):
    """CFG between two Gaussian posteriors; records the uncond prediction like sdlab's CFG denoiser."""

    def __init__(self, mu: torch.Tensor, mu_uncond: torch.Tensor, scale: float) -> None:
        super().__init__(mu)
        self.uncond, self.scale, self.last_uncond_denoised = Gaussian(mu_uncond), scale, None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        cond_d, uncond_d = super().__call__(x, sigma), self.uncond(x, sigma)
        self.last_uncond_denoised = uncond_d
        return uncond_d + self.scale * (cond_d - uncond_d)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.fixture
def model() -> Gaussian:
    return Gaussian(randn(1, *SHAPE[1:], seed=1))


@pytest.fixture
def noise() -> torch.Tensor:
    return randn(*SHAPE, seed=2)


def replay(noises: list[torch.Tensor]):
    """A noise sampler handing out the given tensors in order, recording its (sigma, sigma_next) calls."""
    it, calls = iter(noises), []

    def sampler(sigma, sigma_next):
        calls.append((float(sigma), float(sigma_next)))
        return next(it)

    sampler.calls = calls
    return sampler


def a1111_timesteps(steps: int) -> list[int]:
    """sd_samplers_timesteps.get_timesteps, ascending."""
    return [min(t + 1, 999) for t in range(0, 1000, 1000 // steps)]


def vp_eps(model: Gaussian, x_vp: torch.Tensor, t: int) -> torch.Tensor:
    """An eps-predicting VP model at integer timestep t, built from the VE denoiser."""
    sigma = SD_SIGMAS[t]
    x = x_vp * (1 + sigma**2).sqrt()
    return (x - model(x, sigma.expand(x.shape[0]))) / sigma


def vp_ddim(model, x_vp, timesteps, *, eta=0.0, noises=(), eps_dir=None):
    """DDIM (Song et al. 2021, eq. 12) in VP space, stepping down A1111's timesteps as its loop does."""
    noises = iter(noises)
    for k in range(len(timesteps) - 1, 0, -1):
        t, t_prev = timesteps[k], timesteps[k - 1]
        a, a_prev = ALPHAS_CUMPROD[t], ALPHAS_CUMPROD[t_prev]
        e = vp_eps(model, x_vp, t)
        pred_x0 = (x_vp - (1 - a).sqrt() * e) / a.sqrt()
        sigma_t = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
        direction = e if eps_dir is None else eps_dir(x_vp, t)
        x_vp = a_prev.sqrt() * pred_x0 + (1 - a_prev - sigma_t**2).sqrt() * direction
        if eta:
            x_vp = x_vp + sigma_t * next(noises)
    return x_vp


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, eq. 5, with a final 0."""
    i = torch.arange(n, dtype=F64) / (n - 1)
    sigmas = (sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, torch.zeros(1, dtype=F64)])


def heun(model, x, sigmas):
    """Karras et al. 2022, Algorithm 2 without churn; Euler for the step to 0."""
    s_in = x.new_ones(x.shape[0])
    for i in range(len(sigmas) - 1):
        d = (x - model(x, sigmas[i] * s_in)) / sigmas[i]
        x_next = x + (sigmas[i + 1] - sigmas[i]) * d
        if sigmas[i + 1] > 0:
            d_next = (x_next - model(x_next, sigmas[i + 1] * s_in)) / sigmas[i + 1]
            x_next = x + (sigmas[i + 1] - sigmas[i]) * (d + d_next) / 2
        x = x_next
    return x


# --- timesteps ------------------------------------------------------------------------------------------------


def test_ddim_and_plms_sigmas_are_a1111_timesteps(model):
    assert torch.equal(ddim_sigmas(model, 20), SD_SIGMAS[list(range(951, 0, -50))])
    thirty = ddim_sigmas(model, 30)  # 1000 // 30 = 33: t = 991, 958, ..., 1 (31 entries, 30 steps)
    assert len(thirty) == 31 and thirty[0] == SD_SIGMAS[991] and thirty[-1] == SD_SIGMAS[1]
    assert torch.equal(plms_sigmas(model, 30), thirty)
    assert len(ddim_sigmas(model, 1)) == 1  # A1111 runs no step at all for 1 step
    assert TIMESTEP_SIGMAS["ddim_cfgpp"] is ddim_sigmas and set(TIMESTEP_SIGMAS) <= set(SAMPLERS)


def test_unipc_time_uniform_sigmas_interpolate_log_sigma(model):
    sigmas = unipc_sigmas(model, 20)
    assert len(sigmas) == 21 and sigmas[0] == SD_SIGMAS[-1] and sigmas[-1] == SD_SIGMAS[0]
    t = torch.linspace(999, 0, 21, dtype=F64)  # model-input time, uniform; fractional in between
    lo, w = t.floor().long(), t - t.floor()
    expected = ((1 - w) * SD_SIGMAS[lo].log() + w * SD_SIGMAS[(lo + 1).clamp(max=999)].log()).exp()
    torch.testing.assert_close(sigmas, expected, rtol=1e-12, atol=0)
    assert len(unipc_sigmas(model, 30)) == 32  # A1111 runs len(timesteps) = 31 steps for 30
    for skip_type in ("time_quadratic", "logSNR"):
        other = unipc_sigmas(model, 20, skip_type)
        assert len(other) == 21 and other[0] == SD_SIGMAS[-1] and other[-1] == SD_SIGMAS[0]
        assert (other.diff() < 0).all() and not torch.allclose(other, sigmas)


# --- DDIM, DDIM CFG++, PLMS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [7, 20, 30])
def test_ddim_eta0_equals_vp_ddim_eq12(model, noise, steps):
    timesteps = a1111_timesteps(steps)
    sigmas = ddim_sigmas(model, steps)
    expected = vp_ddim(model, noise, timesteps)
    model.calls = 0
    out = ddim(model, vp_to_ve(noise, sigmas[0]), sigmas)
    assert model.calls == len(timesteps) - 1  # one model call fewer than timesteps, ending at t = 1
    torch.testing.assert_close(ve_to_vp(out, sigmas[-1]), expected, rtol=1e-12, atol=1e-12)


def test_ddim_eta_equals_vp_ddim_with_the_same_noise(model, noise):
    timesteps, sigmas = a1111_timesteps(10), ddim_sigmas(model, 10)
    noises = [randn(*SHAPE, seed=10 + k) for k in range(len(timesteps) - 1)]
    expected = vp_ddim(model, noise, timesteps, eta=0.7, noises=noises)
    sampler = replay(noises)
    out = ddim(model, vp_to_ve(noise, sigmas[0]), sigmas, eta=0.7, noise_sampler=sampler)
    torch.testing.assert_close(ve_to_vp(out, sigmas[-1]), expected, rtol=1e-12, atol=1e-12)
    assert sampler.calls == [(float(a), float(b)) for a, b in zip(sigmas[:-1], sigmas[1:], strict=True)]


def test_ddim_cfgpp_without_guidance_equals_ddim(model, noise):
    sigmas = ddim_sigmas(model, 10)
    x = vp_to_ve(noise, sigmas[0])
    assert torch.equal(ddim_cfgpp(model, x, sigmas), ddim(model, x, sigmas))
    noises = [randn(*SHAPE, seed=20 + k) for k in range(9)]
    stochastic = [fn(model, x, sigmas, eta=0.5, noise_sampler=replay(noises)) for fn in (ddim, ddim_cfgpp)]
    assert torch.equal(*stochastic)


def test_ddim_cfgpp_steps_along_the_uncond_eps(noise):
    model = CFGGaussian(randn(1, *SHAPE[1:], seed=3), randn(1, *SHAPE[1:], seed=4), scale=7.5 / 12.5)
    timesteps, sigmas = a1111_timesteps(20), ddim_sigmas(model, 20)
    expected = vp_ddim(model, noise, timesteps, eps_dir=lambda x, t: vp_eps(model.uncond, x, t))
    out = ddim_cfgpp(model, vp_to_ve(noise, sigmas[0]), sigmas)
    torch.testing.assert_close(ve_to_vp(out, sigmas[-1]), expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out, ddim(model, vp_to_ve(noise, sigmas[0]), sigmas))


def test_plms_warm_up_costs_one_extra_call(model, noise):
    sigmas = plms_sigmas(model, 20)
    model.calls = 0
    plms(model, vp_to_ve(noise, sigmas[0]), sigmas)
    assert model.calls == len(sigmas)  # 19 steps + the pseudo improved Euler evaluation
    model.calls = 0
    to_zero = torch.cat([sigmas[:2], torch.zeros(1, dtype=F64)])
    out = plms(model, noise * sigmas[0], to_zero)
    assert model.calls == 3 and torch.isfinite(out).all()  # the warm-up stays Euler into sigma 0


# --- UniPC ----------------------------------------------------------------------------------------------------


def integer_grid(n: int, t_last: int) -> torch.Tensor:
    """Training sigmas at t = round(linspace(999, t_last, n + 1)): every t an integer."""
    return SD_SIGMAS[torch.linspace(999, t_last, n + 1, dtype=F64).round().long()]


def error(model, fn, sigmas, noise, **knobs) -> float:
    x = noise * sigmas[0]
    out = fn(model, x, sigmas, **knobs)
    return (out - model.exact(x, float(sigmas[0]), float(sigmas[-1]))).abs().max().item()


@pytest.mark.parametrize(
    ("fn", "grid", "knobs"),
    [
        (ddim, ddim_sigmas, {}),
        (ddim_cfgpp, ddim_sigmas, {}),
        (plms, plms_sigmas, {}),
        (unipc, unipc_sigmas, {"variant": "bh1"}),
        (unipc, unipc_sigmas, {"variant": "bh2"}),
        (unipc, unipc_sigmas, {"variant": "vary_coeff"}),
        (unipc, lambda m, n: unipc_sigmas(m, n, "time_quadratic"), {}),
    ],
)
def test_deterministic_samplers_converge_to_the_pf_ode_solution(model, noise, fn, grid, knobs):
    errors = [error(model, fn, grid(model, steps), noise, **knobs) for steps in (10, 40, 200)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < errors[0] / 10


def test_unipc_logsnr_is_accurate_up_to_a1111s_interpolation(model, noise):
    """logSNR puts many points at fractional t in (0, 1), where UniPC's alpha (log alpha linear in t) and the
    sigma the model sees (log sigma linear in t) differ by up to a few percent: A1111's ODE is then not
    exactly the model's, and the error levels off near 1e-4 instead of going to 0."""
    errors = [error(model, unipc, unipc_sigmas(model, n, "logSNR"), noise) for n in (10, 20, 200)]
    assert errors[1] < errors[0] / 100 and max(errors[1:]) < 1e-3


def test_unipc_converges_with_higher_order_than_ddim(model, noise):
    """Observed order log2(e(n) / e(2n)) on integer timesteps t = 999 .. 99 (no interpolation anywhere)."""

    def order(fn, **knobs) -> float:
        e = [error(model, fn, integer_grid(n, 99), noise, **knobs) for n in (18, 36)]
        return math.log2(e[0] / e[1])

    assert 0.9 < order(ddim) < 1.1
    for variant in ("bh1", "bh2"):
        # A1111's default lower_order_final ends on a first-order step without corrector: order 2 overall
        assert 1.7 < order(unipc, variant=variant) < 2.2
        # without it UniPC-3 with its corrector reaches order 4
        assert order(unipc, variant=variant, lower_order_final=False) > 3.5


def test_unipc_costs_one_call_per_step(model, noise):
    sigmas = unipc_sigmas(model, 20)
    model.calls = 0
    unipc(model, vp_to_ve(noise, sigmas[0]), sigmas)
    assert model.calls == 20  # the initial point plus one per step but the last (no corrector there)


# --- diffusers as an independent implementation ----------------------------------------------------------


def diffusers_loop(scheduler, model, noise, timesteps, **step_kwargs) -> torch.Tensor:
    x = noise.clone()
    for t in timesteps:
        x = scheduler.step(vp_eps(model, x, int(t)), t, x, **step_kwargs).prev_sample
    return x


SD_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def test_ddim_and_plms_match_diffusers_when_steps_divide_1000(model, noise):
    """diffusers ("leading", steps_offset=1) uses the same timesteps but takes one more step, t=1 -> alphas_cumprod[0].

    A1111 stops at t = 1, so compare with diffusers one step before its end. When steps does not divide 1000
    the grids differ (30 steps: A1111 starts at t = 991, diffusers at 958).
    """
    diffusers = pytest.importorskip("diffusers")
    kw = dict(SD_SCHEDULER, set_alpha_to_one=False, steps_offset=1)
    for steps in (20, 50):
        sigmas = ddim_sigmas(model, steps)
        scheduler = diffusers.DDIMScheduler(clip_sample=False, timestep_spacing="leading", **kw)
        scheduler.set_timesteps(steps)
        expected = diffusers_loop(scheduler, model, noise, scheduler.timesteps[:-1], eta=0.0)
        out = ve_to_vp(ddim(model, vp_to_ve(noise, sigmas[0]), sigmas), sigmas[-1])
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)  # diffusers keeps float32 alphas

        scheduler = diffusers.PNDMScheduler(skip_prk_steps=True, **kw)
        scheduler.set_timesteps(steps)  # 951, 901, 901, 851, ...: the repeat is the warm-up's second call
        expected = diffusers_loop(scheduler, model, noise, scheduler.timesteps[:-1])
        out = ve_to_vp(plms(model, vp_to_ve(noise, sigmas[0]), sigmas), sigmas[-1])
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
def test_unipc_matches_diffusers_on_integer_timesteps(model, noise, variant):
    """diffusers' UniPC (order 3, lower_order_final, final sigma = sigma_min) on its rounded linspace timesteps.

    A1111's grid differs: continuous time, so fractional timesteps, and len(timesteps) steps. diffusers'
    defaults also differ (bh2, order 2, final sigma 0).
    """
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.UniPCMultistepScheduler(
        solver_order=3, solver_type=variant, final_sigmas_type="sigma_min", **SD_SCHEDULER
    )
    scheduler.set_timesteps(12)
    sigmas = integer_grid(12, 0)
    assert torch.equal(SD_SIGMAS[scheduler.timesteps.long()], sigmas[:-1])
    expected = diffusers_loop(scheduler, model, noise, scheduler.timesteps)
    out = ve_to_vp(unipc(model, vp_to_ve(noise, sigmas[0]), sigmas, variant=variant), sigmas[-1])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


# --- LCM and Restart ------------------------------------------------------------------------------------------


def test_lcm_jumps_to_denoised_and_renoises(model, noise):
    sigmas = torch.tensor([14.6, 3.0, 0.5, 0.0], dtype=F64)
    noises = [randn(*SHAPE, seed=30 + k) for k in range(2)]
    x = expected = noise * sigmas[0]
    for i in range(3):
        expected = model(expected, sigmas[i].expand(2)) + (sigmas[i + 1] * noises[i] if i < 2 else 0)
    sampler = replay(noises)
    torch.testing.assert_close(lcm(model, x, sigmas, noise_sampler=sampler), expected, rtol=0, atol=0)
    assert len(sampler.calls) == 2  # no noise into sigma 0


def test_restart_below_20_steps_is_heun_on_karras(model, noise):
    sigmas = karras(15, 0.0292, 14.6146)
    x = noise * sigmas[0]
    sampler = replay([])
    torch.testing.assert_close(restart(model, x, sigmas, noise_sampler=sampler), heun(model, x, sigmas))
    assert sampler.calls == []


@pytest.mark.parametrize(("steps", "restart_steps", "restart_times"), [(20, 9, 1), (40, 10, 2)])
def test_restart_splices_restart_segments(model, noise, steps, restart_steps, restart_times):
    sigmas = karras(steps, 0.0292, 14.6146)
    noises = [randn(*SHAPE, seed=40 + k) for k in range(restart_times)]
    sampler, seen = replay(noises), []
    model.calls = 0
    out = restart(model, noise * sigmas[0], sigmas, noise_sampler=sampler, callback=lambda d: seen.append(d))
    assert len(seen) == steps and model.calls == 2 * steps - 1  # Heun everywhere but the Euler step to 0
    base = karras(steps - restart_steps * restart_times, float(sigmas[-2]), float(sigmas[0]))
    lo = int((base - 0.1).abs().argmin())
    assert [round(a, 12) for a, _ in sampler.calls] == [round(float(base[lo]), 12)] * restart_times
    assert all(abs(hi - float(base[int((base - 2).abs().argmin())])) < 1e-12 for _, hi in sampler.calls)
    starts = [float(d["sigma"]) for d in seen]
    assert sum(b > a for a, b in zip(starts, starts[1:], strict=False)) == restart_times
    assert torch.isfinite(out).all()


# --- all samplers ---------------------------------------------------------------------------------------------


def sigmas_for(name: str, model) -> torch.Tensor:
    if name in TIMESTEP_SIGMAS:
        return TIMESTEP_SIGMAS[name](model, 8)
    return karras(22 if name == "restart" else 6, 0.0292, 14.6146)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_reruns_are_bit_identical_and_callbacks_follow_sdlab(model, noise, name):
    fn, sigmas = SAMPLERS[name], sigmas_for(name, model)
    knobs = {"eta": 0.5} if name.startswith("ddim") else {}
    runs = []
    for _ in range(2):
        seen = []
        torch.manual_seed(123)  # the default noise sampler draws from the global RNG
        out = fn(model, vp_to_ve(noise, sigmas[0]), sigmas, callback=seen.append, **knobs)
        runs.append((out, seen))
    assert torch.equal(runs[0][0], runs[1][0])
    seen = runs[0][1]
    assert [d["i"] for d in seen] == list(range(len(seen))) and len(seen) == len(sigmas) - 1
    for d in seen:
        assert set(d) == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert d["x"].shape == d["denoised"].shape == SHAPE
    if name != "restart":  # Restart rebuilds its schedule from 20 steps on
        assert [float(d["sigma"]) for d in seen] == sigmas[:-1].tolist()


def test_bad_input_raises_sdlab_errors(model, noise):
    sigmas = unipc_sigmas(model, 10)
    x = noise * sigmas[0]
    with pytest.raises(SdlabError, match="variant") as info:
        unipc(model, x, sigmas, variant="bh3")
    assert "bh1" in str(info.value) or "bh2" in str(info.value)
    with pytest.raises(SdlabError, match="order"):
        unipc(model, x, sigmas[:3], order=3)
    with pytest.raises(SdlabError, match="within the training table"):
        unipc(model, x, torch.cat([sigmas, torch.zeros(1, dtype=F64)]))
    with pytest.raises(SdlabError, match="strictly decreasing"):
        unipc(model, x, sigmas[[0, 1, 1, 2, 3]])
    with pytest.raises(SdlabError, match="skip type"):
        unipc_sigmas(model, 10, "logsnr")
    with pytest.raises(SdlabError, match="eta"):
        ddim(model, x, sigmas, eta=1.5)
    with pytest.raises(SdlabError, match="steps"):
        ddim_sigmas(model, 0)
    with pytest.raises(SdlabError, match="sigma table"):
        ddim_sigmas(object(), 10)


def test_module_exports(model):
    assert set(SAMPLERS) == {"ddim", "ddim_cfgpp", "plms", "unipc", "lcm", "restart"}
    assert set(TIMESTEP_SIGMAS) == {"ddim", "ddim_cfgpp", "plms", "unipc"}
    assert a1111.CFGPP_SCALE_DIVISOR == 12.5
    assert vp_to_ve(ve_to_vp(torch.ones(1, dtype=F64), 3.0), 3.0).item() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_run_on_cuda_float32_like_cpu_float64(name):
    """A float32 CUDA model table and latent give the CPU float64 result up to float32 rounding."""
    mu, noise, fixed = randn(1, *SHAPE[1:], seed=1), randn(*SHAPE, seed=2), randn(*SHAPE, seed=3)
    cpu = Gaussian(mu)
    gpu = Gaussian(mu.float().cuda())
    gpu.sigmas = SD_SIGMAS.float().cuda()
    knobs = {"eta": 0.5} if name.startswith("ddim") else {}
    results = []
    for model, noise_like in ((cpu, fixed), (gpu, fixed.float().cuda())):
        sigmas = sigmas_for(name, model)
        if name not in TIMESTEP_SIGMAS:
            sigmas = sigmas.to(noise_like)
        x = vp_to_ve(noise.to(noise_like), sigmas[0])
        out = SAMPLERS[name](model, x, sigmas, noise_sampler=lambda s, sn, n=noise_like: n, **knobs)
        assert out.device == noise_like.device and out.dtype == noise_like.dtype
        results.append(out)
    torch.testing.assert_close(results[1].cpu().double(), results[0], rtol=1e-4, atol=1e-4)
