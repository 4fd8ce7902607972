"""What every get_sigmas option accepts (:data:`SCHEDULE_OPTION_DOMAINS`), and the limits that join several.

Single values are checked against their :class:`~sdlab.options.Domain`; :func:`check_setting` checks the limits
that depend on several options at once (or on steps), per schedule.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from sdlab.errors import SdlabError
from sdlab.options import Domain
from sdlab.schedules.registry import ScheduleSetting
from sdlab.schedules.table import sigma_to_t

__all__ = [
    "RHO_MIN",
    "RHO_MAX",
    "TABLE_ONLY",
    "SCHEDULE_OPTION_DOMAINS",
    "GET_SIGMAS_DEFAULTS",
    "ZERO_MEANS_DEFAULT",
    "COLLAPSE_CAUSE",
    "is_default",
    "given_options",
    "check_setting",
]

# rho far below 1 pushes sigma ** (1 / rho) out of float64 (Karras checks its own, range-dependent floor, 0.3 for
# SD's range); above 1e3 Karras is exponential to float32 precision and Polyexponential is all sigma_min
RHO_MIN, RHO_MAX = 1e-2, 1e3
TABLE_ONLY = frozenset({"uniform", "sgm_uniform", "simple", "normal", "ddim_uniform", "beta_comfy"})


SCHEDULE_OPTION_DOMAINS: dict[str, Domain] = {
    "sigma_min": Domain.real(0, low_open=True, none_ok=True, note="0 or None: the model's sigma_min"),
    "sigma_max": Domain.real(0, low_open=True, none_ok=True, note="0 or None: the model's sigma_max"),
    "rho": Domain.real(RHO_MIN, RHO_MAX, none_ok=True, note="0 or None: 7 for Karras, 1 for Polyexponential"),
    "discard_penultimate": Domain.flag(),
    "beta_alpha": Domain.real(0, low_open=True, note="A1111's and ComfyUI's default 0.6"),
    "beta_beta": Domain.real(0, low_open=True, note="A1111's and ComfyUI's default 0.6"),
    "use_old_karras_scheduler_sigmas": Domain.flag(),
    "ays_model": Domain.text("'sd1', 'sdxl' or (ComfyUI) 'svd'; None: from model.is_sdxl"),
    "threshold_noise": Domain.real(0, 1, low_open=True, high_open=True, note="ComfyUI's default 0.025"),
    "linear_steps": Domain.integer(1, none_ok=True, note="below the number of sigmas; None: steps // 2"),
    "laplace_mu": Domain.real(note="log of the middle sigma; ComfyUI's default 0"),
    "laplace_beta": Domain.real(0, low_open=True, note="ComfyUI's default 0.5"),
    "beta_d": Domain.real(0, note="k-diffusion's default 19.9"),
    "beta_min": Domain.real(0, note="k-diffusion's default 0.1"),
    "eps_s": Domain.real(0, 1, low_open=True, high_open=True, note="k-diffusion's default 1e-3"),
}
"""get_sigmas option -> :class:`~sdlab.options.Domain` (``sigma_min``, ``sigma_max``, ``rho``: 0 also
means the default, as in A1111)."""


GET_SIGMAS_DEFAULTS: dict[str, Any] = {
    "sigma_min": None,
    "sigma_max": None,
    "rho": None,
    "discard_penultimate": False,
    "sampler": None,
    "beta_alpha": 0.6,
    "beta_beta": 0.6,
    "device": "cpu",
    "dtype": torch.float32,
}


ZERO_MEANS_DEFAULT = ("sigma_min", "sigma_max", "rho")


def is_default(key: str, value: Any) -> bool:
    """None for the options whose default is None, or 0 where A1111 reads 0 as "the default"."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    none_default = GET_SIGMAS_DEFAULTS.get(key) is None
    return (value is None and none_default) or (key in ZERO_MEANS_DEFAULT and real and value == 0)


def given_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that differ from get_sigmas' defaults (named in error messages)."""
    out = {}
    for key, value in options.items():
        default = GET_SIGMAS_DEFAULTS.get(key, ...)
        if key in ("device", "dtype") or (value is default or (type(value) is type(default) and value == default)):
            continue
        out[key] = value
    return out


