"""Option domains (issue #14 defects 9-11, #15 defect 1): every sampler and schedule option is checked in one place.

One case per reported defect (each failed before the fix), the table-driven guarantee that every keyword option of
every sampler in the catalogue has a domain entry (so a new option cannot be added without one), and the property
of get_sigmas: for accepted input a finite, strictly decreasing schedule, otherwise an SdlabError.
"""

from __future__ import annotations

import inspect
import math
import random
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import sdlab
from sdlab import SdlabError
from sdlab.schedules import list_schedules, sd_training_sigmas

pytestmark = pytest.mark.usefixtures("one_thread")


class Gaussian:
    """Exact denoiser of N(0, 0.25 I) data, with SD's discrete sigma table (as a loaded model has)."""

    def __init__(self, table: bool = True) -> None:
        if table:
            self.sigmas = sd_training_sigmas()
            self.sigma_min, self.sigma_max = float(self.sigmas[0]), float(self.sigmas[-1])

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **cond: Any) -> torch.Tensor:
        return 0.25 * x / (0.25 + sigma.to(x)[:, None, None, None] ** 2)


@pytest.fixture(scope="module")
def model() -> Gaussian:
    return Gaussian()


def noise(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 4, 4, 4, generator=torch.Generator().manual_seed(0))


def karras(steps: int = 6) -> torch.Tensor:
    return sdlab.get_sigmas("karras", steps)


# ---- A. sampler options: type and range, in one place ------------------------------------------------------


def test_nan_eta_is_refused_instead_of_running_as_infinite_eta(model):
    sigmas = karras()
    with pytest.raises(SdlabError, match="eta.*NaN") as err:
        sdlab.sample(model, noise() * sigmas[0], sigmas, "Euler a", eta=float("nan"))
    assert err.value.context["option"] == "eta" and err.value.context["sampler"] == "Euler a"
    assert math.isnan(err.value.context["got"]) and ">= 0" in err.value.hint


@pytest.mark.parametrize("value", ["0.5", "abc", [0.5], True])
def test_option_of_the_wrong_type_names_the_option_not_a_type_error_inside(model, value):
    sigmas = karras()
    with pytest.raises(SdlabError, match="'eta' must be a finite number") as err:
        sdlab.sample(model, noise() * sigmas[0], sigmas, "Euler a", eta=value)
    assert err.value.context["option"] == "eta" and err.value.context["got"] == value
    if value == "0.5":
        assert "eta=0.5" in err.value.hint and "not as the string" in err.value.hint


@pytest.mark.parametrize(
    ("sampler", "options", "option"),
    [
        ("DPM adaptive", {"rtol": -1}, "rtol"),  # ran 102 model calls
        ("DPM adaptive", {"atol": 0.0}, "atol"),
        ("DPM adaptive", {"h_init": 0.0}, "h_init"),  # h stays 0: the loop would never end
        ("DPM adaptive", {"order": 4}, "order"),
        ("DPM adaptive", {"accept_safety": 3.0}, "accept_safety"),  # no step reaches it: it would never finish
        ("Euler", {"s_churn": -1.0}, "s_churn"),
        ("Euler", {"s_tmax": float("nan")}, "s_tmax"),
        ("Euler a", {"s_noise": float("inf")}, "s_noise"),
        ("Euler a", {"eta": -0.5}, "eta"),
        ("DPM++ SDE", {"r": 0.0}, "r"),
        ("DPM++ 2M SDE", {"solver_type": "Heun"}, "solver_type"),
        ("DDIM", {"eta": 1.5}, "eta"),  # DDIM's direction term needs eta <= 1
        ("LMS", {"order": 2.0}, "order"),
        ("UniPC", {"variant": "bh3"}, "variant"),
        ("UniPC", {"lower_order_final": "yes"}, "lower_order_final"),
        ("seeds_2", {"r": 1.5}, "r"),
        ("sa_solver", {"corrector_order": 7}, "corrector_order"),
        ("er_sde", {"noise_scaler": 3.0}, "noise_scaler"),
        ("Restart", {"restart_list": {0.1: (10, 1)}}, "restart_list"),
    ],
)
def test_out_of_domain_sampler_options_are_refused_before_any_model_call(sampler, options, option):
    calls = []

    def counting(x, sigma, **cond):
        calls.append(1)
        return Gaussian(table=False)(x, sigma)

    sigmas = karras()
    with pytest.raises(SdlabError, match=option) as err:
        sdlab.sample(counting, noise() * sigmas[0], sigmas, sampler, **options)
    assert err.value.context["option"] == option and err.value.hint and not calls


