"""sdlab.schedules: formulas, lengths, endpoints, published tables, name resolution and bad input.

Reference numbers come from the papers' formulas computed here independently, from NVIDIA's published
Align Your Steps tables and from diffusers' schedulers (installed, no network), never from sdlab itself.
"""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sdlab.errors import SdlabError
from sdlab.schedules import get_sigmas, list_schedules, sd_training_sigmas

SD_MIN, SD_MAX = 0.0291675, 14.614642  # SD 1.x training range (ComfyUI's node defaults)
NAMES = [info.name for info in list_schedules() if info.name != "automatic"]
INFO = {info.name: info for info in list_schedules()}
STEPS = (1, 2, 5, 10, 33)

# NVIDIA's Align Your Steps 10-step schedules, as published (https://research.nvidia.com/labs/toronto-ai/AlignYourSteps)
AYS_SD15 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
AYS_SDXL = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
AYS_SD15_TIMESTEPS = [999, 850, 736, 645, 545, 455, 343, 233, 124, 24, 0]
AYS_SDXL_TIMESTEPS = [999, 845, 730, 587, 443, 310, 193, 116, 53, 13, 0]


@pytest.fixture(scope="module")
def table() -> torch.Tensor:
    return sd_training_sigmas()


def expected_length(name: str, n: int) -> int:
    if name == "laplace":  # ComfyUI's node: n sigmas, no 0
        return n
    if name == "ddim_uniform":  # one sigma per index 1, 1 + T//n, ... below T, then 0
        return len(range(1, 1000, max(1000 // n, 1))) + 1
    return n + 1  # includes A1111's KL Optimal: n+1 sigmas ending at sigma_min, no 0


# ---- formulas ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 10, 40])
@pytest.mark.parametrize(("smin", "smax", "rho"), [(SD_MIN, SD_MAX, 7.0), (0.1, 10.0, 3.0), (0.002, 80.0, 7.0)])
def test_karras_matches_edm_formula(n: int, smin: float, smax: float, rho: float) -> None:
    i = np.arange(n)
    edm = (smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    got = get_sigmas("karras", n, sigma_min=smin, sigma_max=smax, rho=rho, dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), np.append(edm, 0.0), rtol=1e-12)


def test_exponential_polyexponential_kl_formulas() -> None:
    n = 9
    r = np.linspace(0, 1, n)
    got = get_sigmas("exponential", n, sigma_min=0.1, sigma_max=10.0, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got[:-1], 10.0 * (0.1 / 10.0) ** r, rtol=1e-12)
    got = get_sigmas("polyexponential", n, sigma_min=0.1, sigma_max=10.0, rho=2.0, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got[:-1], np.exp(np.log(0.1) + (1 - r) ** 2 * (np.log(10.0) - np.log(0.1))), rtol=1e-12)
    # KL-optimal (arXiv 2407.12173 / A1111 #15608): uniform in arctan(sigma)
    atan = np.arctan(get_sigmas("kl_optimal_comfy", n, dtype=torch.float64).numpy()[:-1])
    np.testing.assert_allclose(
        np.diff(atan), np.full(n - 1, (math.atan(SD_MIN) - math.atan(SD_MAX)) / (n - 1)), rtol=1e-6
    )


# ---- every schedule: length, monotonicity, zero ending -----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_length_monotonic_and_ending(name: str) -> None:
    for n in STEPS:
        if name == "laplace" and n == 1:  # ComfyUI's Laplace: n sigmas and no final 0, so one sigma is no step
            with pytest.raises(SdlabError, match="steps=1 has no step"):
                get_sigmas(name, n)
            continue
        s = get_sigmas(name, n)
        length = expected_length(name, n)
        if name == "beta_comfy":  # repeated timesteps are dropped; none at these small step counts
            assert len(s) <= n + 1
            length = n + 1 if n <= 10 else len(s)
        assert s.shape == (length,), (name, n)
        assert s.dtype == torch.float32 and torch.isfinite(s).all()
        assert (s[1:] < s[:-1]).all(), (name, n, s)
        assert (s >= 0).all()
        assert (s[-1] == 0) == INFO[name].ends_in_zero, (name, n)
        assert (s[:-1] > 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_discard_penultimate_drops_exactly_the_penultimate(name: str) -> None:
    for n in (2, 9):
        full = get_sigmas(name, n + 1)
        got = get_sigmas(name, n, discard_penultimate=True)
        torch.testing.assert_close(got, torch.cat([full[:-2], full[-1:]]), rtol=0, atol=0)


# ---- endpoints ---------------------------------------------------------------------------------------------

STARTS_AT_MAX = [n for n in NAMES if n not in ("ddim_uniform", "vp")]  # DDIM starts at table[1 + k T//n]
ENDS_AT_MIN = ["uniform", "karras", "exponential", "polyexponential", "normal", "kl_optimal_a1111",
               "kl_optimal_comfy", "beta_a1111", "laplace"]  # fmt: skip


@pytest.mark.parametrize("n", [2, 7, 20])
def test_endpoints_default_range(n: int, table: torch.Tensor) -> None:
    for name in STARTS_AT_MAX:
        s = get_sigmas(name, n)
        assert float(s[0]) == pytest.approx(float(table[-1]), rel=1e-4), name  # AYS A1111 table: 14.615
    for name in ENDS_AT_MIN:
        s = get_sigmas(name, n)
        assert float(s[s > 0][-1]) == pytest.approx(float(table[0]), rel=1e-5), name


def test_endpoints_follow_overrides() -> None:
    for info in list_schedules():
        if not info.uses_sigma_range:
            continue
        s = get_sigmas(info.name, 6, sigma_min=0.1, sigma_max=10.0)
        assert float(s[0]) == pytest.approx(10.0, rel=1e-5), info.name
        if info.name in ENDS_AT_MIN:
            assert float(s[s > 0][-1]) == pytest.approx(0.1, rel=1e-5), info.name


def test_overrides_follow_a1111_rules() -> None:
    plain = get_sigmas("karras", 8)
    torch.testing.assert_close(get_sigmas("karras", 8, sigma_min=0, sigma_max=0, rho=0), plain)
    torch.testing.assert_close(get_sigmas("karras", 8, rho=7.0), plain)
    assert not torch.allclose(get_sigmas("karras", 8, rho=3.0), plain)
    torch.testing.assert_close(get_sigmas("polyexponential", 8), get_sigmas("exponential", 8))  # rho 1 default
    old = get_sigmas("karras", 8, use_old_karras_scheduler_sigmas=True)
    assert float(old[0]) == pytest.approx(10.0) and float(old[-2]) == pytest.approx(0.1)
    # A1111's table-only schedules ignore the range, as A1111 does
    for name in ("uniform", "simple", "ddim_uniform", "beta_comfy", "align_your_steps_a1111"):
        torch.testing.assert_close(get_sigmas(name, 8, sigma_min=0.5, sigma_max=5.0), get_sigmas(name, 8))


def test_model_table_and_attributes_are_used() -> None:
    table = sd_training_sigmas(beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    model = SimpleNamespace(sigmas=table)
    s = get_sigmas("Uniform", 10, model)
    assert float(s[0]) == pytest.approx(float(table[-1])) and float(s[-2]) == pytest.approx(float(table[0]))
    continuous = SimpleNamespace(sigma_min=0.002, sigma_max=80.0)  # e.g. an EDM model: no table
    assert float(get_sigmas("karras", 5, continuous)[0]) == pytest.approx(80.0)
    with pytest.raises(SdlabError, match="Uniform"):
        get_sigmas("Uniform", 5, continuous)


# ---- table-based schedules ---------------------------------------------------------------------------------


def test_uniform_at_integer_t_equals_table_entries(table: torch.Tensor) -> None:
    torch.testing.assert_close(get_sigmas("Uniform", 4)[:-1], table[[999, 666, 333, 0]], rtol=1e-6, atol=0)
    torch.testing.assert_close(get_sigmas("Uniform", 10)[:-1], table[list(range(999, -1, -111))], rtol=1e-6, atol=0)
    torch.testing.assert_close(get_sigmas("Uniform", 1000)[:-1], table.flip(0), rtol=1e-6, atol=0)


def test_normal_equals_uniform_and_sgm_drops_the_last_point(table: torch.Tensor) -> None:
    # A1111: sigma_to_t(sigma_max) = 999 and sigma_to_t(sigma_min) = 0 exactly, so Normal == Uniform by default
    for n in (3, 10, 25):
        torch.testing.assert_close(get_sigmas("Normal", n), get_sigmas("Uniform", n), rtol=1e-6, atol=0)
    # SGM Uniform: t = linspace(999, 0, n + 1)[:-1], integers when n divides 999
    torch.testing.assert_close(get_sigmas("SGM Uniform", 9)[:-1], table[list(range(999, 0, -111))], rtol=1e-6, atol=0)


@pytest.mark.parametrize("n", [1, 7, 10, 50, 333])
def test_ddim_picks_training_sigmas_at_stride(n: int, table: torch.Tensor) -> None:
    stride = 1000 // n
    expected = table[1::stride].flip(0)
    torch.testing.assert_close(get_sigmas("DDIM", n)[:-1], expected, rtol=0, atol=0)
    torch.testing.assert_close(get_sigmas("ddim_uniform", n), get_sigmas("DDIM", n), rtol=0, atol=0)


@pytest.mark.parametrize("n", [1, 3, 10, 30])
def test_simple_takes_every_nth_from_the_top(n: int, table: torch.Tensor) -> None:
    idx = [999 - math.floor(i * 1000 / n) for i in range(n)]
    torch.testing.assert_close(get_sigmas("Simple", n)[:-1], table[idx], rtol=0, atol=0)


def test_beta_a1111_and_comfy_differ(table: torch.Tensor) -> None:
    a1111, comfy = get_sigmas("Beta", 10), get_sigmas("beta", 10)
    assert a1111.shape == comfy.shape
    assert not torch.allclose(a1111, comfy, rtol=1e-2)
    assert all(bool((table == s).any()) for s in comfy[:-1])  # ComfyUI looks up training sigmas
    torch.testing.assert_close(get_sigmas("beta_comfy", 10), comfy)
    torch.testing.assert_close(get_sigmas("beta_a1111", 10), a1111)
    # Beta(1, 1) is uniform: A1111's beta becomes a linear ramp smax -> smin
    lin = get_sigmas("Beta", 5, beta_alpha=1.0, beta_beta=1.0, dtype=torch.float64)[:-1]
    np.testing.assert_allclose(lin.numpy(), np.linspace(float(table[-1]), float(table[0]), 5), rtol=1e-6)


def test_kl_optimal_a1111_ends_at_sigma_min_comfy_appends_zero() -> None:
    a1111, comfy = get_sigmas("KL Optimal", 10), get_sigmas("kl_optimal", 10)
    assert len(a1111) == 11 and float(a1111[-1]) == pytest.approx(SD_MIN, rel=1e-4)
    assert len(comfy) == 11 and float(comfy[-1]) == 0.0 and float(comfy[-2]) == pytest.approx(SD_MIN, rel=1e-4)


# ---- Align Your Steps --------------------------------------------------------------------------------------


def test_ays_comfy_reproduces_published_10_step_tables(table: torch.Tensor) -> None:
    sd15 = get_sigmas("AlignYourStepsScheduler", 10, dtype=torch.float64)
    np.testing.assert_allclose(sd15.numpy(), AYS_SD15[:-1] + [0.0], atol=4e-3, rtol=0)
    # ComfyUI's precise values are the SD training sigmas at NVIDIA's published timesteps
    np.testing.assert_allclose(sd15.numpy()[:-1], table[AYS_SD15_TIMESTEPS[:-1]].numpy(), rtol=1e-6)
    sdxl = get_sigmas("align_your_steps_comfy", 10, SimpleNamespace(sigmas=table, is_sdxl=True))
    np.testing.assert_allclose(sdxl.numpy(), AYS_SDXL[:-1] + [0.0], atol=4e-3, rtol=0)
    np.testing.assert_allclose(sdxl.numpy()[:-1], table[AYS_SDXL_TIMESTEPS[:-1]].numpy(), rtol=1e-6)
    svd = get_sigmas("align_your_steps_comfy", 10, ays_model="SVD")
    assert float(svd[0]) == pytest.approx(700.0) and float(svd[-1]) == 0.0


def test_ays_a1111_quirk_published_table_at_11_steps_resampled_otherwise() -> None:
    at11 = get_sigmas("Align Your Steps", 11, dtype=torch.float64).numpy()
    np.testing.assert_allclose(at11, AYS_SD15 + [0.0], rtol=1e-12)
    xl = get_sigmas("Align Your Steps", 11, ays_model="sdxl", dtype=torch.float64).numpy()
    np.testing.assert_allclose(xl, AYS_SDXL + [0.0], rtol=1e-12)
    at10 = get_sigmas("Align Your Steps", 10, dtype=torch.float64).numpy()
    assert len(at10) == 11 and at10[0] == pytest.approx(14.615) and at10[-2] == pytest.approx(0.029)
    # the 10 points lie on the log-linear interpolant of the 11 published sigmas, at linspace(0, 1, 10)
    log_knots = np.log(AYS_SD15)
    for x, sigma in zip(np.linspace(0, 1, 10), at10[:-1], strict=True):
        k = min(int(x * 10), 9)
        frac = x * 10 - k
        assert math.log(sigma) == pytest.approx((1 - frac) * log_knots[k] + frac * log_knots[k + 1], abs=1e-9)
    assert not np.allclose(at10[:-1], AYS_SD15[:-1], rtol=1e-2)  # not the published 10-step schedule


# ---- cross-checks against diffusers (installed, offline) ---------------------------------------------------


diffusers_quiet = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 notice inside diffusers


def _euler(**flags):  # noqa: ANN202
    pytest.importorskip("diffusers")
    from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", **flags)


@diffusers_quiet
def test_training_sigmas(table: torch.Tensor) -> None:
    assert table.shape == (1000,) and table.dtype == torch.float32
    assert (table[1:] > table[:-1]).all()
    assert float(table[0]) == pytest.approx(0.0291675, abs=1e-6)
    assert float(table[-1]) == pytest.approx(14.614642, abs=1e-5)
    assert float(table[0]) == pytest.approx(math.sqrt(0.00085 / (1 - 0.00085)), rel=1e-6)  # sigma_0 from beta_0
    theirs = _euler().sigmas[:-1].flip(0)  # diffusers accumulates alphas in float32: ~1e-5 apart
    torch.testing.assert_close(table, theirs, rtol=5e-5, atol=0)


@diffusers_quiet
@pytest.mark.parametrize(
    ("flag", "name"),
    [("use_karras_sigmas", "Karras"), ("use_exponential_sigmas", "Exponential"), ("use_beta_sigmas", "Beta")],
)
def test_matches_diffusers_sigma_flags(flag: str, name: str) -> None:
    for n in (4, 25):
        scheduler = _euler(**{flag: True})
        scheduler.set_timesteps(n)
        torch.testing.assert_close(get_sigmas(name, n), scheduler.sigmas.float(), rtol=5e-5, atol=0)


@diffusers_quiet
def test_simple_matches_diffusers_trailing_and_ddim_matches_leading(table: torch.Tensor) -> None:
    trailing = _euler(timestep_spacing="trailing")
    trailing.set_timesteps(10)
    torch.testing.assert_close(get_sigmas("Simple", 10), trailing.sigmas.float(), rtol=5e-5, atol=0)
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler

    for n in (10, 20, 50):  # where 1000 // n divides 1000 both pick the same n timesteps
        ddim = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
        ddim.set_timesteps(n)
        torch.testing.assert_close(get_sigmas("DDIM", n)[:-1], table[ddim.timesteps], rtol=0, atol=0)


# ---- names -------------------------------------------------------------------------------------------------


def test_catalogue_names_labels_and_sources() -> None:
    infos = list_schedules()
    names = [i.name for i in infos]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    assert {i.source for i in infos} <= {"A1111", "ComfyUI", "both", "k-diffusion"}
    a1111 = ["Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
             "Align Your Steps", "Simple", "Normal", "DDIM", "Beta"]  # fmt: skip
    comfy = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
             "linear_quadratic", "kl_optimal"]  # fmt: skip
    labels = {label for i in infos for label in i.labels}
    assert set(a1111) <= labels and set(comfy) <= labels
    for info in infos:
        assert info.description and info.to_dict()["name"] == info.name
        if info.name != "automatic":
            for label in info.labels:  # every label resolves to its own schedule
                torch.testing.assert_close(get_sigmas(label, 6), get_sigmas(info.name, 6))


def test_name_resolution_exact_then_loose() -> None:
    torch.testing.assert_close(get_sigmas("KARRAS", 5), get_sigmas("Karras", 5))
    torch.testing.assert_close(get_sigmas("sgm-uniform", 5), get_sigmas("SGM Uniform", 5))
    torch.testing.assert_close(get_sigmas("SGMUniform", 5), get_sigmas("sgm_uniform", 5))
    torch.testing.assert_close(get_sigmas("align your steps", 5), get_sigmas("Align Your Steps", 5))
    with pytest.raises(SdlabError, match="ambiguous") as err:
        get_sigmas("BETA", 5)
    assert "beta_a1111" in str(err.value) and "beta_comfy" in str(err.value)
    with pytest.raises(SdlabError, match="ambiguous"):
        get_sigmas("KL-Optimal", 5)


# ---- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"schedule": "karas", "steps": 10}, r"karas.*did you mean 'karras'"),
        ({"schedule": "Karras", "steps": 0}, r"steps.*Karras"),
        ({"schedule": "Karras", "steps": -3}, r"steps.*Karras"),
        ({"schedule": "Karras", "steps": 10_001}, r"steps.*Karras"),
        ({"schedule": "Karras", "steps": 2.5}, r"integer.*Karras"),
        ({"schedule": "Karras", "steps": True}, r"integer.*Karras"),
        ({"schedule": "Karras", "steps": 10, "sigma_min": -1.0}, r"sigma_min.*Karras"),
        ({"schedule": "Karras", "steps": 10, "sigma_min": float("nan")}, r"sigma_min.*Karras"),
        ({"schedule": "Karras", "steps": 10, "sigma_max": float("inf")}, r"sigma_max.*Karras"),
        ({"schedule": "Karras", "steps": 10, "sigma_min": 5.0, "sigma_max": 2.0}, r"sigma_min.*below.*Karras"),
        ({"schedule": "normal", "steps": 10, "sigma_min": 3.0, "sigma_max": 3.0}, r"sigma_min.*below.*normal"),
        ({"schedule": "Karras", "steps": 10, "rho": -1.0}, r"rho.*Karras"),
        ({"schedule": "Beta", "steps": 10, "beta_alpha": 0.0}, r"beta_alpha.*Beta"),
        ({"schedule": "Karras", "steps": 10, "karras_rho": 3}, r"karras_rho.*Karras"),
        ({"schedule": "Align Your Steps", "steps": 10, "ays_model": "svd"}, r"ays_model.*Align Your Steps"),
        ({"schedule": "Automatic", "steps": 10}, r"Automatic.*sampler="),
    ],
)
def test_bad_input_raises_with_context(kwargs: dict, pattern: str) -> None:
    with pytest.raises(SdlabError, match=pattern) as err:
        get_sigmas(**kwargs)
    assert err.value.hint


def test_bad_model_tables_raise() -> None:
    with pytest.raises(SdlabError, match="ascending.*Uniform"):
        get_sigmas("Uniform", 5, SimpleNamespace(sigmas=sd_training_sigmas().flip(0)))
    with pytest.raises(SdlabError, match="positive"):
        get_sigmas("Uniform", 5, SimpleNamespace(sigmas=torch.tensor([0.0, 1.0, 2.0])))
    with pytest.raises(SdlabError, match="beta_schedule"):
        sd_training_sigmas(beta_schedule="cosine")


def test_dtype_and_device() -> None:
    s = get_sigmas("Karras", 5, dtype=torch.float64, device="cpu")
    assert s.dtype == torch.float64 and s.device.type == "cpu"


def test_one_home_for_the_table_the_mapping_and_the_timesteps():
    from sdlab import schedules
    from sdlab.models import denoisers
    from sdlab.samplers import a1111
    from sdlab.schedules import table, timesteps

    assert denoisers.training_sigmas is table.training_sigmas
    assert a1111.TIMESTEP_SIGMAS is timesteps.TIMESTEP_SIGMAS
    assert schedules.t_to_sigma is table.t_to_sigma and schedules.sigma_to_t is table.sigma_to_t
    assert schedules._resolve is schedules.resolve_schedule  # sdlab.spec still reads the old private name
    sd = sd_training_sigmas()
    d = denoisers.DiscreteSchedule(sd)
    t = torch.tensor([0.0, 1.5, 500.25, 999.0])
    torch.testing.assert_close(d.t_to_sigma(t).double(), table.t_to_sigma(sd, t), rtol=1e-6, atol=0)
    sigmas = table.t_to_sigma(sd, t)
    torch.testing.assert_close(table.sigmas_to_t(sd, sigmas), t.double(), rtol=0, atol=1e-9)
    assert [table.sigma_to_t(sd, float(s)) for s in sigmas] == table.sigmas_to_t(sd, sigmas).tolist()
