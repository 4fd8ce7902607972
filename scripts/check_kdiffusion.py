"""Compare sdlab's k-diffusion samplers and schedules with k-diffusion's own, in float64, on the same inputs.

    python scripts/check_kdiffusion.py        # the installed k-diffusion (see INSTALL)
    python scripts/check_kdiffusion.py PATH   # a k-diffusion checkout, or its k_diffusion/sampling.py

Every sampler sdlab names after k-diffusion (:data:`sdlab.samplers.kdiffusion.SAMPLERS`) runs on both sides
with the same denoiser (the exact denoiser of the lab's toy mixture, guided against N(0, I)), the same
float64 x and sigmas (Karras, with and without a final 0), eta 0 and eta > 0 where it takes eta, and the
same injected noise: a seeded tape of standard normal draws (which also records the sigmas each side asks it
for), the global RNG under one seed (where k-diffusion's function takes no noise sampler: the churn of
Euler, Heun and DPM2), or each side's Brownian tree under the same seeds. Printed per case is the largest
relative difference max|ours - theirs| / max|theirs| over the final x, every callback's x, denoised, sigma
and sigma_hat, and the sigmas asked of the noise tape (``inf`` when the number of steps, callbacks or noise
draws differ, or DPM adaptive's step counts). The schedules named after k-diffusion (``get_sigmas_*`` and
``DiscreteSchedule``'s uniform-in-t sigmas and its t <-> sigma maps) are compared elementwise.

k-diffusion's package ``__init__`` imports its training code (clip, wandb, kornia, ...), so it is not run:
``k_diffusion/sampling.py`` and ``external.py`` are imported from the installed package's folder as
submodules of a stand-in package. They then import the real ``k_diffusion/utils.py`` (Pillow, safetensors,
torchvision: all sdlab dependencies) and ``scipy``, ``torchsde``, ``tqdm`` and ``torchdiffeq`` (only
``log_likelihood`` uses it; a stub stands in when it is missing). ``tests/test_reference_kdiffusion.py``
runs the same cases; ``scripts/check_comfy.py`` reuses the pieces here for ComfyUI.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
import sys
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sdlab import schedules
from sdlab.groundtruth import toy_mixture
from sdlab.noise.brownian import BrownianTreeNoiseSampler
from sdlab.samplers.kdiffusion import SAMPLERS

TOLERANCE = 1e-6
KDIFFUSION_PIN = "k-diffusion==0.1.1.post1"
INSTALL = f'pip install --no-deps "{KDIFFUSION_PIN}" torchdiffeq'

# --- loading the reference -------------------------------------------------------------------------------------


@dataclass
class Reference:
    """k-diffusion's ``sampling`` and ``external`` modules, where they came from, and what was stubbed."""

    sampling: types.ModuleType
    external: types.ModuleType | None
    location: Path
    version: str
    stubs: list[str]


