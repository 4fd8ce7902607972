"""The schedule catalogue: :class:`ScheduleInfo` for every schedule, the names it answers to, and name resolution.

One entry per schedule pairs its info with the function of a :class:`ScheduleSetting` that computes it.

>>> resolve_schedule("sgm-uniform"), resolve_schedule("Beta"), resolve_schedule("beta")
('sgm_uniform', 'beta_a1111', 'beta_comfy')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.schedules import formulas

__all__ = [
    "MAX_STEPS",
    "ScheduleInfo",
    "ScheduleSetting",
    "SCHEDULES",
    "EXACT_NAMES",
    "DEFAULT_RHO",
    "KNOWN_OPTIONS",
    "list_schedules",
    "resolve_schedule",
    "needs_table",
]

MAX_STEPS = 10_000  # ComfyUI's widget maximum; far beyond any useful schedule


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule: canonical name, the names it answers to, where it comes from, and its formula."""

    name: str  # canonical, lowercase snake_case
    labels: tuple[str, ...]  # A1111 labels, ComfyUI names and node names that resolve to it exactly
    source: str  # "A1111", "ComfyUI", "both" or "k-diffusion"
    ends_in_zero: bool  # False: the last sigma is sigma_min (the sampler stops there, noise left)
    description: str  # the formula, one line
    uses_sigma_range: bool = False  # honours sigma_min / sigma_max overrides (A1111's rule)
    options: tuple[str, ...] = ()  # extra keyword options of get_sigmas that it reads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ScheduleSetting:
    """What a schedule function may read: resolved steps, endpoints, rho and options."""

    n: int
    table: Tensor | None
    sigma_min: float
    sigma_max: float
    rho: float | None
    beta_alpha: float
    beta_beta: float
    ays_model: str
    options: dict[str, Any]


def _info(name: str, labels: tuple[str, ...], source: str, fn: Callable, **kw: Any) -> ScheduleInfo:
    return ScheduleInfo(name, (name, *labels), source, description=(fn.__doc__ or "").split("\n")[0], **kw)


def needs_table(s: ScheduleSetting) -> Tensor:
    if s.table is None:
        raise SdlabError(
            "this schedule needs the model's discrete training sigma table (model.sigmas)",
            hint="pass a model with .sigmas (None = SD 1.x) or a closed-form schedule such as 'karras'",
        )
    return s.table


def _unresolved_automatic() -> Tensor:
    raise AssertionError("get_sigmas resolves 'automatic' before dispatch")