def test_seeds_3_stage_ratios_must_be_ordered(model):
    sigmas = karras()
    with pytest.raises(SdlabError, match="r_1 must not exceed r_2") as err:
        sdlab.sample(model, noise() * sigmas[0], sigmas, "seeds_3", r_1=0.8, r_2=0.2)
    assert err.value.context["got"] == {"r_1": 0.8, "r_2": 0.2}


def test_legitimate_upstream_values_are_kept(model):
    sigmas = karras()
    x = noise() * sigmas[0]
    for sampler, options in [
        ("Euler a", {"eta": 1.7}),  # ancestral eta above 1: the noise is capped at the next sigma
        ("DPM++ 2M SDE", {"eta": 2.0, "s_noise": 0.0}),
        ("Euler", {"s_churn": 50.0, "s_tmin": 0.5, "s_tmax": float("inf")}),
        ("DPM adaptive", {"pcoeff": 0.3, "icoeff": 0.6, "dcoeff": 0.1, "accept_safety": 0.0, "eta": 0.0}),
        ("DPM++ SDE", {"r": 1.0}),
        ("DDIM", {"eta": 1}),
        ("gradient_estimation", {"ge_gamma": 0.5}),
    ]:
        out = sdlab.sample(model, x, sigmas, sampler, **options)
        assert torch.isfinite(out).all(), (sampler, options)


def test_check_sampler_options_is_public_and_returns_what_would_run():
    from sdlab.samplers import check_sampler_options

    assert check_sampler_options("Euler a") == {"eta": 1.0}  # A1111's eta_ancestral default
    assert check_sampler_options("euler_ancestral", {"eta": 0.5}) == {"eta": 0.5}
    assert check_sampler_options("DPM++ 2M SDE Heun", {"eta": 0.5}) == {"solver_type": "heun", "eta": 0.5}
    with pytest.raises(SdlabError, match="does not take option") as err:
        check_sampler_options("Euler", {"eta": 0.5})
    assert err.value.context == {"sampler": "Euler", "option": "eta"} and "s_churn" in err.value.hint
    with pytest.raises(SdlabError, match="unknown sampler"):
        check_sampler_options("Eular a", {})
    with pytest.raises(SdlabError, match="mapping"):
        check_sampler_options("Euler", [("eta", 0.5)])  # type: ignore[arg-type]


# ---- A. schedule options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "options", "pattern"),
    [
        ("vp", {"beta_d": -100}, "beta_d"),  # returned NaN
        ("vp", {"eps_s": 0.0}, "eps_s"),  # a positive sigma rounds to 0
        ("vp", {"beta_d": 0, "beta_min": 0}, "both 0"),
        ("vp", {"beta_d": 5000}, "overflows"),
        ("linear_quadratic", {"threshold_noise": 2.0}, "threshold_noise"),  # negative, increasing sigmas
        ("linear_quadratic", {"threshold_noise": 0.7}, "threshold_noise.*overshoot"),  # likewise, inside (0, 1)
        ("linear_quadratic", {"linear_steps": 0}, "linear_steps"),  # divided by zero
        ("linear_quadratic", {"linear_steps": 10}, "linear_steps"),  # no quadratic part: divided by zero
        ("laplace", {"laplace_beta": 0}, "laplace_beta"),  # constant sigmas
        ("laplace", {"laplace_mu": -10.0}, "clamps"),  # every sigma clamped to sigma_min
        ("karras", {"rho": 1e-9}, "rho"),  # overflowed
        ("karras", {"rho": 0.1}, "rho.*too small"),  # sigma_min lost to rounding: a second 0
        ("karras", {"rho": "7"}, "rho.*string"),
        ("karras", {"use_old_karras_scheduler_sigmas": "no"}, "use_old_karras_scheduler_sigmas"),
        ("karras", {"discard_penultimate": 1}, "discard_penultimate"),
        ("karras", {"sigma_min": True}, "sigma_min"),
        ("karras", {"dtype": torch.int64}, "dtype"),
        ("karras", {"device": "nonsense"}, "device"),
        ("normal", {"sigma_min": 20.0, "sigma_max": 30.0}, "beyond the model's training range"),  # constant
        ("polyexponential", {"rho": 100.0}, "squeezes"),  # the last sigmas all equal sigma_min
    ],
)
def test_out_of_domain_schedule_options_are_refused(schedule, options, pattern):
    with pytest.raises(SdlabError, match=pattern) as err:
        sdlab.get_sigmas(schedule, 10, **options)
    assert err.value.hint and err.value.context["schedule"] == schedule


