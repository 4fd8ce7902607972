"""Sampler names as A1111, ComfyUI and the old k_ forms write them."""

import pytest

from sdlab import SdlabError
from sdlab.samplers.catalogue import A1111_SAMPLERS, SAMPLERS, list_samplers, resolve_sampler

A1111_V110 = [
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a", "Euler",
    "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM", "DDIM CFG++", "PLMS", "UniPC",
    "LCM",
]  # fmt: skip


def test_all_twenty_a1111_samplers_are_listed():
    assert sorted(A1111_SAMPLERS) == sorted(A1111_V110)


@pytest.mark.parametrize("name", A1111_V110)
def test_a1111_names_resolve_with_a1111_front_end(name):
    r = resolve_sampler(name)
    assert r.front_end == "a1111" and r.info.a1111 == name and r.label == name


@pytest.mark.parametrize(
    ("name", "key", "schedule"),
    [
        ("DPM++ 2M Karras", "dpmpp_2m", "karras"),
        ("DPM++ SDE Karras", "dpmpp_sde", "karras"),
        ("DPM2 a Karras", "dpm_2_ancestral", "karras"),
        ("DPM++ 2M SDE Exponential", "dpmpp_2m_sde", "exponential"),
        ("LMS Karras", "lms", "karras"),
        ("Euler a", "euler_ancestral", None),
    ],
)
def test_legacy_names_split_into_sampler_and_schedule(name, key, schedule):
    r = resolve_sampler(name)
    assert (r.info.key, r.schedule) == (key, schedule)


@pytest.mark.parametrize(
    ("name", "key"),
    [("k_euler_a", "euler_ancestral"), ("k_euler_ancestral", "euler_ancestral"), ("k_lms", "lms"),
     ("k_dpm_2_a", "dpm_2_ancestral"), ("k_dpmpp_2m", "dpmpp_2m"), ("k_heun", "heun")],
)  # fmt: skip
def test_old_k_names(name, key):
    assert resolve_sampler(name).info.key == key


def test_comfy_names_carry_comfy_defaults():
    assert resolve_sampler("dpm_fast").front_end == "comfy"
    assert "eta" not in resolve_sampler("dpm_fast").options  # ComfyUI passes no eta: eta 0
    assert resolve_sampler("DPM fast").options["eta"] == 1.0  # A1111 passes eta_ancestral = 1
    assert resolve_sampler("dpmpp_2m_sde_gpu").info.key == "dpmpp_2m_sde"
    assert resolve_sampler("dpmpp_2m_sde_heun").options["solver_type"] == "heun"
    assert resolve_sampler("ddim").info.key == "ddim_comfy"  # ComfyUI's ddim is Euler
    assert resolve_sampler("DDIM").info.key == "ddim"


def test_discard_penultimate_follows_each_front_end():
    assert resolve_sampler("DPM2").discard_penultimate and resolve_sampler("dpm_2").discard_penultimate
    assert resolve_sampler("DPM++ 3M SDE").discard_penultimate  # A1111 option
    assert not resolve_sampler("dpmpp_3m_sde").discard_penultimate  # not in ComfyUI's set
    assert resolve_sampler("uni_pc").discard_penultimate and not resolve_sampler("UniPC").discard_penultimate


def test_automatic_defaults_match_a1111():
    karras = {"DPM++ 2M", "DPM++ SDE", "DPM++ 2S a", "DPM2", "DPM2 a", "Restart"}
    exponential = {"DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"}
    for name in A1111_V110:
        info = resolve_sampler(name).info
        want = "karras" if name in karras else "exponential" if name in exponential else "uniform"
        assert info.default_schedule == want, name


def test_unknown_name_suggests_the_closest():
    with pytest.raises(SdlabError, match="Euler a"):
        resolve_sampler("Eular a")
    with pytest.raises(SdlabError):
        resolve_sampler("")


def test_keys_are_unique_and_comfy_names_map_once():
    seen = {}
    for info in SAMPLERS.values():
        for name in info.comfy:
            assert name not in seen, (name, seen.get(name), info.key)
            seen[name] = info.key
    assert len(seen) >= 39  # ComfyUI's KSAMPLER_NAMES + ddim + uni_pc(+bh2), minus the ones sdlab leaves out


def test_front_end_rules_are_properties_of_the_resolved_sampler():
    assert resolve_sampler("DDIM").own_timesteps and resolve_sampler("PLMS").own_timesteps
    assert not resolve_sampler("ddim").own_timesteps  # ComfyUI's ddim is Euler on the schedule
    assert resolve_sampler("DPM fast").uses_model_sigma_range and not resolve_sampler("dpm_fast").uses_model_sigma_range
    assert resolve_sampler("DDIM CFG++").cfg_divisor == 12.5 and resolve_sampler("DDIM").cfg_divisor == 1
    assert resolve_sampler("LCM").lcm_denoiser and not resolve_sampler("lcm").lcm_denoiser
    assert resolve_sampler("LCM").has_own_rules and not resolve_sampler("DPM++ 2M").has_own_rules
    r = resolve_sampler("Euler a")
    assert r.flavour == r.front_end == "a1111"  # the old name stays readable for one release


def test_order_and_evaluations_are_numbers_and_the_table_shows_them_as_text():
    assert SAMPLERS["dpmpp_2m"].order_range == (2, 2) and SAMPLERS["dpmpp_2m"].evals_per_step == 1
    assert SAMPLERS["heunpp2"].order_range == (2, 3) and SAMPLERS["dpm_adaptive"].evals_per_step is None
    diffusers = resolve_sampler("diffusers:EulerDiscreteScheduler").info
    assert diffusers.order_range is None and diffusers.evals_per_step is None
    # no string twins on the API: the numbers are the one home, the table formats them for display
    assert not any(hasattr(SAMPLERS["euler"], name) for name in ("order", "nfe_per_step"))
    rows = {row["key"]: row for row in list_samplers(available_only=False)}
    assert (rows["dpmpp_2m"]["order"], rows["dpmpp_2m"]["nfe_per_step"]) == ("2", "1")
    assert rows["heunpp2"]["order"] == "2-3" and rows["dpm_adaptive"]["nfe_per_step"] == "adaptive"


def test_catalogue_holds_the_functions_themselves():
    from sdlab.samplers import comfy, kdiffusion

    assert SAMPLERS["euler"].fn is kdiffusion.euler and SAMPLERS["euler"].func == "kdiffusion:euler"
    assert SAMPLERS["deis"].fn is comfy.deis and SAMPLERS["deis"].func == "comfy:deis"
    assert SAMPLERS["dpm_fast"].func == "kdiffusion:dpm_fast"