def kdiffusion_location() -> Path | None:
    """The installed ``k_diffusion`` package folder (found without importing it), or None."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / "sampling.py").is_file() else None


@contextlib.contextmanager
def _modules(entries: dict[str, types.ModuleType], prefixes: Sequence[str]) -> Iterator[None]:
    """Put ``entries`` in ``sys.modules`` for a block; afterwards drop every module under ``prefixes`` and restore
    what was there before (loaded modules keep working: their globals hold what they imported)."""
    saved = {name: mod for name, mod in sys.modules.items() if any(_under(name, p) for p in prefixes)}
    saved.update({name: sys.modules[name] for name in entries if name in sys.modules})
    sys.modules.update(entries)
    try:
        yield
    finally:
        for name in [n for n in sys.modules if any(_under(n, p) for p in prefixes) or n in entries]:
            del sys.modules[name]
        sys.modules.update(saved)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def package_stand_in(name: str, folder: Path) -> types.ModuleType:
    """An empty package whose submodules are the ``.py`` files in ``folder`` (its ``__init__`` is not run)."""
    package = types.ModuleType(name)
    package.__path__ = [str(folder)]
    package.__spec__ = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    package.__spec__.submodule_search_locations = [str(folder)]
    return package


def load_reference(path: str | Path | None = None) -> Reference:
    """k-diffusion's modules from ``path`` (a checkout or its ``sampling.py``), else from the installed package."""
    if path is None:
        folder = kdiffusion_location()
        if folder is None:
            raise ModuleNotFoundError(f"k-diffusion is not installed: {INSTALL}")
        try:
            version = importlib.metadata.version("k-diffusion")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a folder on sys.path
            version = "unknown"
    else:
        path = Path(path)
        file = path if path.is_file() else path / "k_diffusion" / "sampling.py"
        if not file.is_file():
            raise FileNotFoundError(f"no k_diffusion/sampling.py at {path}")
        folder, version = file.parent, f"checkout {file.parent}"
    name = "_kdiffusion_reference"
    entries: dict[str, types.ModuleType] = {name: package_stand_in(name, folder)}
    stubs = []
    if importlib.util.find_spec("torchdiffeq") is None:
        entries["torchdiffeq"] = types.ModuleType("torchdiffeq")
        entries["torchdiffeq"].odeint = None  # only log_likelihood calls it
        stubs.append("torchdiffeq (not installed; only log_likelihood uses it)")
    with _modules(entries, [name]):
        try:
            importlib.import_module(f"{name}.utils")
        except ImportError as exc:  # utils.py needs Pillow, safetensors, torchvision; sampling uses append_dims only
            utils = types.ModuleType(f"{name}.utils")
            utils.append_dims = lambda x, ndim: x[(...,) + (None,) * (ndim - x.ndim)]
            sys.modules[utils.__name__] = entries[name].utils = utils
            stubs.append(f"k_diffusion.utils (append_dims only: {exc})")
        sampling = importlib.import_module(f"{name}.sampling")
        try:
            external = importlib.import_module(f"{name}.external")
        except ImportError:  # pragma: no cover - external.py imports nothing beyond sampling and utils
            external = None
    return Reference(sampling, external, folder, version, stubs)


# --- shared inputs ---------------------------------------------------------------------------------------------

BATCH = 6  # points of the 2-D toy mixture
CFG_SCALE = 1.5


