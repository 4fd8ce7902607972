"""What values every sampler option may take: one declarative table, checked in one place.

A :class:`~sdlab.options.Domain` says what one option accepts (its type, its range, whether None means "the
default"); the machinery lives in :mod:`sdlab.options` and is re-exported here.
:data:`SAMPLER_OPTION_DOMAINS` gives one for every keyword option of every sdlab sampler function, keyed by the
function ("kdiffusion:euler"); :func:`check_option` raises :class:`~sdlab.errors.SdlabError` naming the option,
the sampler or schedule, the value and the allowed range. ``sdlab.samplers.check_sampler_options`` and
``sdlab.schedules.check_schedule_options`` are the public entry points.

The ranges are what each algorithm needs, never narrower than what its front end accepts for a working run:
eta may exceed 1 for the ancestral samplers (their noise is capped at the next sigma), but not for DDIM (its
direction term's square root turns negative). Values are never converted: ``eta="0.5"`` is refused with a hint,
not read as 0.5.

>>> SAMPLER_OPTION_DOMAINS["kdiffusion:euler_ancestral"]["eta"].describe()
'a finite number >= 0'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdlab.options import Domain, check_option

__all__ = ["Domain", "SAMPLER_OPTION_DOMAINS", "SAMPLER_OPTION_RELATIONS", "check_option", "domains_for"]


# ---------------------------------------------------------------------------------------------------------
# The sampler option table: every keyword option of every sampler function
# ---------------------------------------------------------------------------------------------------------

ETA = Domain.real(0, note="0: no fresh noise; above 1 the ancestral noise is capped at the next sigma")
S_NOISE = Domain.real(0, note="multiplies the fresh noise; 1 is exact")
_CHURN = {
    "s_churn": Domain.real(0, note="0: no churn (Karras et al. 2022, Alg. 2)"),
    "s_tmin": Domain.real(0, note="churn only for sigma >= s_tmin"),
    "s_tmax": Domain.real(0, inf_ok=True, note="churn only for sigma <= s_tmax; default inf"),
    "s_noise": S_NOISE,
}
_ANCESTRAL = {"eta": ETA, "s_noise": S_NOISE}
_DPM_RANGE = {
    "sigma_min": Domain.real(0, low_open=True, none_ok=True, note="None: the smallest positive sigma"),
    "sigma_max": Domain.real(0, low_open=True, none_ok=True, note="None: sigmas[0]"),
}
_DDIM_ETA = Domain.real(0, 1, note="A1111's 'Eta DDIM'; above 1 the direction term's square root turns negative")
_SA_SOLVER = {
    "tau_func": Domain.function("tau(sigma) >= 0; None: 1 between 20 % and 80 % of the training time"),
    "s_noise": S_NOISE,
    "predictor_order": Domain.integer(1, 6, note="ComfyUI's range"),
    "corrector_order": Domain.integer(0, 6, note="0: no corrector; ComfyUI's range"),
    "simple_order_2": Domain.flag(),
}

SAMPLER_OPTION_DOMAINS: dict[str, dict[str, Domain]] = {
    # k-diffusion (sdlab/samplers/kdiffusion.py)
    "kdiffusion:euler": _CHURN,
    "kdiffusion:euler_ancestral": _ANCESTRAL,
    "kdiffusion:heun": _CHURN,
    "kdiffusion:dpm_2": _CHURN,
    "kdiffusion:dpm_2_ancestral": _ANCESTRAL,
    "kdiffusion:lms": {
        "order": Domain.integer(1, note="k-diffusion's default is 4"),
        "denoise_to_zero": Domain.flag("True: the step to sigma 0 returns the denoised prediction (ComfyUI's lms)"),
    },
    "kdiffusion:dpm_fast": {
        **_ANCESTRAL,
        **_DPM_RANGE,
        "n": Domain.integer(1, none_ok=True, note="model evaluations; None: len(sigmas) - 1"),
    },
    "kdiffusion:dpm_adaptive": {
        "order": Domain.integer(2, 3, note="DPM-Solver-12 or -23"),
        "rtol": Domain.real(0, low_open=True, note="relative error tolerance; default 0.05"),
        "atol": Domain.real(0, low_open=True, note="absolute error tolerance; default 0.0078"),
        "h_init": Domain.real(0, low_open=True, note="first step in log-SNR; default 0.05"),
        "pcoeff": Domain.real(note="PID controller; default 0"),
        "icoeff": Domain.real(note="PID controller; default 1"),
        "dcoeff": Domain.real(note="PID controller; default 0"),
        "accept_safety": Domain.real(
            0, 1, note="a step is accepted when the step-size factor reaches it; above 1 it may never finish"
        ),
        **_ANCESTRAL,
        **_DPM_RANGE,
        "return_info": Domain.flag("True returns (x, info)"),
    },
    "kdiffusion:dpmpp_2s_ancestral": _ANCESTRAL,
    "kdiffusion:dpmpp_sde": {**_ANCESTRAL, "r": Domain.real(0, low_open=True, note="sub-step ratio; default 1/2")},
    "kdiffusion:dpmpp_2m": {},
    "kdiffusion:dpmpp_2m_sde": {**_ANCESTRAL, "solver_type": Domain.one_of("midpoint", "heun")},
    "kdiffusion:dpmpp_3m_sde": _ANCESTRAL,
    # A1111's own (sdlab/samplers/a1111.py)
    "a1111:restart": {"s_noise": S_NOISE, "restart_list": Domain("restart_list", none_ok=True)},
    "a1111:ddim": {"eta": _DDIM_ETA},
    "a1111:ddim_cfgpp": {"eta": _DDIM_ETA},
    "a1111:plms": {},
    "a1111:unipc": {
        "variant": Domain.one_of("bh1", "bh2", "vary_coeff"),
        "order": Domain.integer(1, note="at most the number of steps; A1111's default 3"),
        "lower_order_final": Domain.flag(),
    },
    "a1111:lcm": {},
    # ComfyUI's (sdlab/samplers/comfy.py)
    "comfy:euler_cfg_pp": {},
    "comfy:euler_ancestral_cfg_pp": _ANCESTRAL,
    "comfy:heunpp2": _CHURN,
    "comfy:ddpm": {},
    "comfy:ipndm": {"max_order": Domain.integer(1, 4)},
    "comfy:ipndm_v": {"max_order": Domain.integer(1, 4)},
    "comfy:deis": {"max_order": Domain.integer(1, 4), "deis_mode": Domain.one_of("tab")},
    "comfy:res_multistep": {"s_noise": S_NOISE},
    "comfy:res_multistep_cfg_pp": {"s_noise": S_NOISE},
    "comfy:res_multistep_ancestral": _ANCESTRAL,
    "comfy:res_multistep_ancestral_cfg_pp": _ANCESTRAL,
    "comfy:gradient_estimation": {"ge_gamma": Domain.real(note="1 is Euler; ComfyUI's default 2")},
    "comfy:gradient_estimation_cfg_pp": {"ge_gamma": Domain.real(note="1 is Euler; ComfyUI's default 2")},
    "comfy:dpmpp_2m_cfg_pp": {},
    "comfy:dpmpp_2s_ancestral_cfg_pp": _ANCESTRAL,
    "comfy:er_sde": {
        "s_noise": S_NOISE,
        "noise_scaler": Domain.function("lam -> scale; None: ComfyUI's default"),
        "max_stage": Domain.integer(1, 3),
    },
    "comfy:seeds_2": {**_ANCESTRAL, "r": Domain.real(0, 1, low_open=True, note="stage ratio; ComfyUI's range")},
    "comfy:seeds_3": {
        **_ANCESTRAL,
        "r_1": Domain.real(0, 1, low_open=True, note="first stage ratio, at most r_2"),
        "r_2": Domain.real(0, 1, low_open=True, note="second stage ratio, at least r_1"),
    },
    "comfy:sa_solver": {**_SA_SOLVER, "use_pece": Domain.flag()},
    "comfy:sa_solver_pece": _SA_SOLVER,
    "comfy:dpmpp_3m": {},
    "comfy:uni_pc": {"variant": Domain.one_of("bh1", "bh2", note="uni_pc is bh1, uni_pc_bh2 is bh2")},
    "comfy:uni_pc_bh2": {},
    # diffusers' schedulers (sdlab/samplers/diffusers_engine.py); further keyword arguments go to diffusers
    "diffusers_engine:sample_diffusers": {
        "scheduler_class": Domain.text("a diffusers scheduler class name"),
        "generator": Domain("generator", none_ok=True),
    },
}
"""Function ("module:name" inside sdlab.samplers) -> option -> :class:`Domain`."""


def _dpm_range(sigma_min: float | None, sigma_max: float | None) -> str | None:
    if sigma_min is not None and sigma_max is not None and sigma_min == sigma_max:
        return "sigma_min equals sigma_max: there is nothing to integrate"
    return None


def _seeds_3(r_1: float, r_2: float) -> str | None:
    return None if r_1 <= r_2 else "r_1 must not exceed r_2: the stages run from lambda_s + r_1 h to lambda_s + r_2 h"


SAMPLER_OPTION_RELATIONS: dict[str, tuple[tuple[str, ...], Callable[..., str | None]]] = {
    "kdiffusion:dpm_fast": (("sigma_min", "sigma_max"), _dpm_range),
    "kdiffusion:dpm_adaptive": (("sigma_min", "sigma_max"), _dpm_range),
    "comfy:seeds_3": (("r_1", "r_2"), _seeds_3),
}
"""Function -> (the options it joins, a check on their values, defaults filled in: None when fine, else why)."""


def function_key(fn: Callable[..., Any]) -> str | None:
    """The table key of an sdlab sampler function ("kdiffusion:euler"), None for any other callable."""
    module = getattr(fn, "__module__", "") or ""
    if not module.startswith("sdlab.samplers."):
        return None
    return f"{module.removeprefix('sdlab.samplers.')}:{getattr(fn, '__name__', '')}"


def domains_for(fn: Callable[..., Any]) -> dict[str, Domain] | None:
    """The option domains of sampler function ``fn``; None when it is not an sdlab sampler (a custom one)."""
    key = function_key(fn)
    return None if key is None else SAMPLER_OPTION_DOMAINS.get(key)