def test_check_schedule_options_runs_the_same_checks_without_computing():
    from sdlab.samplers.sigmas import check_schedule_options
    from sdlab.schedules import MAX_STEPS

    assert check_schedule_options("Karras", 20) == "karras"
    assert check_schedule_options("Automatic", 20, sampler="DPM++ 2M SDE") == "exponential"
    assert check_schedule_options("Automatic", 20, sampler="DDIM") == "ddim timesteps"
    assert check_schedule_options("linear_quadratic", 10, threshold_noise=0.3, linear_steps=3) == "linear_quadratic"
    for bad in ({"threshold_noise": 0.7}, {"laplace_beta": -1.0}, {"no_such_option": 1}, {"sampler": "nope"}):
        with pytest.raises(SdlabError):
            check_schedule_options("linear_quadratic", 10, **bad)
    for steps in (0, MAX_STEPS + 1, 2.0, True, "20"):
        with pytest.raises(SdlabError, match="steps"):
            check_schedule_options("karras", steps)


def test_check_schedule_options_refuses_exactly_what_get_sigmas_refuses():
    from sdlab.schedules import check_schedule_options

    continuous = SimpleNamespace(sigma_min=0.002, sigma_max=80.0)  # no table: the table-based schedules refuse
    for info in list_schedules():
        if info.name == "automatic":
            continue
        for model, steps in [(None, 1), (None, 7), (continuous, 7)]:
            try:
                sdlab.get_sigmas(info.name, steps, model)
                computed = None
            except SdlabError as err:
                computed = err.message
            try:
                check_schedule_options(info.name, steps, model)
                checked = None
            except SdlabError as err:
                checked = err.message
            assert checked == computed, (info.name, steps, model)


def test_laplace_needs_two_steps_and_simple_at_most_the_table():
    with pytest.raises(SdlabError, match="steps=1 has no step"):
        sdlab.get_sigmas("laplace", 1)
    assert len(sdlab.get_sigmas("simple", 1000)) == 1001
    with pytest.raises(SdlabError, match="repeat"):
        sdlab.get_sigmas("simple", 1001)


def _schedule_is_valid(sigmas: torch.Tensor, ends_in_zero: bool) -> None:
    assert sigmas.ndim == 1 and len(sigmas) >= 2 and torch.isfinite(sigmas).all() and (sigmas >= 0).all()
    positive = sigmas[sigmas > 0]
    assert len(positive) >= len(sigmas) - 1 and (positive[1:] < positive[:-1]).all(), sigmas
    if ends_in_zero:
        assert float(sigmas[-1]) < 1e-4


def _draw(rng: random.Random, name: str) -> Any:
    """A value from inside the option's domain (log-uniform over its useful range, extremes included)."""
    pick = {
        "sigma_min": lambda: 10 ** rng.uniform(-4, 1),
        "sigma_max": lambda: 10 ** rng.uniform(-1, 3),
        "rho": lambda: rng.choice([0, None, 10 ** rng.uniform(-2, 3)]),
        "beta_alpha": lambda: 10 ** rng.uniform(-3, 2),
        "beta_beta": lambda: 10 ** rng.uniform(-3, 2),
        "threshold_noise": lambda: rng.uniform(1e-6, 0.999),
        "linear_steps": lambda: rng.randint(1, 40),
        "laplace_mu": lambda: rng.uniform(-10, 10),
        "laplace_beta": lambda: 10 ** rng.uniform(-3, 1),
        "beta_d": lambda: rng.uniform(0, 1500),
        "beta_min": lambda: rng.uniform(0, 800),
        "eps_s": lambda: rng.uniform(1e-9, 0.999),
        "discard_penultimate": lambda: rng.random() < 0.3,
        "use_old_karras_scheduler_sigmas": lambda: rng.random() < 0.2,
        "ays_model": lambda: rng.choice(["sd1", "sdxl", "svd"]),
    }
    return pick[name]()