class ToyDenoiser:
    """The lab's exact toy-mixture denoiser (cond) guided against the exact denoiser of N(0, I) (uncond).

    ``D = uncond + (cond - uncond) * scale``, ComfyUI's CFG formula, so its post-CFG hooks see the same numbers;
    ``last_uncond_denoised`` is set on every call as sdlab's CFG denoisers do (the CFG++ samplers read it).
    ``sigmas`` / ``sigma_min`` / ``sigma_max``: SD's training table, as on every discrete sdlab model.
    """

    def __init__(self, scale: float = CFG_SCALE) -> None:
        self.mixture = toy_mixture()
        self.scale = scale
        self.sigmas = self.mixture.sigmas
        self.sigma_min, self.sigma_max = self.mixture.sigma_min, self.mixture.sigma_max
        self.last_uncond_denoised: Tensor | None = None

    def parts(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(cond, uncond) predictions of x0."""
        s = sigma.reshape(-1, *[1] * (x.ndim - 1))
        return self.mixture(x, sigma), x / (1 + s**2)

    def __call__(self, x: Tensor, sigma: Tensor, **extra: Any) -> Tensor:
        cond, uncond = self.parts(x, sigma)
        self.last_uncond_denoised = uncond
        return uncond + (cond - uncond) * self.scale


def karras_sigmas(n: int, zero: bool = True, sigma_min: float = 0.0292, sigma_max: float = 14.6146) -> Tensor:
    """Karras et al. 2022 schedule (rho 7) in float64, with or without the final 0."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / 7), sigma_max ** (1 / 7)
    sigmas = (hi + ramp * (lo - hi)) ** 7
    return torch.cat([sigmas, sigmas.new_zeros(1)]) if zero else sigmas


def start_noise(sigmas: Tensor, batch: int = BATCH) -> Tensor:
    """The starting x: seeded standard normal points scaled to sigmas[0]."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, 2, generator=gen, dtype=sigmas.dtype) * sigmas[0]


class NoiseTape:
    """A noise sampler replaying one seeded stream of standard normal draws, whatever the sigmas; it records the
    (sigma, sigma_next) it is asked for."""

    def __init__(self, x: Tensor, seed: int = 1) -> None:
        self.shape, self.dtype = x.shape, x.dtype
        self.generator = torch.Generator().manual_seed(seed)
        self.requests: list[tuple[float, float]] = []

    def __call__(self, sigma: Any, sigma_next: Any) -> Tensor:
        self.requests.append((float(sigma), float(sigma_next)))
        return torch.randn(self.shape, generator=self.generator, dtype=self.dtype)


def rel(a: Any, b: Any) -> float:
    """max|a - b| / max|b| (max|a - b| where b is all 0); inf for different shapes."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        return math.inf
    if a.numel() == 0:
        return 0.0
    scale = b.abs().max().item()
    diff = (a - b).abs().max().item()
    return diff / scale if scale > 0 else diff


def rel_elementwise(a: Tensor, b: Tensor) -> float:
    """max_i |a_i - b_i| / |b_i| over b_i != 0, and |a_i| where b_i == 0; inf for different lengths."""
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    if a.shape != b.shape:
        return math.inf
    scale = torch.where(b == 0, torch.ones_like(b), b.abs())
    return ((a - b).abs() / scale).max().item() if len(b) else 0.0


def compare_runs(
    ours: Tensor, theirs: Tensor, ours_cb: list[dict], theirs_cb: list[dict], keys: Sequence[str]
) -> float:
    """The largest relative difference over the final x and each callback's ``keys`` (inf if the callbacks'
    number or step indices differ)."""
    if len(ours_cb) != len(theirs_cb) or any(a["i"] != b["i"] for a, b in zip(ours_cb, theirs_cb, strict=True)):
        return math.inf
    diffs = [rel(ours, theirs)]
    for a, b in zip(ours_cb, theirs_cb, strict=True):
        diffs += [rel(a[k], b[k]) for k in keys if k in a and k in b]
    return max(diffs)


def compare_requests(ours: list[tuple[float, float]], theirs: list[tuple[float, float]]) -> float:
    """Relative difference of the sigmas two runs asked their noise tapes for (inf if the counts differ)."""
    if len(ours) != len(theirs):
        return math.inf
    return rel(torch.tensor(ours, dtype=torch.float64), torch.tensor(theirs, dtype=torch.float64)) if ours else 0.0


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Run a block with torch's default dtype set (k-diffusion's schedules build their ramps in it)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def takes(fn: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(fn).parameters


# --- the sampler cases -----------------------------------------------------------------------------------------

STEPS = 8
ETA_SAMPLERS = ("euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde")
DPM_SOLVER = ("dpm_fast", "dpm_adaptive")  # eta 0 by default, and endpoints instead of sigmas
CHURN = {"s_churn": 1.0, "s_tmin": 0.05, "s_tmax": 5.0, "s_noise": 1.003}
CALLBACK_KEYS = ("x", "denoised", "sigma", "sigma_hat")


class Case(NamedTuple):
    sampler: str
    options: dict[str, Any]
    zero: bool = True  # the sigmas end in 0
    noise: str = "tape"  # tape | global (torch.manual_seed, no noise sampler) | brownian-int | brownian-list
    endpoints: str = "tensor"  # dpm_fast / dpm_adaptive: k-diffusion gets sigma_min / sigma_max as float64
    # 0-d tensors taken from the sigmas (as ComfyUI calls it) or, with "float", both sides get Python floats (A1111)
    steps: int = STEPS

    @property
    def id(self) -> str:
        opts = ",".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.options.items())
        tags = [] if self.zero else ["no-final-0"]
        tags += [] if self.noise == "tape" else [self.noise]
        tags += ["float-endpoints"] if self.endpoints == "float" else []
        tags += [] if self.steps == STEPS else [f"steps={self.steps}"]
        return f"{self.sampler}[{opts}]" + "".join(f"/{t}" for t in tags)


