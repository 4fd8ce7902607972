"""get_sigmas: names, A1111's options and validation around the pure schedule formulas.

:func:`plan_sigmas` resolves and checks a call (a :class:`Plan`), :func:`compute_sigmas` computes and verifies it;
:func:`get_sigmas` and :func:`check_schedule_options` are the two front doors. This floor knows no sampler: a
sampler's part (the schedule "Automatic" means, its own A1111 timesteps, its discard flag) arrives as a
:class:`SamplerSchedule` from :mod:`sdlab.samplers.sigmas`, whose ``get_sigmas`` is :func:`sdlab.get_sigmas`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.options import check_option
from sdlab.schedules.formulas import AYS_A1111, AYS_COMFY
from sdlab.schedules.options import (
    COLLAPSE_CAUSE,
    GET_SIGMAS_DEFAULTS,
    SCHEDULE_OPTION_DOMAINS,
    TABLE_ONLY,
    check_setting,
    given_options,
    is_default,
)
from sdlab.schedules.registry import (
    DEFAULT_RHO,
    KNOWN_OPTIONS,
    MAX_STEPS,
    SCHEDULES,
    ScheduleSetting,
    needs_table,
    resolve_schedule,
)
from sdlab.schedules.table import sd1_table
from sdlab.schedules.timesteps import ONE_TIMESTEP, TIMESTEP_SIGMAS

__all__ = [
    "SamplerSchedule",
    "Plan",
    "plan_sigmas",
    "compute_sigmas",
    "get_sigmas",
    "check_schedule_options",
    "model_range",
    "SAMPLER_NEEDS_FLOOR_2",
]

SAMPLER_NEEDS_FLOOR_2 = "sdlab.schedules.get_sigmas does not resolve samplers (they live a floor above)"
SAMPLER_HINT = "call sdlab.get_sigmas(schedule, steps, model, sampler=...), which takes the same arguments"


@dataclass(frozen=True)
class SamplerSchedule:
    """What a sampler contributes to its sigmas, as the samplers' floor resolves it from a name."""

    label: str  # the sampler's display name, for error messages
    key: str  # its catalogue key ("ddim"); names its own timesteps in TIMESTEP_SIGMAS
    schedule: str  # the schedule "Automatic" means for it: the one its name carries, else its A1111 default
    discard: bool  # it always discards the penultimate sigma (A1111's and ComfyUI's per-sampler flag)
    own_timesteps: bool  # under "Automatic" it runs on A1111's fixed timesteps (DDIM, PLMS, UniPC)


@dataclass(frozen=True)
class Plan:
    """What get_sigmas will compute: a schedule function on a setting, or an A1111 sampler's own timesteps."""

    name: str  # canonical schedule name, or "<sampler key> timesteps"
    context: dict[str, Any]  # schedule, steps and the options given, for error messages
    setting: ScheduleSetting | None
    timesteps: Callable[[], Tensor] | None
    discard: bool
    device: Any
    dtype: torch.dtype


