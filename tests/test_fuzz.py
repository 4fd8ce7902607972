"""Fuzzing (Hypothesis): random and hostile arguments to get_sigmas, sample, generate, sweep configs and infotext.

The property everywhere: a call either gives a valid result (finite, the right shape, its spec equal to what ran)
or raises :class:`~sdlab.SdlabError` — never another exception, never a NaN result, and nothing is written for a
call that fails. Bounded to about two minutes on two cores; under ``CI=true`` the examples are derandomized so that
a failure reproduces, elsewhere each run draws new ones (``HYPOTHESIS_PROFILE=ci`` to reproduce CI's).
"""

import math
import os
import string

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import sdlab  # noqa: E402
import sdlab.sweeps as S  # noqa: E402
from sdlab import SdlabError  # noqa: E402
from sdlab.groundtruth import toy_mixture  # noqa: E402
from sdlab.infotext import format_infotext, parse_infotext  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
settings.register_profile("dev", deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

pytestmark = pytest.mark.usefixtures("one_thread")

# --- value strategies -----------------------------------------------------------------------------------------

NASTY_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-300, 1e300, -1e-9, 2.0, 0.5])
NUMBERS = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    NASTY_FLOATS,
)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.just(object()),
    st.just(b"bytes"),
)
VALUES = st.one_of(NUMBERS, JUNK)
STEPS = st.one_of(st.integers(1, 12), st.integers(-5, 0), st.integers(1001, 10**9), VALUES)


def _names(kind: str) -> list[str]:
    if kind == "samplers":
        names = []
        for row in sdlab.list_samplers():
            names += [n for n in [row["a1111"], *row["comfy"]] if n]
        return sorted(set(names))
    return sorted({label for info in sdlab.list_schedules() for label in info.labels})


SAMPLERS = _names("samplers")
SCHEDULES = _names("schedules")
SAMPLER_NAMES = st.one_of(st.sampled_from(SAMPLERS), st.text(string.ascii_letters + " +_", max_size=12), JUNK)
SCHEDULE_NAMES = st.one_of(st.sampled_from(SCHEDULES), st.text(string.ascii_letters + " _", max_size=12), JUNK)
SCHEDULE_OPTIONS = (
    "sigma_min", "sigma_max", "rho", "discard_penultimate", "threshold_noise", "linear_steps", "laplace_mu",
    "laplace_beta", "beta_d", "beta_min", "eps_s", "beta_alpha", "beta_beta", "ays_model",
    "use_old_karras_scheduler_sigmas",
)  # fmt: skip
SAMPLER_OPTIONS = (
    "eta", "s_noise", "s_churn", "s_tmin", "s_tmax", "r", "rtol", "atol", "order", "solver_type", "h_init",
    "r_1", "r_2", "c2", "c3", "ge_gamma", "cfg_pp", "variant", "tau", "s_in",
)  # fmt: skip


def mostly_valid(valid: dict, hostile: dict) -> st.SearchStrategy:
    """Keyword arguments drawn valid, except for at most two that are drawn hostile: so that both the valid path
    (a result to check) and each error path are exercised, rather than nearly every call failing at once."""

    @st.composite
    def build(draw):
        broken = draw(st.sets(st.sampled_from(sorted(hostile)), max_size=2))
        return {name: draw(hostile[name] if name in broken else strategy) for name, strategy in valid.items()}

    return build()


def _check_sigmas(sigmas: torch.Tensor, steps: int) -> None:
    assert isinstance(sigmas, torch.Tensor) and sigmas.ndim == 1
    assert 2 <= len(sigmas) <= steps + 2
    assert torch.isfinite(sigmas).all() and (sigmas >= 0).all()
    assert (sigmas[:-1] >= sigmas[1:]).all(), sigmas


# --- get_sigmas -----------------------------------------------------------------------------------------------


@settings(max_examples=600)
@given(
    args=mostly_valid(
        {
            "schedule": st.sampled_from(SCHEDULES),
            "steps": st.integers(1, 40),
            "sampler": st.one_of(st.none(), st.sampled_from(SAMPLERS)),
            "options": st.dictionaries(
                st.sampled_from(SCHEDULE_OPTIONS), st.floats(0.01, 30) | st.integers(1, 20), max_size=2
            ),
        },
        {
            "schedule": SCHEDULE_NAMES,
            "steps": STEPS,
            "sampler": SAMPLER_NAMES,
            "options": st.dictionaries(st.sampled_from(SCHEDULE_OPTIONS), VALUES, min_size=1, max_size=3),
        },
    )
)
def test_get_sigmas_gives_a_valid_schedule_or_an_sdlab_error(args):
    steps = args["steps"]
    try:
        sigmas = sdlab.get_sigmas(args["schedule"], steps, sampler=args["sampler"], **args["options"])
    except SdlabError:
        return
    _check_sigmas(sigmas, steps)


# --- sample ---------------------------------------------------------------------------------------------------

DENOISER = toy_mixture()


