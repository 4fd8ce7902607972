"""Every sampler sdlab runs, by the names A1111, ComfyUI and the old ``k_`` forms give it.

One :class:`SamplerInfo` per algorithm holds what the front ends know about it: its A1111 label and options
(default schedule for "Automatic", discard-penultimate-sigma, ENSD, Brownian noise, which extra knobs A1111
passes), its ComfyUI names, the function itself, order, model evaluations per step and whether it injects noise.
:func:`resolve_sampler` turns any of those names into a :class:`ResolvedSampler`: the info, the front end of the
name (``"a1111"`` or ``"comfy"``; their defaults differ, e.g. A1111 runs DPM fast with eta 1, ComfyUI with 0),
the options that front end implies, the front end's rules as properties (own timesteps, the model's sigma range,
the CFG divisor, the LCM denoiser), and a schedule when the name carries one ("DPM++ 2M Karras").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sdlab.errors import SdlabError, closest
from sdlab.samplers import a1111, comfy, diffusers_engine, kdiffusion
from sdlab.samplers.a1111 import CFGPP_SCALE_DIVISOR
from sdlab.samplers.domains import function_key

__all__ = ["SamplerInfo", "ResolvedSampler", "SAMPLERS", "resolve_sampler", "list_samplers", "A1111_SAMPLERS"]

CHURN = ("s_churn", "s_tmin", "s_tmax", "s_noise")


@dataclass(frozen=True)
class SamplerInfo:
    """What sdlab knows about one sampling algorithm."""

    key: str  # canonical sdlab id (k-diffusion / ComfyUI function name where one exists)
    fn: Callable[..., Any]  # the sampler function
    description: str
    order_range: tuple[int, int] | None  # order of accuracy as commonly stated, (low, high); None: unknown
    evals_per_step: int | None  # model evaluations per step; None: adaptive or unknown
    stochastic: str  # "no", "yes", "a1111" (only with A1111's eta), "churn" (only with s_churn > 0)
    a1111: str | None = None  # A1111 label
    a1111_aliases: tuple[str, ...] = ()
    comfy: tuple[str, ...] = ()  # ComfyUI sampler names
    default_schedule: str = "uniform"  # what A1111's "Automatic" picks
    discard_penultimate: bool = False
    uses_ensd: bool = False
    brownian: bool = False
    second_order: bool = False
    a1111_extra: tuple[str, ...] = ()  # knobs A1111 forwards (sampler_extra_params)
    a1111_eta: str | None = None  # "ancestral" (eta_ancestral, default 1) or "ddim" (eta_ddim, default 0)
    a1111_options: dict[str, Any] = field(default_factory=dict)  # fixed options A1111 passes
    comfy_options: dict[str, Any] = field(default_factory=dict)
    timesteps: bool = False  # A1111 runs it on its own fixed timesteps when the schedule is Automatic

    @property
    def func(self) -> str:
        """The function's option-domain key ``"module:function"`` (:func:`sdlab.samplers.domains.function_key`)."""
        return function_key(self.fn) or ""