def test_accepted_schedule_input_gives_a_valid_schedule_else_an_sdlab_error():
    """The guarantee: finite, strictly decreasing while positive, at most a final 0; or SdlabError, nothing else."""
    from sdlab.schedules import SCHEDULE_OPTION_DOMAINS

    rng = random.Random(14)
    infos = [info for info in list_schedules() if info.name != "automatic"]
    accepted = refused = 0
    for _ in range(400):
        info = rng.choice(infos)
        steps = rng.choice([1, 2, 3, 5, 10, 33, rng.randint(1, 300)])
        options = {name: _draw(rng, name) for name in rng.sample(sorted(SCHEDULE_OPTION_DOMAINS), 4)}
        dtype = rng.choice([torch.float32, torch.float64, torch.float16])
        try:
            sigmas = sdlab.get_sigmas(info.name, steps, dtype=dtype, **options)
        except SdlabError:
            refused += 1
            continue
        accepted += 1
        assert sigmas.dtype == dtype
        _schedule_is_valid(sigmas, info.ends_in_zero)
    assert accepted > 200 and refused > 10  # most in-domain draws work; the rest are refused, never broken


# ---- B. sample(): seeds, sigmas, x --------------------------------------------------------------------------


def test_one_seed_for_a_batch_of_two_is_refused(model):
    sigmas = karras()
    with pytest.raises(SdlabError, match="one entry per image") as err:
        sdlab.sample(model, noise(2) * sigmas[0], sigmas, "Euler a", seeds=[0])
    assert err.value.context["seeds"] == 1 and err.value.context["batch"] == 2


@pytest.mark.parametrize("seeds", ["ab", b"ab", 7, {0: 1, 1: 2}])
def test_seeds_that_are_not_a_list_are_refused_whole(model, seeds):
    sigmas = karras()
    with pytest.raises(SdlabError, match="seeds must be a list of ints") as err:
        sdlab.sample(model, noise(2) * sigmas[0], sigmas, "Euler a", seeds=seeds)
    assert err.value.context["got"] == seeds  # the value as given, not its first letter


def test_sigmas_as_a_list_of_numbers_are_converted(model):
    sigmas = karras()
    x = noise() * sigmas[0]
    want = sdlab.sample(model, x, sigmas, "DPM++ 2M")
    assert torch.equal(sdlab.sample(model, x, sigmas.tolist(), "DPM++ 2M"), want)
    assert torch.equal(sdlab.sample(model, x, tuple(sigmas.tolist()), "DPM++ 2M"), want)
    with pytest.raises(SdlabError, match="sigmas must be numbers: the list holds a str"):
        sdlab.sample(model, x, [14.6, "0"], "DPM++ 2M")
    with pytest.raises(SdlabError, match="not a str"):
        sdlab.sample(model, x, "karras", "DPM++ 2M")


@pytest.mark.parametrize("shape", [(16,), (0, 4, 4, 4)])
def test_x_without_a_batch_dimension_is_refused(model, shape):
    sigmas = karras()
    with pytest.raises(SdlabError, match="batch") as err:
        sdlab.sample(model, torch.zeros(shape), sigmas, "Euler")
    assert err.value.context["shape"] == shape


def test_x_that_is_not_a_float_tensor_is_refused(model):
    sigmas = karras()
    with pytest.raises(SdlabError, match="x must be a tensor"):
        sdlab.sample(model, noise().numpy(), sigmas, "Euler")
    with pytest.raises(SdlabError, match="floating-point"):
        sdlab.sample(model, torch.zeros(2, 4, 4, 4, dtype=torch.long), sigmas, "Euler")
    with pytest.raises(SdlabError, match="before sampling started"):
        sdlab.sample(model, torch.full((2, 4, 4, 4), float("nan")), sigmas, "Euler")