# fmt: off
_ENTRIES: list[tuple[ScheduleInfo, Callable[[ScheduleSetting], Tensor]]] = [
    # (the info: canonical name, labels, source, formula, options), then the call that computes it
    (ScheduleInfo("automatic", ("automatic", "Automatic"), "A1111", ends_in_zero=True,
                  description="the sampler's default schedule (formulas.karras, exponential or uniform); "
                  "needs sampler="),
     lambda s: _unresolved_automatic()),
    (_info("uniform", ("Uniform",), "A1111", formulas.uniform, ends_in_zero=True),
     lambda s: formulas.uniform(s.n, needs_table(s))),
    (_info("karras", ("Karras", "KarrasScheduler"), "both", formulas.karras, ends_in_zero=True, uses_sigma_range=True),
     lambda s: formulas.karras(s.n, s.sigma_min, s.sigma_max, s.rho or 7.0)),
    (_info("exponential", ("Exponential", "ExponentialScheduler"), "both", formulas.exponential, ends_in_zero=True,
           uses_sigma_range=True),
     lambda s: formulas.exponential(s.n, s.sigma_min, s.sigma_max)),
    (_info("polyexponential", ("Polyexponential", "PolyexponentialScheduler"), "both", formulas.polyexponential,
           ends_in_zero=True, uses_sigma_range=True),
     lambda s: formulas.polyexponential(s.n, s.sigma_min, s.sigma_max, s.rho or 1.0)),
    (_info("sgm_uniform", ("SGM Uniform", "SGMUniform"), "both", formulas.sgm_uniform, ends_in_zero=True,
           uses_sigma_range=True),
     lambda s: formulas.sgm_uniform(s.n, needs_table(s), s.sigma_min, s.sigma_max)),
    (_info("kl_optimal_a1111", ("KL Optimal",), "A1111", formulas.kl_optimal_a1111, ends_in_zero=False,
           uses_sigma_range=True),
     lambda s: formulas.kl_optimal_a1111(s.n, s.sigma_min, s.sigma_max)),
    (_info("kl_optimal_comfy", ("kl_optimal",), "ComfyUI", formulas.kl_optimal_comfy, ends_in_zero=True,
           uses_sigma_range=True),
     lambda s: formulas.kl_optimal_comfy(s.n, s.sigma_min, s.sigma_max)),
    (_info("align_your_steps_a1111", ("Align Your Steps", "align_your_steps"), "A1111", formulas.align_your_steps_a1111,
           ends_in_zero=True, options=("ays_model",)),
     lambda s: formulas.align_your_steps_a1111(s.n, s.ays_model)),
    (_info("align_your_steps_comfy", ("AlignYourStepsScheduler",), "ComfyUI", formulas.align_your_steps_comfy,
           ends_in_zero=True, options=("ays_model",)),
     lambda s: formulas.align_your_steps_comfy(s.n, s.ays_model)),
    (_info("simple", ("Simple",), "both", formulas.simple, ends_in_zero=True),
     lambda s: formulas.simple(s.n, needs_table(s))),
    (_info("normal", ("Normal",), "both", formulas.normal, ends_in_zero=True, uses_sigma_range=True),
     lambda s: formulas.normal(s.n, needs_table(s), s.sigma_min, s.sigma_max)),
    (_info("ddim_uniform", ("DDIM", "ddim"), "both", formulas.ddim_uniform, ends_in_zero=True),
     lambda s: formulas.ddim_uniform(s.n, needs_table(s))),
    (_info("beta_a1111", ("Beta",), "A1111", formulas.beta_a1111, ends_in_zero=True, uses_sigma_range=True),
     lambda s: formulas.beta_a1111(s.n, s.sigma_min, s.sigma_max, s.beta_alpha, s.beta_beta)),
    (_info("beta_comfy", ("beta", "BetaSamplingScheduler"), "ComfyUI", formulas.beta_comfy, ends_in_zero=True),
     lambda s: formulas.beta_comfy(s.n, needs_table(s), s.beta_alpha, s.beta_beta)),
    (_info("linear_quadratic", (), "ComfyUI", formulas.linear_quadratic, ends_in_zero=True, uses_sigma_range=True,
           options=("threshold_noise", "linear_steps")),
     lambda s: formulas.linear_quadratic(s.n, s.sigma_max, s.options.get("threshold_noise", 0.025),
                                         s.options.get("linear_steps"))),
    (_info("laplace", ("LaplaceScheduler",), "ComfyUI", formulas.laplace, ends_in_zero=False, uses_sigma_range=True,
           options=("laplace_mu", "laplace_beta")),
     lambda s: formulas.laplace(s.n, s.sigma_min, s.sigma_max, s.options.get("laplace_mu", 0.0),
                                s.options.get("laplace_beta", 0.5))),
    (_info("vp", ("VPScheduler",), "k-diffusion", formulas.vp, ends_in_zero=True,
           options=("beta_d", "beta_min", "eps_s")),
     lambda s: formulas.vp(s.n, s.options.get("beta_d", 19.9), s.options.get("beta_min", 0.1),
                           s.options.get("eps_s", 1e-3))),
]
# fmt: on

SCHEDULES: dict[str, tuple[ScheduleInfo, Callable[[ScheduleSetting], Tensor]]] = {i.name: (i, f) for i, f in _ENTRIES}
EXACT_NAMES: dict[str, str] = {label: info.name for info, _ in _ENTRIES for label in info.labels}
DEFAULT_RHO = {"karras": 7.0, "polyexponential": 1.0}
_GENERAL_OPTIONS = ("use_old_karras_scheduler_sigmas",)
KNOWN_OPTIONS = {opt for info, _ in _ENTRIES for opt in info.options} | set(_GENERAL_OPTIONS)


def _loose(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " -_.")


_LOOSE: dict[str, set[str]] = {}
for _label, _name in EXACT_NAMES.items():
    _LOOSE.setdefault(_loose(_label), set()).add(_name)


def list_schedules() -> list[ScheduleInfo]:
    """Every schedule sdlab offers, A1111's twelve first (in its dropdown order), then ComfyUI's extras."""
    return [info for info, _ in _ENTRIES]


def resolve_schedule(schedule: str, steps: Any = None) -> str:
    """The canonical name of ``schedule`` ("KARRAS" -> "karras"): exact labels first, then case- and
    separator-insensitively when that is unambiguous; raises :class:`SdlabError` naming close matches."""
    if not isinstance(schedule, str):
        raise SdlabError("schedule must be a name (str)", schedule=schedule, hint="see list_schedules()")
    if schedule in EXACT_NAMES:
        return EXACT_NAMES[schedule]
    hits = _LOOSE.get(_loose(schedule), set())
    if len(hits) == 1:
        return next(iter(hits))
    if hits:
        raise SdlabError(
            f"schedule name {schedule!r} is ambiguous",
            schedule=schedule,
            steps=steps,
            hint="did you mean " + " or ".join(repr(h) for h in sorted(hits)) + "? (A1111 labels are capitalised,"
            " ComfyUI names lowercase)",
        )
    choices = [*EXACT_NAMES, *SCHEDULES]  # canonical names last, so they win case-insensitive ties
    raise SdlabError(f"unknown schedule {schedule!r}", schedule=schedule, steps=steps, hint=closest(schedule, choices))