@dataclass(frozen=True)
class ResolvedSampler:
    """A sampler name resolved: the algorithm, the name's front end and the options it implies.

    The front-end rules live here as properties, one home each: :attr:`own_timesteps`,
    :attr:`uses_model_sigma_range`, :attr:`cfg_divisor`, :attr:`lcm_denoiser`, :attr:`discard_penultimate`.
    """

    info: SamplerInfo
    name: str  # the name as given
    front_end: str  # "a1111", "comfy" or "diffusers"
    options: dict[str, Any]  # defaults the front end implies (user options override them)
    schedule: str | None = None  # schedule carried in the name ("DPM++ 2M Karras" -> "karras")

    @property
    def flavour(self) -> str:
        """Old name of :attr:`front_end` (kept for one release)."""
        return self.front_end

    @property
    def own_timesteps(self) -> bool:
        """A1111's DDIM, PLMS and UniPC: run on A1111's own fixed timesteps whatever the schedule."""
        return self.info.timesteps and self.front_end == "a1111"

    @property
    def uses_model_sigma_range(self) -> bool:
        """A1111's DPM fast and DPM adaptive: run between the model's own sigma_min and sigma_max."""
        return self.front_end == "a1111" and self.info.key in ("dpm_fast", "dpm_adaptive")

    @property
    def cfg_divisor(self) -> float:
        """What the CFG scale is divided by: 12.5 for A1111's DDIM CFG++ (scale 7 -> 0.56), else 1."""
        return CFGPP_SCALE_DIVISOR if self.info.key == "ddim_cfgpp" and self.front_end == "a1111" else 1.0

    @property
    def lcm_denoiser(self) -> bool:
        """A1111's LCM: runs on A1111's own LCM denoiser (ComfyUI's ``lcm`` runs on the plain one)."""
        return self.info.key == "lcm" and self.front_end == "a1111"

    @property
    def has_own_rules(self) -> bool:
        """Whether one of the rules above applies: this front end runs the algorithm its own way.

        A1111's timestep samplers (fixed timesteps, VP-scaled start and end), DPM fast / adaptive (the model's
        own sigma range), LCM (its own denoiser and 50 timesteps) and DDIM CFG++ (CFG scale / 12.5).
        """
        return self.own_timesteps or self.uses_model_sigma_range or self.lcm_denoiser or self.cfg_divisor != 1

    @property
    def discard_penultimate(self) -> bool:
        """Whether this front end drops the next-to-last sigma (A1111's option, ComfyUI's fixed set)."""
        if self.front_end == "comfy":
            return self.info.key in _COMFY_DISCARD
        return self.info.discard_penultimate

    @property
    def label(self) -> str:
        """The name a user of this front end would recognise."""
        if self.front_end == "a1111" and self.info.a1111:
            return self.info.a1111
        return self.info.comfy[0] if self.info.comfy else self.info.key


def _k(key: str, **kw: Any) -> SamplerInfo:
    return SamplerInfo(key=key, fn=kw.pop("fn", getattr(kdiffusion, key, None)), **kw)


def _a(key: str, **kw: Any) -> SamplerInfo:
    return SamplerInfo(key=key, fn=kw.pop("fn", getattr(a1111, key, None)), **kw)


def _c(key: str, **kw: Any) -> SamplerInfo:
    kw.setdefault("comfy", (key,))
    return SamplerInfo(key=key, fn=kw.pop("fn", getattr(comfy, key, None)), **kw)


ANC = "ancestral"
# ComfyUI's DISCARD_PENULTIMATE_SIGMA_SAMPLERS (dpm_2, dpm_2_ancestral, uni_pc, uni_pc_bh2), by sdlab key
_COMFY_DISCARD = frozenset({"dpm_2", "dpm_2_ancestral", "unipc_comfy", "unipc_bh2"})
S_NOISE = ("s_noise",)