def _cases() -> list[Case]:
    cases = []
    for name in SAMPLERS:
        if name in ETA_SAMPLERS:
            option_sets: list[dict[str, Any]] = [{}, {"eta": 0.0}, {"eta": 0.6, "s_noise": 0.9}]
        elif name in DPM_SOLVER:
            option_sets = [{}, {"eta": 1.0}, {"eta": 0.6, "s_noise": 0.9}]
        else:
            option_sets = [{}]
        cases += [Case(name, opts, zero) for zero in (True, False) for opts in option_sets]
    return cases + [
        Case("euler", CHURN, noise="global"),
        Case("heun", CHURN, noise="global"),
        Case("heun", CHURN, zero=False, noise="global"),
        Case("dpm_2", CHURN, noise="global"),
        Case("lms", {"order": 2}),
        Case("lms", {"order": 3}, zero=False),
        Case("dpm_fast", {}, endpoints="float"),
        Case("dpm_fast", {"eta": 1.0}, endpoints="float"),
        Case("dpm_fast", {"eta": 0.5, "s_noise": 0.9}, endpoints="float", steps=12),
        Case("dpm_adaptive", {}, endpoints="float"),
        Case("dpm_adaptive", {"eta": 1.0}, endpoints="float"),
        Case("dpm_adaptive", {"order": 2, "rtol": 0.02}, endpoints="float"),
        Case("dpm_adaptive", {"pcoeff": 0.3, "icoeff": 0.5, "dcoeff": 0.1, "h_init": 0.1}, endpoints="float"),
        Case("dpm_adaptive", {"eta": 0.5, "order": 2, "accept_safety": 0.9}, zero=False, endpoints="float"),
        Case("dpmpp_sde", {"r": 1 / 3, "s_noise": 0.95}),
        Case("dpmpp_sde", {}, noise="global"),
        Case("dpmpp_sde", {}, noise="brownian-list"),
        Case("dpmpp_sde", {"eta": 0.5}, zero=False, noise="brownian-int"),
        Case("dpmpp_2m_sde", {"solver_type": "heun"}),
        Case("dpmpp_2m_sde", {"solver_type": "heun", "eta": 0.0}, zero=False),
        Case("dpmpp_2m_sde", {"solver_type": "heun", "eta": 0.5}, noise="global"),
        Case("dpmpp_2m_sde", {}, noise="brownian-int"),
        Case("dpmpp_3m_sde", {"eta": 0.6, "s_noise": 1.02}, noise="global"),
        Case("dpmpp_3m_sde", {}, noise="brownian-list"),
    ]


CASES: list[Case] = _cases()


def _call(fn: Callable[..., Any], x: Tensor, kw: dict[str, Any], noise: Any) -> tuple[Any, list[dict], Any]:
    """Run ``fn`` with a recording callback; returns (result, callbacks, the noise sampler it got)."""
    records: list[dict[str, Any]] = []
    torch.manual_seed(1234)  # the global stream, for the "global" cases and any draw a sampler makes on its own
    noise = noise() if callable(noise) else noise
    if noise is not None and takes(fn, "noise_sampler"):
        kw = {**kw, "noise_sampler": noise}
    else:
        noise = None
    with warnings.catch_warnings():  # torchsde warns on times a rounding error outside the tree
        warnings.simplefilter("ignore", UserWarning)
        out = fn(ToyDenoiser(), x.clone(), callback=records.append, **kw)
    return out, records, noise