# ---- C. messages that name the real cause -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sigmas", "pattern"),
    [
        (torch.zeros(5), "all 0"),
        (torch.full((5,), 3.0), "constant"),
        (torch.tensor([3.0, 0.0, 0.0]), "reach 0 before the last"),
    ],
)
def test_degenerate_sigmas_say_so_not_float16(model, sigmas, pattern):
    with pytest.raises(SdlabError, match=pattern) as err:
        sdlab.sample(model, noise(), sigmas, "DPM++ 2M")
    assert "float16" not in str(err.value)


@pytest.mark.parametrize("sampler", ["dpm_fast", "dpm_adaptive", "DPM fast", "DPM adaptive"])
def test_dpm_fast_on_one_step_says_it_needs_two(sampler):
    no_table = Gaussian(table=False)  # a continuous model: A1111 has no range of its own to pass
    sigmas = sdlab.get_sigmas("karras", 1)
    with pytest.raises(SdlabError, match="needs >= 2 steps") as err:
        sdlab.sample(no_table, noise() * sigmas[0], sigmas, sampler)
    assert "low to high" not in str(err.value) and "float16" not in str(err.value)


def test_dpm_fast_on_one_step_runs_where_a1111_passes_the_model_range(model):
    sigmas = sdlab.get_sigmas("karras", 1, model)
    assert torch.isfinite(sdlab.sample(model, noise() * sigmas[0], sigmas, "DPM fast")).all()


@pytest.mark.parametrize("sampler", ["DDIM", "PLMS", "DDIM CFG++"])
def test_ddim_at_one_step_names_the_single_timestep(model, sampler):
    from sdlab.generation import schedule_for

    sigmas, _ = schedule_for(sampler, "Automatic", 1, model)  # what generate(sampler=..., steps=1) runs
    with pytest.raises(SdlabError, match="single timestep") as err:
        sdlab.sample(model, noise() * sigmas[0], sigmas, sampler)
    assert "get_sigmas" not in err.value.hint and "steps >= 2" in err.value.hint
    with pytest.raises(SdlabError, match="single timestep"):
        sdlab.get_sigmas("Automatic", 1, sampler=sampler)


# ---- D. get_sigmas("Automatic", sampler=...) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampler", "expected"),
    [
        ("Euler", "uniform"),
        ("Euler a", "uniform"),
        ("DPM++ 2M", "karras"),
        ("DPM2", "karras"),  # with A1111's discard-penultimate flag
        ("DPM++ 2M SDE", "exponential"),
        ("DPM++ 3M SDE", "exponential"),
        ("LMS Karras", "karras"),  # the legacy name carries its schedule
        ("dpmpp_2m", "karras"),  # a ComfyUI name: the algorithm's A1111 default
        ("DDIM", None),  # A1111's own timesteps
        ("PLMS", None),
        ("UniPC", None),
    ],
)
def test_automatic_schedule_resolves_for_every_kind_of_sampler(sampler, expected):
    from sdlab.generation import schedule_for

    table_model = SimpleNamespace(sigmas=sd_training_sigmas())
    got = sdlab.get_sigmas("Automatic", 10, sampler=sampler)
    want, name = schedule_for(sampler, "Automatic", 10, table_model)  # what generate runs on SD 1.x
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(sdlab.get_sigmas("Automatic", 10, table_model, sampler=sampler), want, rtol=0, atol=0)
    if expected is not None:
        assert name == expected
        discard = sdlab.samplers.resolve_sampler(sampler).discard_penultimate
        torch.testing.assert_close(got, sdlab.get_sigmas(expected, 10, discard_penultimate=discard))


def test_automatic_timesteps_need_a_table_model():
    continuous = SimpleNamespace(sigma_min=0.002, sigma_max=80.0)
    with pytest.raises(SdlabError, match="fixed timesteps"):
        sdlab.get_sigmas("Automatic", 10, continuous, sampler="DDIM")
    assert len(sdlab.get_sigmas("Automatic", 10, continuous, sampler="DPM++ 2M")) == 11


# ---- E. the NaN guard still names sampler, step and sigma ---------------------------------------------------


