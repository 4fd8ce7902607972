"""Every sampler sdlab runs, by the names A1111, ComfyUI and the old ``k_`` forms give it.

One :class:`SamplerInfo` per algorithm holds what the front ends know about it: its A1111 label and options
(default schedule for "Automatic", discard-penultimate-sigma, ENSD, Brownian noise, which extra knobs A1111
passes), its ComfyUI names, order, model evaluations per step and whether it injects noise.
:func:`resolve_sampler` turns any of those names into a :class:`ResolvedSampler`: the info, the flavour of the
name (``"a1111"`` or ``"comfy"``; their defaults differ, e.g. A1111 runs DPM fast with eta 1, ComfyUI with 0),
the options that flavour implies, and a schedule when the name carries one ("DPM++ 2M Karras").
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sdlab.errors import SdlabError, closest

__all__ = ["SamplerInfo", "ResolvedSampler", "SAMPLERS", "resolve_sampler", "list_samplers", "A1111_SAMPLERS"]

CHURN = ("s_churn", "s_tmin", "s_tmax", "s_noise")


@dataclass(frozen=True)
class SamplerInfo:
    """What sdlab knows about one sampling algorithm."""

    key: str  # canonical sdlab id (k-diffusion / ComfyUI function name where one exists)
    func: str  # "module:function" inside sdlab.samplers, imported on first use
    description: str
    order: str  # order of accuracy as commonly stated
    nfe_per_step: str  # model evaluations per step ("1", "2", "3", "adaptive", ...)
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
    def fn(self) -> Callable[..., Any]:
        """The sampler function (imported lazily)."""
        module, name = self.func.split(":")
        try:
            return getattr(importlib.import_module(f"sdlab.samplers.{module}"), name)
        except (ImportError, AttributeError) as exc:  # pragma: no cover - packaging error
            raise SdlabError(f"sampler {self.key!r} is not available in this build: {exc}", sampler=self.key) from exc


@dataclass(frozen=True)
class ResolvedSampler:
    """A sampler name resolved: the algorithm, the name's flavour and the options it implies."""

    info: SamplerInfo
    name: str  # the name as given
    flavour: str  # "a1111", "comfy" or "diffusers"
    options: dict[str, Any]  # defaults the flavour implies (user options override them)
    schedule: str | None = None  # schedule carried in the name ("DPM++ 2M Karras" -> "karras")

    @property
    def discard_penultimate(self) -> bool:
        """Whether this front end drops the next-to-last sigma (A1111's option, ComfyUI's fixed set)."""
        if self.flavour == "comfy":
            return self.info.key in _COMFY_DISCARD
        return self.info.discard_penultimate

    @property
    def label(self) -> str:
        """The name a user of this flavour would recognise."""
        if self.flavour == "a1111" and self.info.a1111:
            return self.info.a1111
        return self.info.comfy[0] if self.info.comfy else self.info.key


def _k(key: str, **kw: Any) -> SamplerInfo:
    return SamplerInfo(key=key, func=kw.pop("func", f"kdiffusion:{key}"), **kw)


def _a(key: str, **kw: Any) -> SamplerInfo:
    return SamplerInfo(key=key, func=kw.pop("func", f"a1111:{key}"), **kw)


def _c(key: str, **kw: Any) -> SamplerInfo:
    kw.setdefault("comfy", (key,))
    return SamplerInfo(key=key, func=kw.pop("func", f"comfy:{key}"), **kw)


ANC = "ancestral"
# ComfyUI's DISCARD_PENULTIMATE_SIGMA_SAMPLERS (dpm_2, dpm_2_ancestral, uni_pc, uni_pc_bh2), by sdlab key
_COMFY_DISCARD = frozenset({"dpm_2", "dpm_2_ancestral", "unipc_comfy", "unipc_bh2"})
S_NOISE = ("s_noise",)