def run_case(ref: Reference, case: Case) -> float:
    """Largest relative difference between sdlab and k-diffusion on one case (inf if the steps differ)."""
    sigmas = karras_sigmas(case.steps, case.zero)
    x = start_noise(sigmas)
    s_min, s_max = sigmas[sigmas > 0].min(), sigmas[0]
    ours_fn, theirs_fn = SAMPLERS[case.sampler], getattr(ref.sampling, f"sample_{case.sampler}")

    def noise(make_brownian: Callable[..., Any]) -> Any:
        if case.noise == "tape":
            return lambda: NoiseTape(x)
        if case.noise == "global":
            return None
        seeds = list(range(5, 5 + x.shape[0])) if case.noise == "brownian-list" else 5
        return lambda: make_brownian(x, s_min, s_max, seed=seeds)

    ours_kw: dict[str, Any] = {"sigmas": sigmas.clone(), **case.options}
    theirs_kw: dict[str, Any] = dict(case.options)
    if case.sampler in DPM_SOLVER:  # k-diffusion takes the endpoints (and n) instead of sigmas
        if case.endpoints == "float":
            theirs_kw.update(sigma_min=float(s_min), sigma_max=float(s_max))
            ours_kw.update(sigma_min=float(s_min), sigma_max=float(s_max))
        else:
            theirs_kw.update(sigma_min=s_min.clone(), sigma_max=s_max.clone())
        if case.sampler == "dpm_fast":
            theirs_kw["n"] = len(sigmas) - 1
        else:
            theirs_kw["return_info"] = ours_kw["return_info"] = True
    else:
        theirs_kw["sigmas"] = sigmas.clone()
    ours, ours_cb, ours_noise = _call(ours_fn, x, ours_kw, noise(BrownianTreeNoiseSampler))
    theirs, theirs_cb, theirs_noise = _call(theirs_fn, x, theirs_kw, noise(ref.sampling.BrownianTreeNoiseSampler))
    if case.sampler == "dpm_adaptive":
        (ours, ours_info), (theirs, theirs_info) = ours, theirs
        if ours_info != theirs_info:
            return math.inf
    diff = compare_runs(ours, theirs, ours_cb, theirs_cb, CALLBACK_KEYS)
    if isinstance(ours_noise, NoiseTape) and isinstance(theirs_noise, NoiseTape):
        diff = max(diff, compare_requests(ours_noise.requests, theirs_noise.requests))
    return diff


def run_brownian(ref: Reference, seed: Any) -> float:
    """Largest relative difference between the two BrownianTreeNoiseSamplers over a few intervals."""
    x = torch.zeros(2, 3, 4, dtype=torch.float64)
    lo, hi = torch.tensor(0.03, dtype=torch.float64), torch.tensor(14.6, dtype=torch.float64)
    ours = BrownianTreeNoiseSampler(x, lo, hi, seed=seed, cpu=False)
    theirs = ref.sampling.BrownianTreeNoiseSampler(x, lo, hi, seed=seed)
    pairs = [(14.6, 10.0), (10.0, 3.0), (0.5, 0.03), (3.0, 10.0), (1.0, 0.9)]
    pairs = [(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)) for a, b in pairs]
    return max(rel(ours(a, b), theirs(a, b)) for a, b in pairs)


# --- the schedule cases ----------------------------------------------------------------------------------------

SD_RANGE = {"sigma_min": 0.0292, "sigma_max": 14.6146}


class ScheduleCase(NamedTuple):
    schedule: str  # sdlab's name; k-diffusion's get_sigmas_<name>, or "uniform": DiscreteSchedule.get_sigmas
    steps: int
    options: dict[str, Any]

    @property
    def id(self) -> str:
        opts = ",".join(f"{k}={v:g}" for k, v in self.options.items())
        return f"{self.schedule}[steps={self.steps}{',' if opts else ''}{opts}]"


SCHEDULE_CASES: list[ScheduleCase] = [
    *(ScheduleCase("karras", n, {**SD_RANGE, "rho": 7.0}) for n in (1, 2, 8, 25)),
    ScheduleCase("karras", 10, {"sigma_min": 0.1, "sigma_max": 10.0, "rho": 3.0}),
    *(ScheduleCase("exponential", n, SD_RANGE) for n in (2, 8, 25)),
    *(ScheduleCase("polyexponential", n, {**SD_RANGE, "rho": 1.0}) for n in (2, 8)),
    ScheduleCase("polyexponential", 12, {**SD_RANGE, "rho": 2.5}),
    *(ScheduleCase("vp", n, {}) for n in (2, 8, 25)),
    ScheduleCase("vp", 10, {"beta_d": 15.0, "beta_min": 0.2, "eps_s": 0.01}),
    *(ScheduleCase("uniform", n, {}) for n in (1, 2, 8, 25, 1000)),
]