@settings(max_examples=300)
@given(
    args=mostly_valid(
        {
            "sampler": st.sampled_from(SAMPLERS),
            "seeds": st.none(),
            "options": st.dictionaries(st.sampled_from(["eta", "s_noise"]), st.floats(0, 2), max_size=1),
        },
        {
            "sampler": SAMPLER_NAMES,
            "seeds": st.one_of(st.lists(st.integers(-1, 2**33), max_size=3), JUNK),
            "options": st.dictionaries(st.sampled_from(SAMPLER_OPTIONS), VALUES, min_size=1, max_size=2),
        },
    ),
    steps=st.integers(1, 6),
    schedule=st.sampled_from(["karras", "exponential", "normal", "simple", "sgm_uniform"]),
    batch=st.integers(1, 2),
    final_zero=st.booleans(),
)
def test_sample_gives_a_finite_result_or_an_sdlab_error(args, steps, schedule, batch, final_zero):
    sigmas = sdlab.get_sigmas(schedule, steps, DENOISER).double()
    if not final_zero:
        sigmas = sigmas[:-1] if len(sigmas) > 2 else sigmas
    x = torch.randn(batch, DENOISER.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    seeds = args["seeds"]
    try:
        out = sdlab.sample(DENOISER, x * sigmas[0], sigmas, args["sampler"], seeds=seeds, **args["options"])
    except SdlabError:
        return
    assert out.shape == x.shape and torch.isfinite(out).all()


@settings(max_examples=200)
@given(sigmas=st.one_of(st.lists(NUMBERS, max_size=5), JUNK), x=st.one_of(JUNK, st.just(torch.zeros(3))))
def test_sample_with_hostile_sigmas_or_latents(sigmas, x):
    latent = torch.zeros(1, DENOISER.dim, dtype=torch.float64) if x is None else x
    try:
        out = sdlab.sample(DENOISER, latent, sigmas, "Euler")
    except SdlabError:
        return
    assert torch.isfinite(out).all()


# --- generate -------------------------------------------------------------------------------------------------


@settings(max_examples=60)
@given(
    args=mostly_valid(
        {
            "prompt": st.text(max_size=30),
            "sampler": st.sampled_from(["Euler a", "DPM++ 2M Karras", "DDIM", "dpm_fast", "Heun", "LMS", "UniPC"]),
            "schedule": st.sampled_from(["Automatic", "Karras", "beta", "kl_optimal", "Exponential"]),
            "steps": st.integers(1, 4),
            "cfg": st.floats(0, 12),
            "seeds": st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=2),
            "size": st.sampled_from([None, (64, 64), (48, 32)]),
            "extra": st.dictionaries(st.sampled_from(["batch_size", "clip_skip"]), st.integers(1, 2), max_size=1),
        },
        {
            "prompt": JUNK,
            "sampler": SAMPLER_NAMES,
            "schedule": SCHEDULE_NAMES,
            "steps": STEPS,
            "cfg": st.one_of(NUMBERS, JUNK),
            "seeds": st.one_of(st.integers(-5, 2**33), JUNK),
            "size": st.one_of(st.tuples(NUMBERS, NUMBERS), JUNK),
            "extra": st.dictionaries(
                st.sampled_from(["eta", "s_noise", "batch_size", "clip_skip", "rng", "ensd", "start_step", "end_step"]),
                VALUES,
                min_size=1,
                max_size=2,
            ),
        },
    )
)
def test_generate_gives_images_and_a_true_spec_or_an_sdlab_error(args):
    extra, seeds = args.pop("extra"), args["seeds"]
    try:
        result = sdlab.generate(**args, **extra)
    except SdlabError:
        return
    n = 1 if isinstance(seeds, int) else len(seeds)
    assert result.images.shape[0] == n and result.images.shape[1] == 3
    assert torch.isfinite(result.images).all() and torch.isfinite(result.latents).all()
    for spec, seed in zip(result.specs, [seeds] if isinstance(seeds, int) else seeds, strict=True):
        assert spec.seed == seed and spec.steps == args["steps"] and spec.cfg == float(args["cfg"])
        assert spec.sampler == args["sampler"] and spec.schedule == args["schedule"]
        assert (spec.width, spec.height) == tuple(result.images.shape[-1:-3:-1])
        for name, value in extra.items():
            if name in ("eta", "s_noise"):
                assert dict(spec.sampler_options)[name] == value


# --- sweep configs --------------------------------------------------------------------------------------------