# fmt: off
_CATALOGUE: tuple[SamplerInfo, ...] = (
    # --- the 20 A1111 samplers (v1.10), in A1111's menu order -------------------------------------------------
    _k("dpmpp_2m", description="DPM-Solver++(2M): second-order multistep in log-SNR (Lu et al. 2022b)",
       order_range=(2, 2), evals_per_step=1, stochastic="no", a1111="DPM++ 2M", a1111_aliases=("k_dpmpp_2m",),
       comfy=("dpmpp_2m",), default_schedule="karras"),
    _k("dpmpp_sde", description="DPM-Solver++ SDE: stochastic 2nd-order single-step, Brownian noise (Lu et al. 2022b)",
       order_range=(2, 2), evals_per_step=2, stochastic="yes", a1111="DPM++ SDE", a1111_aliases=("k_dpmpp_sde",),
       comfy=("dpmpp_sde", "dpmpp_sde_gpu"), default_schedule="karras", second_order=True, brownian=True,
       a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("dpmpp_2m_sde", description="DPM-Solver++(2M) SDE, midpoint correction, Brownian noise (Lu et al. 2022b)",
       order_range=(2, 2), evals_per_step=1, stochastic="yes", a1111="DPM++ 2M SDE", a1111_aliases=("k_dpmpp_2m_sde",),
       comfy=("dpmpp_2m_sde", "dpmpp_2m_sde_gpu"), default_schedule="exponential", brownian=True,
       a1111_extra=S_NOISE, a1111_eta=ANC, a1111_options={"solver_type": "midpoint"},
       comfy_options={"solver_type": "midpoint"}),
    _k("dpmpp_2m_sde_heun", fn=kdiffusion.dpmpp_2m_sde,
       description="DPM-Solver++(2M) SDE with the Heun correction formula (no extra evaluation)",
       order_range=(2, 2), evals_per_step=1, stochastic="yes", a1111="DPM++ 2M SDE Heun",
       a1111_aliases=("k_dpmpp_2m_sde_heun",), comfy=("dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu"),
       default_schedule="exponential", brownian=True, a1111_extra=S_NOISE, a1111_eta=ANC,
       a1111_options={"solver_type": "heun"}, comfy_options={"solver_type": "heun"}),
    _k("dpmpp_2s_ancestral", description="DPM-Solver++(2S) ancestral: second-order single-step plus fresh noise",
       order_range=(2, 2), evals_per_step=2, stochastic="yes", a1111="DPM++ 2S a", a1111_aliases=("k_dpmpp_2s_a",),
       comfy=("dpmpp_2s_ancestral",), default_schedule="karras", uses_ensd=True, second_order=True,
       a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("dpmpp_3m_sde", description="DPM-Solver++(3M) SDE: third-order multistep, Brownian noise",
       order_range=(3, 3), evals_per_step=1, stochastic="yes", a1111="DPM++ 3M SDE", a1111_aliases=("k_dpmpp_3m_sde",),
       comfy=("dpmpp_3m_sde", "dpmpp_3m_sde_gpu"), default_schedule="exponential", discard_penultimate=True,
       brownian=True, a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("euler_ancestral", description="Euler ancestral: an Euler step down to sigma_down, then fresh noise up",
       order_range=(1, 1), evals_per_step=1, stochastic="yes", a1111="Euler a",
       a1111_aliases=("k_euler_a", "k_euler_ancestral"), comfy=("euler_ancestral",), uses_ensd=True,
       a1111_eta=ANC),
    _k("euler", description="Euler's method on the probability-flow ODE (Karras et al. 2022, Alg. 2 without churn)",
       order_range=(1, 1), evals_per_step=1, stochastic="churn", a1111="Euler", a1111_aliases=("k_euler",),
       comfy=("euler",), a1111_extra=CHURN),
    _k("lms", description="Linear multistep (Adams-Bashforth, up to 4th order) in sigma",
       order_range=(4, 4), evals_per_step=1, stochastic="no", a1111="LMS", a1111_aliases=("k_lms",), comfy=("lms",),
       comfy_options={"denoise_to_zero": True}),  # ComfyUI's lms ends with the denoised prediction, k-diffusion's not
    _k("heun", description="Heun's method, second order (Karras et al. 2022, Alg. 2); the last step is Euler",
       order_range=(2, 2),
       evals_per_step=2, stochastic="churn", a1111="Heun", a1111_aliases=("k_heun",), comfy=("heun",),
       second_order=True, a1111_extra=CHURN),
    _k("dpm_2", description="DPM2: midpoint in log-sigma, second order (inspired by DPM-Solver-2)",
       order_range=(2, 2), evals_per_step=2, stochastic="churn", a1111="DPM2", a1111_aliases=("k_dpm_2",),
       comfy=("dpm_2",), default_schedule="karras", discard_penultimate=True, second_order=True,
       a1111_extra=CHURN),
    _k("dpm_2_ancestral", description="DPM2 ancestral: the DPM2 step down to sigma_down, then fresh noise",
       order_range=(2, 2), evals_per_step=2, stochastic="yes", a1111="DPM2 a", a1111_aliases=("k_dpm_2_a",),
       comfy=("dpm_2_ancestral",), default_schedule="karras", discard_penultimate=True, uses_ensd=True,
       second_order=True, a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("dpm_fast", description="DPM-Solver-fast: steps of order 3, 2 and 1 between the model's sigma_min and sigma_max",
       order_range=(3, 3), evals_per_step=1, stochastic="a1111", a1111="DPM fast", a1111_aliases=("k_dpm_fast",),
       comfy=("dpm_fast",), uses_ensd=True, a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("dpm_adaptive", description="DPM-Solver-12/23 with adaptive step size: ignores the step count",
       order_range=(3, 3), evals_per_step=None, stochastic="a1111", a1111="DPM adaptive", a1111_aliases=("k_dpm_ad",),
       comfy=("dpm_adaptive",), uses_ensd=True, a1111_eta=ANC),
    _a("restart", description="Restart sampling: Heun steps with restart segments re-noised (Xu et al. 2023)",
       order_range=(2, 2), evals_per_step=2, stochastic="yes", a1111="Restart", a1111_aliases=("k_restart",),
       default_schedule="karras", second_order=True),
    _a("ddim", description="DDIM (Song et al. 2021) on A1111's fixed timesteps; eta_ddim adds noise",
       order_range=(1, 1), evals_per_step=1, stochastic="no", a1111="DDIM", timesteps=True, a1111_eta="ddim"),
    _a("ddim_cfgpp", description="DDIM CFG++: the direction term uses the unconditional prediction (Chung et al. 2024)",
       order_range=(1, 1), evals_per_step=1, stochastic="no", a1111="DDIM CFG++", timesteps=True, a1111_eta="ddim"),
    _a("plms", description="PLMS: pseudo linear multistep, 4th-order Adams-Bashforth on eps (Liu et al. 2022)",
       order_range=(4, 4), evals_per_step=1, stochastic="no", a1111="PLMS", timesteps=True),
    _a("unipc", description="UniPC: unified predictor-corrector, bh1, order 3 (Zhao et al. 2023), on A1111's timesteps",
       order_range=(3, 3), evals_per_step=1, stochastic="no", a1111="UniPC", timesteps=True, discard_penultimate=False),
    _a("lcm", description="LCM: jump to the consistency model's x0, then re-noise (Luo et al. 2023)",
       order_range=(1, 1), evals_per_step=1, stochastic="yes", a1111="LCM", a1111_aliases=("k_lcm",)),
    # --- ComfyUI's further base algorithms ---------------------------------------------------------------------
    _c("unipc_comfy", fn=comfy.uni_pc, comfy=("uni_pc",),
       description="ComfyUI's UniPC (bh1) on the schedule's sigmas; a final 0 becomes 0.001", order_range=(3, 3),
       evals_per_step=1, stochastic="no"),
    _c("unipc_bh2", fn=comfy.uni_pc_bh2, comfy=("uni_pc_bh2",),
       description="ComfyUI's UniPC with the bh2 variant on the schedule's sigmas", order_range=(3, 3),
       evals_per_step=1,
       stochastic="no"),
    _k("ddim_comfy", fn=kdiffusion.euler, description="ComfyUI's 'ddim': Euler steps on the chosen schedule",
       order_range=(1, 1), evals_per_step=1, stochastic="no", comfy=("ddim",)),
    *(_c(key, description=text, order_range=order, evals_per_step=evals, stochastic=noise)
      for key, text, order, evals, noise in (  # key, description, order range, evaluations per step, stochastic
        ("euler_cfg_pp", "Euler CFG++: step along the unconditional prediction", (1, 1), 1, "no"),
        ("euler_ancestral_cfg_pp", "Euler ancestral CFG++", (1, 1), 1, "yes"),
        ("heunpp2", "Heun++: weighted three-point Heun", (2, 3), 3, "no"),
        ("dpmpp_2s_ancestral_cfg_pp", "DPM++ 2S ancestral CFG++", (2, 2), 2, "yes"),
        ("dpmpp_2m_cfg_pp", "DPM++ 2M CFG++", (2, 2), 1, "no"),
        ("ddpm", "Ancestral DDPM steps (Ho et al. 2020)", (1, 1), 1, "yes"),
        ("ipndm", "Improved PNDM: 4th-order multistep, fixed coefficients", (4, 4), 1, "no"),
        ("ipndm_v", "Improved PNDM with variable step sizes", (4, 4), 1, "no"),
        ("deis", "DEIS: exponential integrator with polynomial extrapolation (Zhang & Chen 2023)", (3, 3), 1, "no"),
        ("res_multistep", "RES multistep: second-order exponential multistep", (2, 2), 1, "no"),
        ("res_multistep_cfg_pp", "RES multistep CFG++", (2, 2), 1, "no"),
        ("res_multistep_ancestral", "RES multistep ancestral", (2, 2), 1, "yes"),
        ("res_multistep_ancestral_cfg_pp", "RES multistep ancestral CFG++", (2, 2), 1, "yes"),
        ("gradient_estimation", "Euler with a gradient-estimation correction (Permenter & Yuan 2024)", (1, 2), 1, "no"),
        ("gradient_estimation_cfg_pp", "Gradient estimation CFG++", (1, 2), 1, "no"),
        ("er_sde", "ER-SDE-Solver-3 (Cui et al. 2023)", (3, 3), 1, "yes"),
        ("seeds_2", "SEEDS-2 stochastic exponential solver", (2, 2), 2, "yes"),
        ("seeds_3", "SEEDS-3 stochastic exponential solver", (3, 3), 3, "yes"),
        ("sa_solver", "SA-Solver: stochastic Adams predictor-corrector (Xue et al. 2023)", (3, 3), 1, "yes"),
        ("sa_solver_pece", "SA-Solver with an extra evaluation (PECE)", (3, 3), 2, "yes"),
    )),
    _c("lcm_comfy", fn=comfy.lcm, comfy=("lcm",), description="ComfyUI's LCM sampler", order_range=(1, 1),
       evals_per_step=1, stochastic="yes"),
    _c("dpmpp_3m", description="DPM-Solver++(3M), the ODE form of DPM++ 3M SDE", order_range=(3, 3), evals_per_step=1,
       stochastic="no", comfy=()),
)
# fmt: on

SAMPLERS: dict[str, SamplerInfo] = {info.key: info for info in _CATALOGUE}
A1111_SAMPLERS: tuple[str, ...] = tuple(info.a1111 for info in _CATALOGUE if info.a1111)

# legacy A1111 names carry the schedule ("DPM++ 2M Karras"); same suffixes as A1111's get_sampler_and_scheduler
_SCHEDULE_SUFFIXES = {"karras": "karras", "exponential": "exponential"}


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def _available(info: SamplerInfo) -> bool:
    return callable(info.fn)


def _index() -> dict[str, tuple[SamplerInfo, str]]:
    """Every accepted spelling -> (info, front end). A1111 labels first, then ComfyUI names, then sdlab keys."""
    names: dict[str, tuple[SamplerInfo, str]] = {}
    for info in _CATALOGUE:
        for comfy_name in info.comfy:
            names.setdefault(comfy_name, (info, "comfy"))
    for info in _CATALOGUE:
        for label in (info.a1111, *info.a1111_aliases):
            if label:
                names[label] = (info, "a1111")
                names.setdefault(_norm(label), (info, "a1111"))
        names.setdefault(info.key, (info, "a1111" if info.a1111 else "comfy"))
    return names


_NAMES = _index()


def _front_end_options(info: SamplerInfo, front_end: str) -> dict[str, Any]:
    if front_end == "a1111":
        opts = dict(info.a1111_options)
        if info.a1111_eta == ANC:
            opts["eta"] = 1.0  # A1111's eta_ancestral default, passed to every function with an eta
        elif info.a1111_eta == "ddim":
            opts["eta"] = 0.0  # A1111's eta_ddim default
        return opts
    return dict(info.comfy_options)


def resolve_sampler(name: str | SamplerInfo | ResolvedSampler) -> ResolvedSampler:
    """Resolve an A1111, ComfyUI, ``k_`` or sdlab sampler name.

    >>> r = resolve_sampler("DPM++ 2M Karras")
    >>> r.info.key, r.front_end, r.schedule
    ('dpmpp_2m', 'a1111', 'karras')
    >>> resolve_sampler("dpmpp_2m_sde_gpu").info.key
    'dpmpp_2m_sde'
    """
    if isinstance(name, ResolvedSampler):
        return name
    if isinstance(name, SamplerInfo):
        front_end = "a1111" if name.a1111 else "comfy"
        return ResolvedSampler(name, name.key, front_end, _front_end_options(name, front_end))
    if isinstance(name, str) and name.startswith("diffusers:"):
        cls = name.removeprefix("diffusers:")
        info = SamplerInfo(key=name, fn=diffusers_engine.sample_diffusers, description=f"diffusers {cls}",
                           order_range=None, evals_per_step=None, stochastic="?", comfy=(name,))  # fmt: skip
        return ResolvedSampler(info, name, "diffusers", {"scheduler_class": cls})
    if not isinstance(name, str) or not name.strip():
        raise SdlabError("sampler name must be a non-empty string", sampler=name, hint="e.g. 'DPM++ 2M' or 'euler'")
    schedule = None
    hit = _NAMES.get(name) or _NAMES.get(name.strip()) or _NAMES.get(_norm(name))
    if hit is None:  # legacy "X Karras" / "X Exponential"
        base, _, suffix = name.strip().rpartition(" ")
        if suffix.lower() in _SCHEDULE_SUFFIXES and base:
            hit = _NAMES.get(base) or _NAMES.get(_norm(base))
            schedule = _SCHEDULE_SUFFIXES[suffix.lower()] if hit else None
    if hit is None:
        raise SdlabError(f"unknown sampler {name!r}", sampler=name, hint=closest(name, _display_names()))
    info, front_end = hit
    return ResolvedSampler(info, name, front_end, _front_end_options(info, front_end), schedule)


def _display_names() -> list[str]:
    return [n for info in _CATALOGUE for n in (info.a1111, *info.comfy) if n]


def _order_text(info: SamplerInfo) -> str:
    """``order_range`` for the table: ``"2"``, ``"2-3"``, ``"?"`` when unknown."""
    if info.order_range is None:
        return "?"
    low, high = info.order_range
    return str(low) if low == high else f"{low}-{high}"


def _evals_text(info: SamplerInfo) -> str:
    """``evals_per_step`` for the table: ``"1"``, ``"adaptive"``, ``"?"`` when unknown."""
    if info.evals_per_step is not None:
        return str(info.evals_per_step)
    return "?" if info.order_range is None else "adaptive"


def list_samplers(*, available_only: bool = True) -> list[dict[str, Any]]:
    """The catalogue as rows: names, aliases, order, NFE per step, stochastic or not, A1111 default schedule.

    ``order`` and ``nfe_per_step`` are display text made from the numeric ``order_range`` and
    ``evals_per_step`` of :class:`SamplerInfo` (``"2-3"``, ``"adaptive"``, ``"?"``).
    """
    rows = []
    for info in _CATALOGUE:
        if available_only and not _available(info):
            continue
        rows.append(
            {
                "key": info.key,
                "a1111": info.a1111,
                "aliases": list(info.a1111_aliases),
                "comfy": list(info.comfy),
                "order": _order_text(info),
                "nfe_per_step": _evals_text(info),
                "stochastic": info.stochastic,
                "brownian": info.brownian,
                "default_schedule": "own timesteps" if info.timesteps else info.default_schedule,
                "discard_penultimate": info.discard_penultimate,
                "description": info.description,
            }
        )
    return rows