def discrete_schedule(ref: Reference) -> Any:
    """k-diffusion's DiscreteSchedule (unquantised, as A1111's default) on sdlab's SD training table."""
    return ref.external.DiscreteSchedule(schedules.sd_training_sigmas(), quantize=False)


def run_schedule(ref: Reference, case: ScheduleCase) -> float:
    """Elementwise relative difference between sdlab's ``get_sigmas`` (float64) and k-diffusion's (float64)."""
    opts = dict(case.options)
    rho = opts.pop("rho", None)
    ours = schedules.get_sigmas(case.schedule, case.steps, rho=rho, dtype=torch.float64, **opts)
    with default_dtype(torch.float64):
        if case.schedule == "uniform":
            theirs = discrete_schedule(ref).get_sigmas(case.steps)
        else:
            theirs = getattr(ref.sampling, f"get_sigmas_{case.schedule}")(case.steps, **case.options)
    return rel_elementwise(ours, theirs)


def run_time_maps(ref: Reference) -> float:
    """sdlab's sigma_to_t / t_to_sigma against DiscreteSchedule's, on and between the table's entries.

    t is compared relative to its range (max |t|): near t = 0 an elementwise ratio would only measure that
    DiscreteSchedule takes the log of the float32 table in float32 and sdlab in float64 (2e-7 apart in t).
    """
    table = schedules.sd_training_sigmas()
    ds = discrete_schedule(ref)
    sigmas = [14.6146, 14.0, 10.0, 3.0, 1.0, 0.5, 0.1, 0.05, 0.0292, 0.02, 20.0, float(table[0]), float(table[-1])]
    ts = torch.tensor([0.0, 0.5, 10.25, 250.0, 500.7, 998.9, 999.0], dtype=torch.float64)
    with default_dtype(torch.float64):
        theirs_t = ds.sigma_to_t(torch.tensor(sigmas, dtype=torch.float64))
        theirs_sigma = ds.t_to_sigma(ts)
    ours_t = torch.tensor([schedules.sigma_to_t(table, s) for s in sigmas], dtype=torch.float64)
    ours_sigma = schedules.t_to_sigma(table, ts)
    return max(rel(ours_t, theirs_t), rel_elementwise(ours_sigma, theirs_sigma))


def kdiffusion_schedules(ref: Reference) -> set[str]:
    """The schedules k-diffusion defines: its ``get_sigmas_<name>`` functions and DiscreteSchedule's "uniform"."""
    names = {n.removeprefix("get_sigmas_") for n in dir(ref.sampling) if n.startswith("get_sigmas_")}
    return names | ({"uniform"} if ref.external is not None else set())


# --- the table -------------------------------------------------------------------------------------------------


def rows(ref: Reference) -> list[tuple[str, float]]:
    out = [(case.id, run_case(ref, case)) for case in CASES]
    out += [(f"BrownianTreeNoiseSampler[seed={s}]", run_brownian(ref, s)) for s in (7, [7, 8])]
    out += [(f"schedule {case.id}", run_schedule(ref, case)) for case in SCHEDULE_CASES]
    out += [("DiscreteSchedule sigma_to_t / t_to_sigma", run_time_maps(ref))]
    return out


def print_table(title: str, table: list[tuple[str, float]]) -> bool:
    width = max(len(name) for name, _ in table)
    print(title)
    print(f"{'case':<{width}}  max rel diff  ok (< {TOLERANCE:g})")
    for name, diff in table:
        print(f"{name:<{width}}  {diff:12.3e}  {'yes' if diff < TOLERANCE else 'NO'}")
    failed = [name for name, diff in table if not diff < TOLERANCE]
    print(f"{len(table) - len(failed)} passed, {len(failed)} failed")
    return not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="k-diffusion checkout or k_diffusion/sampling.py")
    args = parser.parse_args(argv)
    ref = load_reference(args.path)
    title = f"sdlab vs k-diffusion {ref.version} ({ref.location}); stubs: {', '.join(ref.stubs) or 'none'}"
    return 0 if print_table(title, rows(ref)) else 1


if __name__ == "__main__":
    sys.exit(main())
