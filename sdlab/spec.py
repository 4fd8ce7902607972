"""The full specification of one image: everything that changes its pixels, frozen and hashable.

Every saved image and every results row carries one, so any result can be reproduced and looked up.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import platform
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import TYPE_CHECKING, Any

from sdlab.errors import SdlabError
from sdlab.infotext import SCHEDULE_LABELS, split_sampler
from sdlab.noise.rng import sampler_uses_ensd
from sdlab.samplers.catalogue import resolve_sampler
from sdlab.schedules import list_schedules, resolve_schedule

if TYPE_CHECKING:
    from sdlab.samplers.catalogue import ResolvedSampler, SamplerInfo

__all__ = ["RunSpec", "versions", "A1111Names", "a1111_names", "from_a1111", "A1111_SCHEDULES", "SDLAB_OPTIONS_KEY"]


@cache
def versions() -> dict[str, str]:
    """Versions of the packages that can change results (recorded with every spec)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("sdlab", "torch", "diffusers", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


@dataclass(frozen=True)
class RunSpec:
    """One image's recipe. Field names follow sdlab's API; :meth:`to_a1111` maps them to A1111's keys."""

    prompt: str
    seed: int
    negative_prompt: str = ""
    sampler: str = "DPM++ 2M"  # as the user named it (A1111, ComfyUI or sdlab spelling)
    sampler_key: str = "dpmpp_2m"  # sdlab's canonical algorithm id
    schedule: str = "Automatic"  # as named; the resolved schedule is in schedule_resolved
    schedule_resolved: str = "karras"
    steps: int = 20
    cfg: float = 7.0
    width: int = 64
    height: int = 64
    model: str = "embedded"
    model_hash: str = ""
    clip_skip: int = 1
    rng: str = "GPU"
    ensd: int = 0
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float | None = None
    start_step: int = 0
    end_step: int | None = None
    add_noise: bool = True
    return_leftover_noise: bool = False
    sampler_options: tuple[tuple[str, Any], ...] = ()  # sorted (name, value) pairs: eta, s_churn, ...
    device: str = "cpu"
    dtype: str = "float32"
    subseed: int | None = None  # A1111's "Variation seed" (its noise is slerped in by subseed_strength)
    subseed_strength: float = 0.0
    seed_resize_from: tuple[int, int] | None = None  # A1111's "Seed resize from" (W, H)
    always_discard_penultimate: bool = False  # A1111's "Discard penultimate sigma" setting
    versions: tuple[tuple[str, str], ...] = field(default_factory=lambda: tuple(sorted(versions().items())))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (options and versions as dicts)."""
        d = asdict(self)
        d["sampler_options"] = dict(self.sampler_options)
        d["versions"] = dict(self.versions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["sampler_options"] = tuple(sorted(dict(d.get("sampler_options", {})).items()))
        if "versions" in d:
            d["versions"] = tuple(sorted(dict(d["versions"]).items()))
        if d.get("seed_resize_from") is not None:  # JSON has lists
            d["seed_resize_from"] = tuple(d["seed_resize_from"])
        return cls(**d)

    def key(self, *, with_versions: bool = True) -> str:
        """SHA-256 of the canonical JSON of the spec: the identity of its result. Fields added after 0.1
        (:data:`_ADDED_FIELDS`) count only away from their defaults, so every earlier run keeps its key and stores
        written before them stay valid."""
        d = self.to_dict()
        for name in _ADDED_FIELDS:
            if d[name] == _DEFAULTS[name]:
                del d[name]
        if not with_versions:
            d.pop("versions")
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_a1111(self) -> dict[str, Any]:
        """A1111 infotext parameters (``prompt``, ``negative_prompt`` and A1111's keys).

        The sampler and schedule are named as :func:`a1111_names` decides: under A1111's labels only where A1111
        runs them the same way, otherwise under sdlab's names tagged "(ComfyUI)" or "(sdlab)", which A1111 does
        not know, with their options in an "sdlab options" key. :func:`from_a1111` reads either back.
        """

        resolved = resolve_sampler(self.sampler)
        opts = dict(self.sampler_options)
        names = a1111_names(resolved, self.schedule, opts)
        p: dict[str, Any] = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "Steps": self.steps,
            "Sampler": names.sampler,
            "Schedule type": names.schedule,
            "CFG scale": self.cfg,
            "Seed": self.seed,
            "Size": f"{self.width}x{self.height}",
            "Model hash": self.model_hash[:10] if self.model_hash else None,
            "Model": self.model,
            "Clip skip": self.clip_skip if self.clip_skip != 1 else None,
            "RNG": self.rng if self.rng != "GPU" else None,
        }
        if names.sampler_is_a1111:  # A1111's keys, as A1111 writes them for this sampler
            info, carried = resolved.info, _carried_options(resolved.info)
            default_eta = resolve_sampler(names.sampler_name).options.get("eta")
            if "eta" in opts and "eta" in carried and opts["eta"] != default_eta:
                p["Eta DDIM" if info.a1111_eta == "ddim" else "Eta"] = opts["eta"]
            effective = _effective_options(info, opts)
            a1111_writes = sampler_uses_ensd(uses_ensd=info.uses_ensd, eta=effective.get("eta", 1.0))
            if self.ensd and (a1111_writes or _draws_image_noise(info, effective)):
                p["ENSD"] = self.ensd  # A1111 omits it for Euler with churn, Restart, LCM, yet seeds their noise
            for name, label in _OPTION_KEYS.items():
                if name in opts and name in carried:
                    p[label] = opts[name]
        else:  # sdlab's own key, exact: the options that differ from those the written name implies
            implied = resolve_sampler(names.sampler_name).options
            extra = {k: v for k, v in sorted(opts.items()) if k not in implied or implied[k] != v}
            if extra:
                p[SDLAB_OPTIONS_KEY] = json.dumps(extra, sort_keys=True, default=str)
            if self.ensd:
                p["ENSD"] = self.ensd
        for name, label in (
            ("sigma_min", "Schedule min sigma"),
            ("sigma_max", "Schedule max sigma"),
            ("rho", "Schedule rho"),
        ):
            if getattr(self, name) is not None:
                p[label] = getattr(self, name)
        if self.subseed_strength:  # A1111 writes the variation seed only with a strength
            p["Variation seed"], p["Variation seed strength"] = self.subseed, self.subseed_strength
        if self.seed_resize_from is not None:
            p["Seed resize from"] = self.seed_resize_from
        if self.always_discard_penultimate:
            p["Discard penultimate sigma"] = True
        p["Version"] = f"sdlab {dict(self.versions).get('sdlab', '')}".strip()
        return {k: v for k, v in p.items() if v is not None}


_ADDED_FIELDS = ("subseed", "subseed_strength", "seed_resize_from", "always_discard_penultimate")
_DEFAULTS = {f.name: f.default for f in fields(RunSpec) if f.name in _ADDED_FIELDS}


# -- Naming a run's sampler and schedule in A1111's infotext -----------------------------------------------------

# sdlab's canonical schedule -> A1111's label, for every schedule A1111 computes as sdlab does under that label
# (sdlab.schedules: Normal/normal, SGM Uniform, Simple, DDIM, Karras, Exponential match both front ends). The
# rest are not A1111's: beta_comfy (timestep lookup, not A1111's lerp), kl_optimal_comfy (steps sigmas then 0, not
# A1111's steps+1 ending at sigma_min), align_your_steps_comfy, linear_quadratic, laplace, vp.
A1111_SCHEDULES: dict[str, str] = {
    "automatic": "Automatic",
    "uniform": "Uniform",
    "karras": "Karras",
    "exponential": "Exponential",
    "polyexponential": "Polyexponential",
    "sgm_uniform": "SGM Uniform",
    "kl_optimal_a1111": "KL Optimal",
    "align_your_steps_a1111": "Align Your Steps",
    "simple": "Simple",
    "normal": "Normal",
    "ddim_uniform": "DDIM",
    "beta_a1111": "Beta",
}
# Sampler options A1111's infotext carries (A1111 forwards them where the sampler takes them); "eta" too.
_OPTION_KEYS = {"s_churn": "Sigma churn", "s_tmin": "Sigma tmin", "s_tmax": "Sigma tmax", "s_noise": "Sigma noise"}
SDLAB_OPTIONS_KEY = "sdlab options"  # JSON of the options of a sampler written under its sdlab name
_TAGGED = re.compile(r"(?P<name>.+) \((?P<tag>ComfyUI|sdlab)\)", re.S)


@dataclass(frozen=True)
class A1111Names:
    """How an infotext names a run's sampler and schedule (see :func:`a1111_names`)."""

    sampler: str  # the "Sampler" value
    schedule: str  # the "Schedule type" value
    sampler_name: str  # the sampler name inside it, as sdlab resolves it (the A1111 label, or the tagged name)
    sampler_is_a1111: bool  # written under A1111's label: A1111 runs the same sampler with the same options


def a1111_names(sampler: str | ResolvedSampler, schedule: str, options: dict[str, Any]) -> A1111Names:
    """The "Sampler" and "Schedule type" an infotext gives a run: A1111's labels only where A1111 runs the same.

    The one place that decides. ``sampler`` and ``schedule`` are as the run named them, ``options`` the sampler
    options in effect (``RunSpec.sampler_options``). The rule: an infotext must not claim A1111 semantics that
    were not used.

    * Sampler: A1111's label when the run's algorithm has one and A1111, reading that label and the keys it
      writes (Eta, Sigma churn/tmin/tmax/noise), runs it with the same effective options (function defaults
      filled in) and the same sigma handling: same discard-penultimate rule, and not one of the samplers A1111
      runs its own way (DDIM, PLMS, UniPC, DPM fast, DPM adaptive, LCM, DDIM CFG++) under a ComfyUI name.
      Otherwise the name that ran tagged ``"dpm_fast (ComfyUI)"`` (a ComfyUI name), ``"DPM++ 2M SDE (sdlab)"``
      (A1111's sampler with options A1111 cannot write), or a ``"diffusers:..."`` name as it is.
    * Schedule: the schedule named by the sampler (``"DPM++ 2M SDE Karras"``) when the schedule is Automatic;
      then A1111's label from :data:`A1111_SCHEDULES`, else sdlab's canonical name tagged ``"beta_comfy
      (ComfyUI)"`` or ``"vp (sdlab)"``.

    A1111 knows neither tagged form (its sampler lookup is by exact label; its schedule lookup by label or its own
    lowercase names such as "beta", which is why the ComfyUI schedule is written "beta_comfy (ComfyUI)"), so it
    does not mistake the run for one of its own.

    ============================================================  ==============================================
    ran as                                                        written
    ============================================================  ==============================================
    euler, euler_ancestral, heun, lms, dpm_2, dpm_2_ancestral,    A1111's label ("Euler", "Euler a", ...): same
    dpmpp_2m, dpmpp_sde, dpmpp_2m_sde(_heun), dpmpp_2s_ancestral  algorithm; eta defaults to 1 in both
    dpm_fast, dpm_adaptive                                        "dpm_fast (ComfyUI)": eta 0 and the schedule's
                                                                  range, A1111: eta 1 and the model's range
    dpmpp_3m_sde                                                  "dpmpp_3m_sde (ComfyUI)": A1111 drops the
                                                                  penultimate sigma, ComfyUI does not
    uni_pc                                                        "uni_pc (ComfyUI)": A1111 runs UniPC on its
                                                                  own timesteps and keeps the penultimate sigma
    ddim, and every ComfyUI-only sampler                          "ddim (ComfyUI)", "deis (ComfyUI)", ...
    karras, exponential, polyexponential, normal, simple,         A1111's label ("Karras", ...): same sigmas
    sgm_uniform, ddim_uniform, uniform
    beta, kl_optimal, AlignYourStepsScheduler (ComfyUI's)         "beta_comfy (ComfyUI)", ...: A1111's Beta,
                                                                  KL Optimal and AYS compute other sigmas
    Beta, KL Optimal, Align Your Steps (A1111's)                  A1111's label
    ============================================================  ==============================================
    """

    resolved = resolve_sampler(sampler)
    info = resolved.info
    is_a1111 = _runs_as_in_a1111(resolved, options)
    if is_a1111:
        sampler_name = sampler_text = info.a1111 or info.key
    elif resolved.front_end == "diffusers":
        sampler_name = sampler_text = resolved.name
    elif resolved.front_end == "a1111":
        sampler_name = info.a1111 or info.key
        sampler_text = f"{sampler_name} (sdlab)"
    else:
        sampler_name = resolved.label
        sampler_text = f"{sampler_name} (ComfyUI)"

    canonical = resolve_schedule(schedule, None)
    if canonical == "automatic" and resolved.schedule:
        canonical = resolve_schedule(resolved.schedule, None)
    if canonical in A1111_SCHEDULES:
        schedule_text = A1111_SCHEDULES[canonical]
    else:
        source = next(s.source for s in list_schedules() if s.name == canonical)
        schedule_text = f"{canonical} ({'ComfyUI' if source == 'ComfyUI' else 'sdlab'})"
    return A1111Names(sampler_text, schedule_text, sampler_name, is_a1111)


def _runs_as_in_a1111(resolved: ResolvedSampler, options: dict[str, Any]) -> bool:
    """Whether A1111, given the algorithm's A1111 label and the option keys it writes, runs what ran."""

    info = resolved.info
    if info.a1111 is None or resolved.front_end == "diffusers":
        return False
    a1111 = resolve_sampler(info.a1111)
    # A1111 runs some algorithms its own way under any name or option (ResolvedSampler.has_own_rules): a run of
    # the same algorithm under a ComfyUI name is not A1111's.
    if resolved.front_end != "a1111" and (
        a1111.has_own_rules or resolved.discard_penultimate != a1111.discard_penultimate
    ):
        return False
    carried = {k: v for k, v in options.items() if k in _carried_options(info)}
    return _effective_options(info, options) == _effective_options(info, {**a1111.options, **carried})


def _carried_options(info: SamplerInfo) -> set[str]:
    """The options A1111's infotext can carry for this sampler (and A1111 passes on to it)."""
    return {*(["eta"] if info.a1111_eta else []), *(k for k in info.a1111_extra if k in _OPTION_KEYS)}


def _draws_image_noise(info: SamplerInfo, effective: dict[str, Any]) -> bool:
    """Whether the sampler draws noise from the image's generator after the initial noise (which ENSD re-seeds)."""
    if info.brownian:  # Brownian-tree samplers draw from their own trees
        return False
    if "eta" in effective:  # ancestral steps, DDIM's eta
        return effective["eta"] != 0
    if info.stochastic == "churn":
        return effective.get("s_churn", 0) > 0
    return info.stochastic == "yes"


def _effective_options(info: SamplerInfo, options: dict[str, Any]) -> dict[str, Any]:
    """The keyword options the sampler function runs with: its defaults, overridden by ``options``."""
    params = inspect.signature(info.fn).parameters.values()
    skip = {"extra_args", "callback", "noise_sampler", "disable"}
    defaults = {p.name: p.default for p in params if p.default is not p.empty and p.name not in skip}
    return {**defaults, **options}


# -- Reading an infotext back into a run ----------------------------------------------------------------------

# Keys of image-changing A1111 features sdlab.generate does not run, and whether a value means the feature is used.
_NOT_RUN: dict[str, Callable[[Any], bool]] = {
    "Denoising strength": lambda v: True,  # hires fix or img2img
    "Hires upscale": lambda v: True,
    "Hires resize": lambda v: True,
    "Hires steps": lambda v: True,
    "Beta schedule alpha": lambda v: v != 0.6,  # generate runs A1111's default 0.6
    "Beta schedule beta": lambda v: v != 0.6,
    "Tiling": lambda v: v is True,
}


def from_a1111(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for :func:`sdlab.generate` that re-run the image an infotext describes.

    ``params`` is what :func:`sdlab.infotext.parse_infotext` returns. Names are read as A1111 reads them: an A1111
    sampler label is A1111's sampler, a schedule name A1111 knows ("Beta", or its own "beta") is A1111's schedule,
    and a schedule in the sampler's name ("DPM++ 2M Karras") wins over "Schedule type". The tagged names
    :func:`a1111_names` writes for runs A1111 cannot describe ("dpm_fast (ComfyUI)", "beta_comfy (ComfyUI)") read
    back as sdlab names, with their options from the "sdlab options" key. Other names are resolved by sdlab's
    rules. The model is not included (pass ``model=``). Raises :class:`SdlabError` when there is no Seed, for
    unknown names, and for features that change the image which ``generate`` does not run (hires fix, img2img,
    tiling). Variation seed and strength become ``subseeds``/``subseed_strength``, "Seed resize from"
    ``seed_resize_from``.

    >>> from sdlab.infotext import parse_infotext
    >>> kw = from_a1111(parse_infotext("a cat\\nSteps: 20, Sampler: DPM++ 2M Karras, Seed: 7, Eta: 0.5"))
    >>> kw["sampler"], kw["schedule"], kw["steps"], kw["seeds"]
    ('DPM++ 2M', 'Karras', 20, [7])
    """

    _check_runnable(params)
    sampler, schedule, tagged = _read_names(params)
    resolved = resolve_sampler(sampler)
    resolve_schedule(schedule, params.get("Steps"))  # unknown names raise here, naming the schedule
    options = _read_options(params, resolved.info, tagged)

    size = params.get("Size")
    kwargs: dict[str, Any] = {
        "prompt": params.get("prompt", ""),
        "negative_prompt": params.get("negative_prompt", ""),
        "sampler": sampler,
        "schedule": schedule,
        "steps": params.get("Steps", 20),
        "cfg": params.get("CFG scale", 7.0),
        "seeds": [params["Seed"]],
        "size": tuple(size) if isinstance(size, (tuple, list)) else None,
        "clip_skip": params.get("Clip skip", 1),
        "rng": params.get("RNG", "GPU"),
        "ensd": params.get("ENSD", 0),
        "sigma_min": params.get("Schedule min sigma") or None,
        "sigma_max": params.get("Schedule max sigma") or None,
        "rho": params.get("Schedule rho") or None,
        **options,
    }
    if params.get("Discard penultimate sigma"):
        kwargs["always_discard_penultimate"] = True
    if params.get("Variation seed strength"):  # A1111: the variation seed counts only with a strength
        if not isinstance(params.get("Variation seed"), int):
            raise SdlabError("a Variation seed strength without a Variation seed", field="Variation seed strength",
                             hint="add 'Variation seed: N' or drop the strength")  # fmt: skip
        kwargs["subseeds"], kwargs["subseed_strength"] = [params["Variation seed"]], params["Variation seed strength"]
    resize = params.get("Seed resize from")
    if isinstance(resize, tuple) and min(resize) > 0:  # A1111 resizes only to a positive size (-1x-1: none)
        kwargs["seed_resize_from"] = resize
    return kwargs


def _check_runnable(params: dict[str, Any]) -> None:
    """Refuse what generate cannot re-run: not a dict, features it does not run, no Seed."""
    if not isinstance(params, dict):
        raise SdlabError("params must be a dict from parse_infotext", type=type(params).__name__)
    for key, used in _NOT_RUN.items():
        if params.get(key) is not None and used(params[key]):
            raise SdlabError(
                f"sdlab.generate does not run A1111's {key!r}",
                field=key,
                value=params[key],
                hint="re-run it in A1111, or drop the key to run without it",
            )
    if not isinstance(params.get("Seed"), int):
        raise SdlabError("the infotext has no Seed", hint="A1111 writes 'Seed: N'; add it")


def _read_names(params: dict[str, Any]) -> tuple[str, str, bool]:
    """(sampler, schedule, whether the sampler name was tagged) as A1111 reads them, tags stripped."""

    sampler = params.get("Sampler") or "DPM++ 2M"  # A1111's default sampler
    schedule = params.get("Schedule type") or "Automatic"
    sampler_tag = _TAGGED.fullmatch(sampler) if isinstance(sampler, str) else None
    schedule_tag = _TAGGED.fullmatch(schedule) if isinstance(schedule, str) else None
    if not isinstance(sampler, str) or not isinstance(schedule, str):
        raise SdlabError("Sampler and Schedule type must be strings", sampler=sampler, schedule=schedule)
    if sampler_tag:
        sampler = sampler_tag.group("name")
    else:
        sampler, carried_schedule = split_sampler(sampler)  # A1111: a schedule in the sampler's name wins
        if carried_schedule is not None:
            schedule = carried_schedule
    if schedule_tag:
        schedule = schedule_tag.group("name")
    else:  # A1111's lookup: one of its labels or its own lowercase names
        labels = {n: label for label, name, aliases in SCHEDULE_LABELS for n in (label, name, *aliases)}
        schedule = labels.get(schedule, schedule)
    return sampler, schedule, sampler_tag is not None


def _read_options(params: dict[str, Any], info: SamplerInfo, tagged: bool) -> dict[str, Any]:
    """The sampler options the infotext carries: A1111's keys (untagged names), then the "sdlab options" JSON."""
    options: dict[str, Any] = {}
    if not tagged:  # A1111's keys, where A1111 passes them to this sampler
        eta_key = "Eta DDIM" if info.a1111_eta == "ddim" else "Eta"
        if info.a1111_eta and params.get(eta_key) is not None:
            options["eta"] = params[eta_key]
        for name, label in _OPTION_KEYS.items():
            if name in info.a1111_extra and params.get(label) is not None:
                options[name] = params[label]
    if params.get(SDLAB_OPTIONS_KEY):
        try:
            extra = json.loads(params[SDLAB_OPTIONS_KEY])
        except (TypeError, ValueError):
            extra = None
        if not isinstance(extra, dict):
            raise SdlabError(
                f"{SDLAB_OPTIONS_KEY!r} must be a JSON object", field=SDLAB_OPTIONS_KEY, value=params[SDLAB_OPTIONS_KEY]
            )
        options.update(extra)
    return options