def check_setting(name: str, s: ScheduleSetting, context: dict[str, Any]) -> None:
    """The limits that depend on several options at once (or on steps), per schedule."""
    if name == "karras":
        rho = s.rho or 7.0
        # sigma_min^(1/rho) must survive next to sigma_max^(1/rho) in float64 (a ratio above 2^-30 keeps the last
        # sigma exact to float32), and neither may overflow or underflow
        spread = math.log(s.sigma_max / s.sigma_min) / rho
        if spread > 30 * math.log(2) or math.log(s.sigma_max) / rho > 700 or math.log(s.sigma_min) / rho < -700:
            need = max(math.log(s.sigma_max / s.sigma_min) / (30 * math.log(2)), abs(math.log(s.sigma_max)) / 700,
                       abs(math.log(s.sigma_min)) / 700)  # fmt: skip
            raise SdlabError(
                f"rho={rho:g} is too small for sigmas in [{s.sigma_min:g}, {s.sigma_max:g}]: in float64, "
                "sigma_min ** (1 / rho) vanishes next to sigma_max ** (1 / rho), so the schedule would lose sigma_min",
                **context,
                option="rho",
                hint=f"use rho >= {need:.3g} for this range (Karras et al. use 7)",
            )
    elif name == "simple" and s.table is not None and s.n > len(s.table):
        raise SdlabError(
            f"Simple takes every (T / steps)-th of the model's T = {len(s.table)} training sigmas: "
            f"{s.n} sigmas would repeat some",
            **context,
            hint=f"use at most {len(s.table)} sigmas (steps, plus 1 when discarding the penultimate)",
        )
    elif name == "laplace" and s.n < 2:
        raise SdlabError(
            "ComfyUI's Laplace schedule gives `steps` sigmas and no final 0, so steps=1 has no step",
            **context,
            hint="use steps >= 2",
        )
    elif name == "linear_quadratic" and s.n >= 2:
        threshold = float(s.options.get("threshold_noise", 0.025))
        m = s.options.get("linear_steps")
        m = s.n // 2 if m is None else int(m)
        if m >= s.n:
            raise SdlabError(
                f"linear_steps={m} leaves no quadratic part: it must be below the number of sigmas ({s.n})",
                **context,
                option="linear_steps",
                hint=f"use linear_steps in [1, {s.n - 1}], or None for {s.n // 2}",
            )
        limit = 2 * m / (s.n + m)  # the quadratic part must still rise at its end, else sigma goes below 0
        if threshold >= limit:
            raise SdlabError(
                f"threshold_noise={threshold:g} is too high for {m} linear of {s.n} steps: the quadratic part "
                "would overshoot and give negative, increasing sigmas",
                **context,
                option="threshold_noise",
                hint=f"use threshold_noise < 2 * linear_steps / (steps + linear_steps) = {limit:.4g}",
            )
    elif name in ("normal", "sgm_uniform") and s.table is not None:
        start, end = sigma_to_t(s.table, s.sigma_max), sigma_to_t(s.table, s.sigma_min)
        if not start > end:
            raise SdlabError(
                f"sigma_min and sigma_max both lie beyond the model's training range "
                f"[{float(s.table[0]):g}, {float(s.table[-1]):g}], at the same timestep {start:g}",
                **context,
                hint="keep at least one of sigma_min, sigma_max inside the model's range",
            )
    elif name == "vp":
        beta_d = float(s.options.get("beta_d", 19.9))
        beta_min = float(s.options.get("beta_min", 0.1))
        if beta_d == 0 and beta_min == 0:
            raise SdlabError(
                "beta_d and beta_min are both 0: every VP sigma would be 0", **context, hint="k-diffusion: 19.9, 0.1"
            )
        if beta_d / 2 + beta_min > 709:
            raise SdlabError(
                f"beta_d / 2 + beta_min = {beta_d / 2 + beta_min:g} overflows: sigma(1) = sqrt(exp(that) - 1)",
                **context,
                option="beta_d" if beta_d / 2 > beta_min else "beta_min",
                hint="keep beta_d / 2 + beta_min <= 709 (k-diffusion: 19.9 / 2 + 0.1)",
            )


COLLAPSE_CAUSE = {
    "laplace": "Laplace clamps its sigmas to [sigma_min, sigma_max], and these settings clamp several onto one end",
    "polyexponential": "a large rho squeezes the last sigmas onto sigma_min",
    "karras": "rho and the sigma range leave sigmas closer than the dtype resolves",
    "beta_a1111": "extreme beta_alpha / beta_beta squeeze sigmas onto one end of the range",
    "vp": "beta_d, beta_min and eps_s leave sigmas closer than the dtype resolves",
}