def plan_sigmas(
    schedule: Any,
    steps: Any,
    model: Any,
    options: dict[str, Any],
    sampler_schedule: Callable[[Any], SamplerSchedule] | None = None,
) -> Plan:
    """Resolve and check a get_sigmas call without computing it (``options``: its keyword arguments).

    ``sampler_schedule`` turns ``options["sampler"]`` into its :class:`SamplerSchedule`; the samplers' floor
    passes it (:func:`sdlab.samplers.sigmas.get_sigmas`), so that this floor never imports samplers.
    """
    name = resolve_schedule(schedule, steps)
    context: dict[str, Any] = {"schedule": schedule, "steps": steps}
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool):
        raise SdlabError("steps must be an integer", **context, hint="pass e.g. steps=20")
    if not 1 <= steps <= MAX_STEPS:
        raise SdlabError(f"steps must be in [1, {MAX_STEPS}]", **context, hint="pass e.g. steps=20")
    steps = int(steps)
    unknown = sorted(set(options) - KNOWN_OPTIONS - set(GET_SIGMAS_DEFAULTS))
    if unknown:
        raise SdlabError(
            f"unknown schedule option(s) {', '.join(map(str, unknown))}",
            **context,
            hint=closest(str(unknown[0]), sorted(KNOWN_OPTIONS | set(GET_SIGMAS_DEFAULTS))),
        )
    opts = {**GET_SIGMAS_DEFAULTS, **options}
    for key, domain in SCHEDULE_OPTION_DOMAINS.items():
        if key in opts and not is_default(key, opts[key]):
            check_option(domain, key, opts[key], **context)
    dtype = opts["dtype"]
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise SdlabError("dtype must be a floating-point torch dtype", **context, got=dtype, hint="torch.float32")
    try:
        torch.device(opts["device"])
    except (RuntimeError, TypeError, ValueError):
        raise SdlabError("unknown device", **context, got=opts["device"], hint="e.g. 'cpu' or 'cuda:0'") from None
    discard = opts["discard_penultimate"]

    resolved = None
    if opts["sampler"] is not None:
        if sampler_schedule is None:
            raise SdlabError(SAMPLER_NEEDS_FLOOR_2, **context, hint=SAMPLER_HINT)
        resolved = sampler_schedule(opts["sampler"])
        discard = discard or resolved.discard
    if name == "automatic":
        if resolved is None:
            raise SdlabError(
                "schedule 'Automatic' means the sampler's default schedule",
                **context,
                hint="pass sampler='DPM++ 2M' (or any sampler name) to sdlab.get_sigmas, or name a schedule such "
                "as 'Karras'",
            )
        if resolved.own_timesteps:
            return _timestep_plan(resolved, steps, model, discard, context, opts)
        name = resolved.schedule
    context.update(given_options(options))
    setting = _setting(name, steps + 1 if discard else steps, model, schedule, options, opts, context)
    return Plan(name, context, setting, None, bool(discard), opts["device"], dtype)


def _setting(
    name: str, n: int, model: Any, schedule: Any, options: dict[str, Any], opts: dict[str, Any], context: dict
) -> ScheduleSetting:
    """The resolved sigma range, rho and options a schedule function reads, checked against their joint limits."""
    table, m_min, m_max = model_range(model, schedule)
    base_min, base_max = (0.1, 10.0) if opts.get("use_old_karras_scheduler_sigmas") else (m_min, m_max)
    lo = base_min if is_default("sigma_min", opts["sigma_min"]) or opts["sigma_min"] == m_min else opts["sigma_min"]
    hi = base_max if is_default("sigma_max", opts["sigma_max"]) or opts["sigma_max"] == m_max else opts["sigma_max"]
    if lo >= hi:
        context = {**context, "sigma_min": lo, "sigma_max": hi}
        raise SdlabError("sigma_min must be below sigma_max", **context, hint="swap or fix them")
    rho = opts["rho"]
    use_rho = None if is_default("rho", rho) or name not in DEFAULT_RHO or rho == DEFAULT_RHO[name] else rho
    setting = ScheduleSetting(
        n=n,
        table=table,
        sigma_min=float(lo),
        sigma_max=float(hi),
        rho=None if use_rho is None else float(use_rho),
        beta_alpha=float(opts["beta_alpha"]),
        beta_beta=float(opts["beta_beta"]),
        ays_model=ays_model(opts.get("ays_model"), model, name, context),
        options={k: v for k, v in options.items() if k in KNOWN_OPTIONS},
    )
    if name in TABLE_ONLY and table is None:
        try:
            needs_table(setting)
        except SdlabError as err:
            raise SdlabError(err.message, hint=err.hint, **context) from None
    check_setting(name, setting, context)
    return setting


def _timestep_plan(
    resolved: SamplerSchedule, steps: int, model: Any, discard: bool, context: dict[str, Any], opts: dict[str, Any]
) -> Plan:
    """A1111's DDIM / PLMS / UniPC under "Automatic": their own fixed timesteps (SD 1.x's table without a model)."""
    model_range(model, str(context["schedule"]))  # the same checks of model.sigmas as every schedule
    if model is not None and getattr(model, "sigmas", None) is None:
        raise SdlabError(
            f"{resolved.label} under 'Automatic' runs on A1111's fixed timesteps: the model needs its training "
            "sigma table (.sigmas)",
            sampler=resolved.label,
            **context,
            hint="pass a discrete model, or name a schedule such as 'Karras'",
        )
    if model is None:
        model = SimpleNamespace(sigmas=sd1_table().clone())
    n = steps + 1 if discard else steps  # A1111's get_timesteps: discarding asks for one more timestep
    if n == 1 and resolved.key != "unipc":
        raise SdlabError(ONE_TIMESTEP, sampler=resolved.label, **context, hint="use steps >= 2")
    fn = TIMESTEP_SIGMAS[resolved.key]
    label = f"{resolved.key} timesteps"
    return Plan(label, context, None, lambda: fn(model, n), False, opts["device"], opts["dtype"])