def test_nan_in_the_final_sample_names_step_and_sigma(model):
    def silent(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None):
        return x * float("nan")  # never calls the callback: only the final check sees it

    sigmas = karras()
    with pytest.raises(SdlabError, match="final sample") as err:
        sdlab.sample(model, noise() * sigmas[0], sigmas, silent)
    assert err.value.context["sampler"] == "silent"
    assert err.value.context["step"] == len(sigmas) - 1 and err.value.context["sigma"] == 0.0


def test_nan_during_sampling_still_names_step_and_sigma_after_the_option_checks(model):
    sigmas = karras()

    def broken(x, sigma, **cond):
        return model(x, sigma) * (float("nan") if float(sigma[0]) < 1.0 else 1.0)

    with pytest.raises(SdlabError, match="NaN") as err:
        sdlab.sample(broken, noise() * sigmas[0], sigmas, "Euler a", eta=0.5, seeds=[1, 2])
    assert err.value.context["sampler"] == "Euler a" and err.value.context["sigma"] < 1.0
    assert err.value.context["step"] is not None


# ---- the table: every option of every sampler has a domain ----------------------------------------------------


def _functions() -> list[tuple[str, Any]]:
    from sdlab.samplers.catalogue import SAMPLERS
    from sdlab.samplers.diffusers_engine import sample_diffusers

    return [(info.key, info.fn) for info in SAMPLERS.values()] + [("diffusers", sample_diffusers)]


def _keyword_options(fn: Any) -> dict[str, Any]:
    from sdlab.samplers import sampler_options

    params = inspect.signature(fn).parameters
    return {
        name: params[name].default for name in sampler_options(fn) if params[name].kind is not params[name].VAR_KEYWORD
    }


@pytest.mark.parametrize(("key", "fn"), _functions(), ids=[k for k, _ in _functions()])
def test_every_keyword_option_of_every_sampler_has_a_domain(key, fn):
    from sdlab.samplers.domains import domains_for

    domains = domains_for(fn)
    assert domains is not None, f"{key}: add its function to SAMPLER_OPTION_DOMAINS"
    options = _keyword_options(fn)
    assert set(options) == set(domains), f"{key}: options {sorted(options)} vs domains {sorted(domains)}"
    for name, default in options.items():  # the function's own defaults lie in their domains
        if default is not inspect.Parameter.empty:
            assert domains[name].problem(default) is None, (key, name, default)


def test_front_end_defaults_lie_in_their_domains():
    from sdlab.samplers import check_sampler_options
    from sdlab.samplers.catalogue import SAMPLERS

    for info in SAMPLERS.values():
        for name in (info.a1111, *info.a1111_aliases, *info.comfy, info.key):
            if name:
                check_sampler_options(name)  # A1111's eta 1, ComfyUI's solver_type ... all accepted


def test_every_schedule_option_has_a_domain_and_its_default_lies_in_it():
    from sdlab.options import Domain
    from sdlab.schedules import SCHEDULE_OPTION_DOMAINS, get_sigmas

    read = {option for info in list_schedules() for option in info.options} | {"use_old_karras_scheduler_sigmas"}
    keywords = {
        name: p.default
        for name, p in inspect.signature(get_sigmas).parameters.items()
        if p.kind is p.KEYWORD_ONLY and name not in ("sampler", "device", "dtype")  # checked on their own
    }
    assert set(SCHEDULE_OPTION_DOMAINS) == read | set(keywords)
    assert all(isinstance(d, Domain) for d in SCHEDULE_OPTION_DOMAINS.values())
    for name, default in keywords.items():
        assert SCHEDULE_OPTION_DOMAINS[name].problem(default) is None, name


def test_schedules_floor_resolves_no_sampler_and_points_at_sdlab_get_sigmas():
    from sdlab import options, schedules
    from sdlab.samplers.domains import Domain

    assert Domain is options.Domain  # the sampler tables re-export the floor-0 machinery
    for call in (schedules.get_sigmas, schedules.check_schedule_options):
        with pytest.raises(SdlabError, match="sdlab.schedules.get_sigmas does not resolve samplers") as err:
            call("Automatic", 10, sampler="DPM++ 2M")
        assert "sdlab.get_sigmas" in err.value.hint
    torch.testing.assert_close(
        sdlab.get_sigmas("Automatic", 10, sampler="DPM++ 2M"), schedules.get_sigmas("Karras", 10), rtol=0, atol=0
    )
