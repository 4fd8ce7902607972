"""What values every sampler option and schedule option may take: one declarative table, checked in one place.

A :class:`Domain` says what one option accepts (its type, its range, whether None means "the default").
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

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sdlab.errors import SdlabError, closest

__all__ = ["Domain", "SAMPLER_OPTION_DOMAINS", "SAMPLER_OPTION_RELATIONS", "check_option", "domains_for"]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _fmt(value: float) -> str:
    return "inf" if value == math.inf else f"{value:g}"


@dataclass(frozen=True)
class Domain:
    """The values one option accepts.

    ``kind``: "real", "int", "bool", "choice", "callable", "text", "restart_list" or "generator". ``low`` /
    ``high`` bound a real or int (``low_open`` / ``high_open`` exclude the bound). A real must be finite unless
    ``inf_ok`` (then +inf is allowed too). ``none_ok``: None is accepted (it means the function's default).
    ``note`` is added to the hint (what the value means, the front end's default).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    none_ok: bool = False
    inf_ok: bool = False
    note: str = ""

    # --- constructors --------------------------------------------------------------------------------------

    @classmethod
    def real(
        cls,
        low: float | None = None,
        high: float | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
        none_ok: bool = False,
        inf_ok: bool = False,
        note: str = "",
    ) -> Domain:
        """A number (int or float, not bool) in the given range, finite unless ``inf_ok``."""
        return cls("real", low, high, low_open, high_open, (), none_ok, inf_ok, note)

    @classmethod
    def integer(
        cls, low: int | None = None, high: int | None = None, *, none_ok: bool = False, note: str = ""
    ) -> Domain:
        """An int (not bool) in [low, high]."""
        return cls("int", low, high, none_ok=none_ok, note=note)

    @classmethod
    def one_of(cls, *choices: str, note: str = "") -> Domain:
        """One of the given strings, spelt exactly."""
        return cls("choice", choices=tuple(choices), note=note)

    @classmethod
    def flag(cls, note: str = "") -> Domain:
        """True or False (not 0/1, not a string)."""
        return cls("bool", note=note)

    @classmethod
    def function(cls, note: str = "") -> Domain:
        """None (the default) or a callable."""
        return cls("callable", none_ok=True, note=note)

    @classmethod
    def text(cls, note: str = "") -> Domain:
        """A non-empty string."""
        return cls("text", note=note)

    # --- checking ------------------------------------------------------------------------------------------

    def describe(self) -> str:
        """The accepted values in words, e.g. 'a finite number > 0' or "one of 'midpoint', 'heun'"."""
        if self.kind in ("real", "int"):
            noun = "an integer" if self.kind == "int" else ("a number" if self.inf_ok else "a finite number")
            if self.low is not None and self.high is not None:
                left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
                text = f"{noun} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"
            elif self.low is not None:
                text = f"{noun} {'>' if self.low_open else '>='} {_fmt(self.low)}"
            elif self.high is not None:
                text = f"{noun} {'<' if self.high_open else '<='} {_fmt(self.high)}"
            else:
                text = noun
            if self.inf_ok:
                text += " (inf allowed)"
        elif self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "bool":
            text = "True or False"
        elif self.kind == "callable":
            text = "a function"
        elif self.kind == "text":
            text = "a non-empty string"
        elif self.kind == "restart_list":
            text = "a dict {min_sigma: (restart_steps + 1, restart_times, max_sigma)}"
        elif self.kind == "generator":
            text = "a torch.Generator or a list of them (one per image)"
        else:  # pragma: no cover - table error
            raise AssertionError(f"unknown domain kind {self.kind!r}")
        return text + (" or None" if self.none_ok else "")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is outside the domain, or None when it is inside."""
        if value is None:
            return None if self.none_ok else "it may not be None"
        if self.kind in ("real", "int"):
            return self._number_problem(value)
        if self.kind == "choice":
            if not isinstance(value, str):
                return f"it is a {type(value).__name__}, not a string"
            return None if value in self.choices else "it is not one of the choices"
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"it is a {type(value).__name__}, not True or False"
        if self.kind == "callable":
            return None if callable(value) else f"a {type(value).__name__} is not callable"
        if self.kind == "text":
            return None if isinstance(value, str) and value.strip() else "it is not a non-empty string"
        if self.kind == "restart_list":
            return _restart_list_problem(value)
        if self.kind == "generator":
            items = value if isinstance(value, (list, tuple)) else [value]
            if not items or not all(isinstance(g, torch.Generator) for g in items):
                return "it is not a torch.Generator or a non-empty list of them"
            return None
        raise AssertionError(f"unknown domain kind {self.kind!r}")  # pragma: no cover

    def _number_problem(self, value: Any) -> str | None:
        if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_complex() and value.dtype != torch.bool:
            value = value.item()  # a 0-d real tensor is checked as its number (and passed on as it is)
        if isinstance(value, str):
            return "it is a string, not a number"
        if isinstance(value, bool):
            return "it is a bool, not a number"
        if self.kind == "int" and not _is_int(value):
            return f"it is a {type(value).__name__}, not an integer"
        if not _is_real(value):
            return f"it is a {type(value).__name__}, not a number"
        number = float(value)
        if math.isnan(number):
            return "it is NaN"
        if math.isinf(number) and not (self.inf_ok and number > 0):
            return "it is infinite"
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            return "it is out of range"
        if self.high is not None and (number > self.high or (self.high_open and number == self.high)):
            return "it is out of range"
        return None

    def hint(self, option: str, value: Any) -> str:
        """What to pass instead."""
        if isinstance(value, str) and self.kind in ("real", "int"):
            try:
                float(value)
                example = f" ({option}={value.strip()})"
            except ValueError:
                example = ""
            text = f"pass {option} as a number{example}, not as the string {value!r}; allowed: {self.describe()}"
        elif self.kind == "choice" and isinstance(value, str):
            text = f"allowed: {self.describe()}; {closest(value, [str(c) for c in self.choices])}"
        else:
            text = f"allowed: {self.describe()}"
        return f"{text} ({self.note})" if self.note else text


def _restart_list_problem(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"it is a {type(value).__name__}, not a dict"
    for key, entry in value.items():
        if not _is_real(key) or not math.isfinite(key) or key < 0:
            return f"key {key!r} is not a finite sigma >= 0"
        if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 3:
            return f"entry {entry!r} is not (restart_steps + 1, restart_times, max_sigma)"
        steps, times, top = entry
        if not (_is_int(steps) and steps >= 1) or not (_is_int(times) and times >= 0):
            return f"entry {entry!r} needs restart_steps + 1 >= 1 and restart_times >= 0, as integers"
        if not _is_real(top) or not math.isfinite(top) or top <= 0:
            return f"entry {entry!r} needs a finite max_sigma > 0"
    return None


def check_option(domain: Domain, option: str, value: Any, **context: Any) -> None:
    """Raise :class:`SdlabError` naming ``option`` (and ``context``: sampler or schedule) unless ``value`` fits."""
    why = domain.problem(value)
    if why is not None:
        raise SdlabError(
            f"option {option!r} must be {domain.describe()}: {why}",
            **context,
            option=option,
            got=value,
            hint=domain.hint(option, value),
        )


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