def _verify(sigmas: Tensor, plan: Plan) -> Tensor:
    """The guarantee of get_sigmas: finite, >= 0, strictly decreasing while positive, at most one final 0.

    A1111's timesteps are only non-increasing: from 501 steps on DDIM's list holds t = 999 twice, as in A1111.
    """
    strict = plan.timesteps is None
    values = sigmas.detach().double().cpu()
    positive = values[values > 0]
    problem = None
    if values.ndim != 1 or len(values) < 2:
        problem = f"{len(values)} sigma(s), not a schedule"
    elif not bool(torch.isfinite(values).all()):
        problem = "sigmas that are not finite"
    elif bool((values < 0).any()):
        problem = "negative sigmas"
    elif len(positive) < len(values) - 1 or (len(positive) == len(values) - 1 and values[-1] != 0):
        problem = "sigma 0 before the end (a positive sigma rounds to 0)"
    else:
        bad = positive[1:] >= positive[:-1] if strict else positive[1:] > positive[:-1]
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            pair = f"{float(positive[i]):g} -> {float(positive[i + 1]):g}"
            problem = f"repeated or increasing sigmas (at index {i + 1}: {pair})"
    if problem is None:
        return sigmas
    cause = COLLAPSE_CAUSE.get(plan.name)
    raise SdlabError(
        f"schedule {plan.name!r} gives {problem} in {str(plan.dtype).removeprefix('torch.')} for these settings"
        + (f": {cause}" if cause else ""),
        **plan.context,
        hint="use less extreme options or fewer steps, or dtype=torch.float64",
    )


def check_schedule_options(schedule: str, steps: int, model: Any = None, **options: Any) -> str:
    """Check a get_sigmas call without computing it; return the schedule it resolves to.

    Takes get_sigmas' arguments (``sigma_min``, ``threshold_noise``, ...) and raises
    :class:`SdlabError` for an unknown schedule or option, ``steps`` that is not an int in [1, MAX_STEPS], and
    any value outside :data:`SCHEDULE_OPTION_DOMAINS` or the limits that join several options (linear_quadratic's
    threshold against its linear steps, Karras' rho against the sigma range, VP's overflow ...). The result is a
    canonical name ("karras"). With ``sampler=`` use :func:`sdlab.samplers.sigmas.check_schedule_options`
    (floor 2, which resolves samplers). :func:`get_sigmas` runs the same checks, then verifies the sigmas it
    computed (finite, strictly decreasing while positive, in the requested dtype), which only extreme values can
    fail.

    >>> check_schedule_options("KARRAS", 20)
    'karras'
    """
    _refuse_sampler(options.get("sampler"), schedule, steps)
    return plan_sigmas(schedule, steps, model, options).name


def _refuse_sampler(sampler: Any, schedule: Any, steps: Any) -> None:
    if sampler is not None:
        raise SdlabError(SAMPLER_NEEDS_FLOOR_2, schedule=schedule, steps=steps, sampler=sampler, hint=SAMPLER_HINT)


def compute_sigmas(plan: Plan) -> Tensor:
    """The sigmas of a checked :class:`Plan`: computed, the penultimate discarded if asked, cast and verified."""
    try:
        if plan.timesteps is not None:
            sigmas = plan.timesteps().detach()
        else:
            assert plan.setting is not None
            sigmas = SCHEDULES[plan.name][1](plan.setting)
    except SdlabError as err:
        raise SdlabError(err.message, hint=err.hint, **{**plan.context, **err.context}) from None
    if plan.discard:
        if len(sigmas) < 3:
            raise SdlabError("too few sigmas to discard the penultimate one", **plan.context, hint="use more steps")
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    try:
        sigmas = sigmas.to(device=plan.device, dtype=plan.dtype)
    except (RuntimeError, AssertionError) as exc:  # e.g. CUDA asked for on a machine without it
        raise SdlabError(f"cannot put the sigmas on {plan.device!r}: {exc}", **plan.context, hint="use 'cpu'") from None
    return _verify(sigmas, plan)