# fmt: off
_CATALOGUE: tuple[SamplerInfo, ...] = (
    # --- the 20 A1111 samplers (v1.10), in A1111's menu order -------------------------------------------------
    _k("dpmpp_2m", description="DPM-Solver++(2M): second-order multistep in log-SNR (Lu et al. 2022b)",
       order="2", nfe_per_step="1", stochastic="no", a1111="DPM++ 2M", a1111_aliases=("k_dpmpp_2m",),
       comfy=("dpmpp_2m",), default_schedule="karras"),
    _k("dpmpp_sde", description="DPM-Solver++ SDE: stochastic 2nd-order single-step, Brownian noise (Lu et al. 2022b)",
       order="2", nfe_per_step="2", stochastic="yes", a1111="DPM++ SDE", a1111_aliases=("k_dpmpp_sde",),
       comfy=("dpmpp_sde", "dpmpp_sde_gpu"), default_schedule="karras", second_order=True, brownian=True,
       a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("dpmpp_2m_sde", description="DPM-Solver++(2M) SDE, midpoint correction, Brownian noise (Lu et al. 2022b)",
       order="2", nfe_per_step="1", stochastic="yes", a1111="DPM++ 2M SDE", a1111_aliases=("k_dpmpp_2m_sde",),
       comfy=("dpmpp_2m_sde", "dpmpp_2m_sde_gpu"), default_schedule="exponential", brownian=True,
       a1111_extra=S_NOISE, a1111_eta=ANC, a1111_options={"solver_type": "midpoint"},
       comfy_options={"solver_type": "midpoint"}),
    _k("dpmpp_2m_sde_heun", func="kdiffusion:dpmpp_2m_sde",
       description="DPM-Solver++(2M) SDE with the Heun correction formula (no extra evaluation)",
       order="2", nfe_per_step="1", stochastic="yes", a1111="DPM++ 2M SDE Heun",
       a1111_aliases=("k_dpmpp_2m_sde_heun",), comfy=("dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu"),
       default_schedule="exponential", brownian=True, a1111_extra=S_NOISE, a1111_eta=ANC,
       a1111_options={"solver_type": "heun"}, comfy_options={"solver_type": "heun"}),
    _k("dpmpp_2s_ancestral", description="DPM-Solver++(2S) ancestral: second-order single-step plus fresh noise",
       order="2", nfe_per_step="2", stochastic="yes", a1111="DPM++ 2S a", a1111_aliases=("k_dpmpp_2s_a",),
       comfy=("dpmpp_2s_ancestral",), default_schedule="karras", uses_ensd=True, second_order=True,
       a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("dpmpp_3m_sde", description="DPM-Solver++(3M) SDE: third-order multistep, Brownian noise",
       order="3", nfe_per_step="1", stochastic="yes", a1111="DPM++ 3M SDE", a1111_aliases=("k_dpmpp_3m_sde",),
       comfy=("dpmpp_3m_sde", "dpmpp_3m_sde_gpu"), default_schedule="exponential", discard_penultimate=True,
       brownian=True, a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("euler_ancestral", description="Euler ancestral: an Euler step down to sigma_down, then fresh noise up",
       order="1", nfe_per_step="1", stochastic="yes", a1111="Euler a",
       a1111_aliases=("k_euler_a", "k_euler_ancestral"), comfy=("euler_ancestral",), uses_ensd=True,
       a1111_eta=ANC),
    _k("euler", description="Euler's method on the probability-flow ODE (Karras et al. 2022, Alg. 2 without churn)",
       order="1", nfe_per_step="1", stochastic="churn", a1111="Euler", a1111_aliases=("k_euler",),
       comfy=("euler",), a1111_extra=CHURN),
    _k("lms", description="Linear multistep (Adams-Bashforth, up to 4th order) in sigma",
       order="4", nfe_per_step="1", stochastic="no", a1111="LMS", a1111_aliases=("k_lms",), comfy=("lms",),
       comfy_options={"denoise_to_zero": True}),  # ComfyUI's lms ends with the denoised prediction, k-diffusion's not
    _k("heun", description="Heun's method, second order (Karras et al. 2022, Alg. 2); the last step is Euler",
       order="2", nfe_per_step="2", stochastic="churn", a1111="Heun", a1111_aliases=("k_heun",), comfy=("heun",),
       second_order=True, a1111_extra=CHURN),
    _k("dpm_2", description="DPM2: midpoint in log-sigma, second order (inspired by DPM-Solver-2)",
       order="2", nfe_per_step="2", stochastic="churn", a1111="DPM2", a1111_aliases=("k_dpm_2",),
       comfy=("dpm_2",), default_schedule="karras", discard_penultimate=True, second_order=True,
       a1111_extra=CHURN),
    _k("dpm_2_ancestral", description="DPM2 ancestral: the DPM2 step down to sigma_down, then fresh noise",
       order="2", nfe_per_step="2", stochastic="yes", a1111="DPM2 a", a1111_aliases=("k_dpm_2_a",),
       comfy=("dpm_2_ancestral",), default_schedule="karras", discard_penultimate=True, uses_ensd=True,
       second_order=True, a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("dpm_fast", description="DPM-Solver-fast: steps of order 3, 2 and 1 between the model's sigma_min and sigma_max",
       order="3", nfe_per_step="1", stochastic="a1111", a1111="DPM fast", a1111_aliases=("k_dpm_fast",),
       comfy=("dpm_fast",), uses_ensd=True, a1111_extra=S_NOISE, a1111_eta=ANC),
    _k("dpm_adaptive", description="DPM-Solver-12/23 with adaptive step size: ignores the step count",
       order="3", nfe_per_step="adaptive", stochastic="a1111", a1111="DPM adaptive", a1111_aliases=("k_dpm_ad",),
       comfy=("dpm_adaptive",), uses_ensd=True, a1111_eta=ANC),
    _a("restart", description="Restart sampling: Heun steps with restart segments re-noised (Xu et al. 2023)",
       order="2", nfe_per_step="2", stochastic="yes", a1111="Restart", a1111_aliases=("k_restart",),
       default_schedule="karras", second_order=True),
    _a("ddim", description="DDIM (Song et al. 2021) on A1111's fixed timesteps; eta_ddim adds noise",
       order="1", nfe_per_step="1", stochastic="no", a1111="DDIM", timesteps=True, a1111_eta="ddim"),
    _a("ddim_cfgpp", description="DDIM CFG++: the direction term uses the unconditional prediction (Chung et al. 2024)",
       order="1", nfe_per_step="1", stochastic="no", a1111="DDIM CFG++", timesteps=True, a1111_eta="ddim"),
    _a("plms", description="PLMS: pseudo linear multistep, 4th-order Adams-Bashforth on eps (Liu et al. 2022)",
       order="4", nfe_per_step="1", stochastic="no", a1111="PLMS", timesteps=True),
    _a("unipc", description="UniPC: unified predictor-corrector, bh1, order 3 (Zhao et al. 2023), on A1111's timesteps",
       order="3", nfe_per_step="1", stochastic="no", a1111="UniPC", timesteps=True, discard_penultimate=False),
    _a("lcm", description="LCM: jump to the consistency model's x0, then re-noise (Luo et al. 2023)",
       order="1", nfe_per_step="1", stochastic="yes", a1111="LCM", a1111_aliases=("k_lcm",)),
    # --- ComfyUI's further base algorithms ---------------------------------------------------------------------
    _c("unipc_comfy", func="comfy:uni_pc", comfy=("uni_pc",),
       description="ComfyUI's UniPC (bh1) on the schedule's sigmas; a final 0 becomes 0.001", order="3",
       nfe_per_step="1", stochastic="no"),
    _c("unipc_bh2", func="comfy:uni_pc_bh2", comfy=("uni_pc_bh2",),
       description="ComfyUI's UniPC with the bh2 variant on the schedule's sigmas", order="3", nfe_per_step="1",
       stochastic="no"),
    _k("ddim_comfy", func="kdiffusion:euler", description="ComfyUI's 'ddim': Euler steps on the chosen schedule",
       order="1", nfe_per_step="1", stochastic="no", comfy=("ddim",)),
    _c("euler_cfg_pp", description="Euler CFG++: step along the unconditional prediction", order="1",
       nfe_per_step="1", stochastic="no"),
    _c("euler_ancestral_cfg_pp", description="Euler ancestral CFG++", order="1", nfe_per_step="1",
       stochastic="yes"),
    _c("heunpp2", description="Heun++: weighted three-point Heun", order="2-3", nfe_per_step="3",
       stochastic="no"),
    _c("dpmpp_2s_ancestral_cfg_pp", description="DPM++ 2S ancestral CFG++", order="2", nfe_per_step="2",
       stochastic="yes"),
    _c("dpmpp_2m_cfg_pp", description="DPM++ 2M CFG++", order="2", nfe_per_step="1", stochastic="no"),
    _c("ddpm", description="Ancestral DDPM steps (Ho et al. 2020)", order="1", nfe_per_step="1",
       stochastic="yes"),
    _c("ipndm", description="Improved PNDM: 4th-order multistep, fixed coefficients", order="4",
       nfe_per_step="1", stochastic="no"),
    _c("ipndm_v", description="Improved PNDM with variable step sizes", order="4", nfe_per_step="1",
       stochastic="no"),
    _c("deis", description="DEIS: exponential integrator with polynomial extrapolation (Zhang & Chen 2023)",
       order="3", nfe_per_step="1", stochastic="no"),
    _c("res_multistep", description="RES multistep: second-order exponential multistep", order="2",
       nfe_per_step="1", stochastic="no"),
    _c("res_multistep_cfg_pp", description="RES multistep CFG++", order="2", nfe_per_step="1", stochastic="no"),
    _c("res_multistep_ancestral", description="RES multistep ancestral", order="2", nfe_per_step="1",
       stochastic="yes"),
    _c("res_multistep_ancestral_cfg_pp", description="RES multistep ancestral CFG++", order="2",
       nfe_per_step="1", stochastic="yes"),
    _c("gradient_estimation", description="Euler with a gradient-estimation correction (Permenter & Yuan 2024)",
       order="1-2", nfe_per_step="1", stochastic="no"),
    _c("gradient_estimation_cfg_pp", description="Gradient estimation CFG++", order="1-2", nfe_per_step="1",
       stochastic="no"),
    _c("er_sde", description="ER-SDE-Solver-3 (Cui et al. 2023)", order="3", nfe_per_step="1", stochastic="yes"),
    _c("seeds_2", description="SEEDS-2 stochastic exponential solver", order="2", nfe_per_step="2",
       stochastic="yes"),
    _c("seeds_3", description="SEEDS-3 stochastic exponential solver", order="3", nfe_per_step="3",
       stochastic="yes"),
    _c("sa_solver", description="SA-Solver: stochastic Adams predictor-corrector (Xue et al. 2023)", order="3",
       nfe_per_step="1", stochastic="yes"),
    _c("sa_solver_pece", description="SA-Solver with an extra evaluation (PECE)", order="3", nfe_per_step="2",
       stochastic="yes"),
    _c("lcm_comfy", func="comfy:lcm", comfy=("lcm",), description="ComfyUI's LCM sampler", order="1",
       nfe_per_step="1", stochastic="yes"),
    _c("dpmpp_3m", description="DPM-Solver++(3M), the ODE form of DPM++ 3M SDE", order="3", nfe_per_step="1",
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
    module, name = info.func.split(":")
    try:
        return hasattr(importlib.import_module(f"sdlab.samplers.{module}"), name)
    except ImportError:
        return False


def _index() -> dict[str, tuple[SamplerInfo, str]]:
    """Every accepted spelling -> (info, flavour). A1111 labels first, then ComfyUI names, then sdlab keys."""
    names: dict[str, tuple[SamplerInfo, str]] = {}
    for info in _CATALOGUE:
        for comfy in info.comfy:
            names.setdefault(comfy, (info, "comfy"))
    for info in _CATALOGUE:
        for label in (info.a1111, *info.a1111_aliases):
            if label:
                names[label] = (info, "a1111")
                names.setdefault(_norm(label), (info, "a1111"))
        names.setdefault(info.key, (info, "a1111" if info.a1111 else "comfy"))
    return names


_NAMES = _index()


def _flavour_options(info: SamplerInfo, flavour: str) -> dict[str, Any]:
    if flavour == "a1111":
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
    >>> r.info.key, r.flavour, r.schedule
    ('dpmpp_2m', 'a1111', 'karras')
    >>> resolve_sampler("dpmpp_2m_sde_gpu").info.key
    'dpmpp_2m_sde'
    """
    if isinstance(name, ResolvedSampler):
        return name
    if isinstance(name, SamplerInfo):
        flavour = "a1111" if name.a1111 else "comfy"
        return ResolvedSampler(name, name.key, flavour, _flavour_options(name, flavour))
    if isinstance(name, str) and name.startswith("diffusers:"):
        cls = name.removeprefix("diffusers:")
        info = SamplerInfo(key=name, func="diffusers_engine:sample_diffusers", description=f"diffusers {cls}",
                           order="?", nfe_per_step="?", stochastic="?", comfy=(name,))  # fmt: skip
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
    info, flavour = hit
    return ResolvedSampler(info, name, flavour, _flavour_options(info, flavour), schedule)


def _display_names() -> list[str]:
    return [n for info in _CATALOGUE for n in (info.a1111, *info.comfy) if n]


def list_samplers(*, available_only: bool = True) -> list[dict[str, Any]]:
    """The catalogue as rows: names, aliases, order, NFE per step, stochastic or not, A1111 default schedule."""
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
                "order": info.order,
                "nfe_per_step": info.nfe_per_step,
                "stochastic": info.stochastic,
                "brownian": info.brownian,
                "default_schedule": "own timesteps" if info.timesteps else info.default_schedule,
                "discard_penultimate": info.discard_penultimate,
                "description": info.description,
            }
        )
    return rows