CONFIG_KEYS = {
    "prompts": st.one_of(st.lists(st.text(max_size=12), max_size=2), JUNK),
    "seeds": st.one_of(st.lists(st.integers(-2, 2**33), max_size=2), JUNK),
    "samplers": st.one_of(st.lists(SAMPLER_NAMES, max_size=2), JUNK),
    "schedules": st.one_of(st.lists(SCHEDULE_NAMES, max_size=2), JUNK),
    "steps": st.one_of(st.lists(STEPS, max_size=2), JUNK),
    "cfg": st.one_of(st.lists(NUMBERS, max_size=2), NUMBERS, JUNK),
    "size": st.one_of(st.sampled_from(["64x64", "abc", "100000x100000", "0x0", "-8x8"]), JUNK),
    "rng": st.one_of(st.sampled_from(["GPU", "CPU", "NV"]), JUNK),
    "reference": st.one_of(st.sampled_from(["default", "highest", "none", "best"]), JUNK),
    "metrics": st.one_of(st.lists(st.sampled_from(["latent_rmse", "ssim", "fid"]), max_size=2), JUNK),
    "trajectory": st.one_of(st.booleans(), JUNK),
    "sampler_options": st.one_of(st.dictionaries(st.sampled_from(SAMPLER_OPTIONS), VALUES, max_size=2), JUNK),
    "step_decode_every": VALUES,
    "device": st.one_of(st.sampled_from(["cpu", "meta", "cuda", "nonsense"]), JUNK),
    "dtype": st.one_of(st.sampled_from(["float32", "float16", "int8"]), JUNK),
    "model": st.one_of(st.sampled_from(["embedded", "/no/such/file.safetensors"]), JUNK),
    "name": st.one_of(st.text(max_size=8), JUNK),
}


@settings(max_examples=400)
@given(config=st.fixed_dictionaries({}, optional=CONFIG_KEYS))
def test_sweep_configs_expand_or_raise_an_sdlab_error(config):
    try:
        cells = S.expand(config)
    except SdlabError:
        return
    assert cells and len({cell.key() for cell in cells}) == len(cells)


VALID_SAMPLERS = ["Euler", "Euler a", "DDIM", "DPM++ 2M", "dpm_fast", "Heun", "LMS"]


@settings(max_examples=25)
@given(
    samplers=st.lists(st.sampled_from(VALID_SAMPLERS), min_size=1, max_size=2, unique=True),
    steps=st.lists(st.one_of(st.integers(1, 3), STEPS), min_size=1, max_size=2, unique_by=repr),
    options=st.dictionaries(st.sampled_from(["eta", "s_noise", "s_churn"]), VALUES, max_size=1),
)
def test_a_sweep_that_fails_writes_nothing(tmp_path_factory, samplers, steps, options):
    out = tmp_path_factory.mktemp("fuzz") / "out"
    config = {"prompts": ["a red circle"], "seeds": [0], "samplers": samplers, "steps": steps,
              "metrics": ["latent_rmse"], "reference": "none", "sampler_options": options}  # fmt: skip
    try:
        table = S.run_sweep(config, out, progress=False)
    except SdlabError:
        assert not out.exists()
        return
    assert table["cell_key"].nunique() == len(samplers) * len(steps)
    assert table["value"].notna().all()


# --- infotext -------------------------------------------------------------------------------------------------

INFOTEXT_KEYS = ["Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Clip skip", "ENSD",
                 "RNG", "Eta", "Seed resize from", "Variation seed", "Denoising strength", "Hires upscale"]  # fmt: skip
PIECES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(INFOTEXT_KEYS).map(lambda k: f"{k}: "),
    st.sampled_from([", ", ": ", '"', "\\", "\n", "Negative prompt: ", "x", "-1x-1", "512x512", "(a:1.2)", "nan"]),
)


@settings(max_examples=800)
@given(text=st.one_of(st.text(), st.lists(PIECES, max_size=40).map("".join), JUNK))
def test_parse_infotext_reads_any_text_or_raises_an_sdlab_error(text):
    try:
        params = parse_infotext(text)
    except SdlabError:
        return
    assert isinstance(params, dict) and isinstance(params.get("prompt"), str)


@settings(max_examples=300)
@given(
    prompt=st.text(max_size=40),
    negative=st.text(max_size=20),
    steps=st.integers(1, 150),
    cfg=st.floats(0, 30, allow_nan=False).map(lambda v: round(v, 2)),
    seed=st.integers(0, 2**32 - 1),
    sampler=st.sampled_from(["Euler a", "DPM++ 2M", "DDIM", "Heun"]),
    size=st.tuples(st.integers(1, 256).map(lambda v: v * 8), st.integers(1, 256).map(lambda v: v * 8)),
)
def test_infotext_round_trips(prompt, negative, steps, cfg, seed, sampler, size):
    params = {"prompt": prompt, "negative_prompt": negative, "Steps": steps, "Sampler": sampler, "CFG scale": cfg,
              "Seed": seed, "Size": size}  # fmt: skip
    try:
        text = format_infotext(params)
    except SdlabError:
        return
    back = parse_infotext(text, defaults=False)
    for key, value in params.items():
        assert back[key] == (_as_a1111_reads(value) if "prompt" in key else value), (key, text)


def _as_a1111_reads(prompt: str) -> str:
    """A1111 strips each line of a prompt and drops the blank lines before its text."""
    lines = [line.strip() for line in prompt.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)