def get_sigmas(
    schedule: str,
    steps: int,
    model: Any = None,
    *,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float | None = None,
    discard_penultimate: bool = False,
    sampler: str | None = None,
    beta_alpha: float = 0.6,
    beta_beta: float = 0.6,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **kwargs: Any,
) -> Tensor:
    """The sigmas of ``schedule`` for ``steps`` steps: 1-D, finite, strictly decreasing, normally ending in 0.

    ``model``: anything with ``.sigmas`` (ascending training table) and optionally ``.sigma_min`` /
    ``.sigma_max`` (a continuous model may have only those); ``None`` is SD 1.x. ``sigma_min``, ``sigma_max``,
    ``rho``: A1111's overrides (None or 0 = model default; rho 7 for karras, 1 for polyexponential); like
    A1111 only the schedules with ``uses_sigma_range`` read them. ``discard_penultimate``: compute steps+1
    sigmas and drop ``sigmas[-2]`` (A1111 PR #6044). ``sampler``: this floor does not resolve samplers, so any
    sampler raises :class:`SdlabError` pointing at :func:`sdlab.get_sigmas` (:func:`sdlab.samplers.sigmas.get_sigmas`),
    which takes the same arguments, resolves "Automatic" for the sampler and ORs in its discard flag.

    Options in ``kwargs``: ``use_old_karras_scheduler_sigmas`` (A1111: default range [0.1, 10] for every
    schedule that reads it), ``ays_model`` ("sd1", "sdxl", "svd"; default from ``model.is_sdxl``),
    ``threshold_noise`` / ``linear_steps`` (linear_quadratic), ``laplace_mu`` / ``laplace_beta``,
    ``beta_d`` / ``beta_min`` / ``eps_s`` (vp). An option another schedule reads is ignored, but its value is
    still checked. Every value is checked against :data:`SCHEDULE_OPTION_DOMAINS` first (see
    :func:`check_schedule_options`); values that pass but would still give repeated or non-finite sigmas in
    ``dtype`` raise :class:`SdlabError` too.

    >>> get_sigmas("Exponential", 3, sigma_min=0.1, sigma_max=10.0)
    tensor([10.0000,  1.0000,  0.1000,  0.0000])
    >>> get_sigmas("Karras", 10, discard_penultimate=True).shape  # 11 sigmas, the one before 0 dropped
    torch.Size([11])
    """
    options = {
        "sigma_min": sigma_min,
        "sigma_max": sigma_max,
        "rho": rho,
        "discard_penultimate": discard_penultimate,
        "sampler": sampler,
        "beta_alpha": beta_alpha,
        "beta_beta": beta_beta,
        "device": device,
        "dtype": dtype,
        **kwargs,
    }
    _refuse_sampler(sampler, schedule, steps)
    return compute_sigmas(plan_sigmas(schedule, steps, model, options))


def model_range(model: Any, schedule: str) -> tuple[Tensor | None, float, float]:
    """(ascending table or None, sigma_min, sigma_max) of ``model``; None is SD 1.x."""
    if model is None:
        table = sd1_table()
        return table, float(table[0]), float(table[-1])
    table = getattr(model, "sigmas", None)
    if table is not None:
        table = torch.as_tensor(table).detach().cpu().float().flatten()
        if len(table) < 2 or not bool(torch.isfinite(table).all()) or not bool((table > 0).all()):
            raise SdlabError(
                "model.sigmas must hold >= 2 finite positive values", schedule=schedule, hint="check the model"
            )
        if not bool((table[1:] > table[:-1]).all()):
            raise SdlabError("model.sigmas must be ascending", schedule=schedule, hint="pass the table flipped")
    lo = getattr(model, "sigma_min", None)
    hi = getattr(model, "sigma_max", None)
    lo = float(table[0]) if lo is None and table is not None else lo
    hi = float(table[-1]) if hi is None and table is not None else hi
    if lo is None or hi is None:
        raise SdlabError(
            "model needs .sigmas or .sigma_min and .sigma_max", schedule=schedule, hint="pass model=None for SD 1.x"
        )
    return table, float(lo), float(hi)


def ays_model(value: str | None, model: Any, name: str, context: dict) -> str:
    if value is None:
        return "sdxl" if getattr(model, "is_sdxl", False) else "sd1"
    tables = AYS_COMFY if name == "align_your_steps_comfy" else AYS_A1111
    key = str(value).lower()
    if key not in AYS_COMFY or (name == "align_your_steps_a1111" and key not in tables):
        raise SdlabError(
            f"unknown ays_model {value!r}",
            **{**context, "ays_model": value},
            hint="choose one of: " + ", ".join(tables),
        )
    return key
