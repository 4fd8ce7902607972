"""Compare sdlab's k-diffusion samplers with k-diffusion's own, in float64, on the same denoiser, sigmas and noise.

    python scripts/check_kdiffusion.py PATH   # a k-diffusion checkout, or its k_diffusion/sampling.py
    python scripts/check_kdiffusion.py        # the installed k_diffusion package

Prints, per sampler and option set, the largest relative difference max|ours - theirs| / max|theirs| over
the final x and every callback's x and denoised (``inf`` if the callbacks differ in number or step index).
``sampling.py`` is loaded on its own: its ``from . import utils`` gets a stand-in with the one function it
uses (``append_dims``), and ``torchdiffeq`` (used only by ``log_likelihood``) a stub when not installed.
``tests/test_reference_kdiffusion.py`` runs the same cases.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import math
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sdlab.samplers.brownian import BrownianTreeNoiseSampler
from sdlab.samplers.kdiffusion import SAMPLERS

TOLERANCE = 1e-6


def load_reference(path: str | Path | None = None) -> types.ModuleType:
    """k-diffusion's ``sampling`` module: from ``path`` (checkout or ``sampling.py``), else the installed one."""
    if path is None:
        return importlib.import_module("k_diffusion.sampling")
    path = Path(path)
    file = path if path.is_file() else path / "k_diffusion" / "sampling.py"
    if not file.is_file():
        raise FileNotFoundError(f"no k_diffusion/sampling.py at {path}")
    package = types.ModuleType("_kdiffusion_reference")
    package.__path__ = [str(file.parent)]
    utils = types.ModuleType("_kdiffusion_reference.utils")
    utils.append_dims = lambda x, ndim: x[(...,) + (None,) * (ndim - x.ndim)]
    package.utils = utils
    stubs = {"_kdiffusion_reference": package, "_kdiffusion_reference.utils": utils}
    if importlib.util.find_spec("torchdiffeq") is None:
        stubs["torchdiffeq"] = types.ModuleType("torchdiffeq")
        stubs["torchdiffeq"].odeint = None
    spec = importlib.util.spec_from_file_location("_kdiffusion_reference.sampling", file)
    module = importlib.util.module_from_spec(spec)
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def denoiser(x: Tensor, sigma: Tensor, *, scale: float = 1.0) -> Tensor:
    """A smooth nonlinear stand-in for a network: a Gaussian posterior mean bent by tanh (elementwise)."""
    s = sigma.view(-1, *[1] * (x.ndim - 1))
    linear = (0.49 * x + s**2 * 0.3) / (0.49 + s**2)
    return scale * linear + 0.1 * torch.tanh(x) * s / (1 + s**2)


def karras_sigmas(n: int, sigma_min: float = 0.03, sigma_max: float = 14.6, rho: float = 7.0) -> Tensor:
    """Karras et al. 2022 schedule in float64, with the final 0."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1, dtype=torch.float64)])


def noise_tape(x: Tensor, seed: int) -> Callable[[Any, Any], Tensor]:
    """A noise sampler that replays one seeded stream of standard normal draws, whatever the sigmas."""
    generator = torch.Generator().manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(x.shape, generator=generator, dtype=x.dtype)


class Case(NamedTuple):
    sampler: str
    options: dict[str, Any]
    noise: str = "tape"  # tape: injected seeded stream; global: torch.manual_seed, noise_sampler=None;
    # brownian-list / brownian-int: each side's own BrownianTreeNoiseSampler with the same seeds
    steps: int = 9

    @property
    def id(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.sampler}[{opts}]{'' if self.noise == 'tape' else '/' + self.noise}"


CHURN = {"s_churn": 1.0, "s_tmin": 0.05, "s_tmax": 5.0, "s_noise": 1.003}

CASES: list[Case] = [
    Case("euler", {}),
    Case("euler", CHURN, "global"),
    Case("euler_ancestral", {}),
    Case("euler_ancestral", {"eta": 0.5, "s_noise": 0.9}),
    Case("heun", {}),
    Case("heun", CHURN, "global"),
    Case("dpm_2", {}),
    Case("dpm_2", CHURN, "global"),
    Case("dpm_2_ancestral", {}),
    Case("dpm_2_ancestral", {"eta": 0.7, "s_noise": 1.01}),
    Case("lms", {}),
    Case("lms", {"order": 2}),
    Case("dpm_fast", {}),
    Case("dpm_fast", {"eta": 1.0}),
    Case("dpm_fast", {"eta": 0.5, "s_noise": 0.9}, steps=12),
    Case("dpm_adaptive", {}),
    Case("dpm_adaptive", {"order": 2, "rtol": 0.02}),
    Case("dpm_adaptive", {"eta": 1.0}),
    Case("dpm_adaptive", {"pcoeff": 0.3, "icoeff": 0.5, "dcoeff": 0.1, "h_init": 0.1}),
    Case("dpmpp_2s_ancestral", {}),
    Case("dpmpp_2s_ancestral", {"eta": 0.0}),
    Case("dpmpp_sde", {}),
    Case("dpmpp_sde", {"eta": 0.0}),
    Case("dpmpp_sde", {"r": 1 / 3, "s_noise": 0.95}),
    Case("dpmpp_sde", {}, "global"),
    Case("dpmpp_sde", {}, "brownian-list"),
    Case("dpmpp_2m", {}),
    Case("dpmpp_2m_sde", {}),
    Case("dpmpp_2m_sde", {"solver_type": "heun"}),
    Case("dpmpp_2m_sde", {"eta": 0.0}),
    Case("dpmpp_2m_sde", {"solver_type": "heun", "eta": 0.5}, "global"),
    Case("dpmpp_2m_sde", {}, "brownian-int"),
    Case("dpmpp_3m_sde", {}),
    Case("dpmpp_3m_sde", {"eta": 0.0}),
    Case("dpmpp_3m_sde", {"eta": 0.6, "s_noise": 1.02}, "global"),
    Case("dpmpp_3m_sde", {}, "brownian-list"),
]


def _run(fn: Callable[..., Any], case: Case, x: Tensor, make_noise: Callable[[], Any], **kw: Any):
    records: list[dict[str, Any]] = []
    torch.manual_seed(1234)
    noise = make_noise()
    if noise is not None and "noise_sampler" in inspect.signature(fn).parameters:
        kw["noise_sampler"] = noise
    out = fn(denoiser, x, extra_args={"scale": 0.97}, callback=records.append, **kw, **case.options)
    return out, records


def _rel(a: Any, b: Any) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def run_case(ref: types.ModuleType, case: Case, dtype: torch.dtype = torch.float64) -> float:
    """Largest relative difference between sdlab and k-diffusion on one case (inf if the steps differ)."""
    sigmas = karras_sigmas(case.steps).to(dtype)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype) * sigmas[0]
    s_min, s_max = sigmas[sigmas > 0].min(), sigmas.max()

    def noise_for(module_sampler: Callable[..., Any] | None) -> Callable[[], Any]:
        if case.noise == "tape":
            return lambda: noise_tape(x, seed=1)
        if case.noise == "global":
            return lambda: None
        seed = [5, 6] if case.noise == "brownian-list" else 5
        return lambda: module_sampler(x, s_min, s_max, seed=seed)

    ours_fn = SAMPLERS[case.sampler]
    theirs_fn = getattr(ref, f"sample_{case.sampler}")
    ours, ours_cb = _run(ours_fn, case, x, noise_for(BrownianTreeNoiseSampler), sigmas=sigmas)
    if case.sampler in ("dpm_fast", "dpm_adaptive"):
        # k-diffusion takes the endpoints (and n) instead of sigmas; sdlab derives them from sigmas
        kw: dict[str, Any] = {"sigma_min": float(s_min), "sigma_max": float(s_max)}
        if case.sampler == "dpm_fast":
            kw["n"] = len(sigmas) - 1
        else:
            kw["return_info"] = True
    else:
        kw = {"sigmas": sigmas}
    with warnings.catch_warnings():  # torchsde's warnings on times a rounding error outside the tree
        warnings.simplefilter("ignore", UserWarning)
        theirs, theirs_cb = _run(theirs_fn, case, x, noise_for(ref.BrownianTreeNoiseSampler), **kw)
    if case.sampler == "dpm_adaptive":
        theirs, info = theirs
        if any(ours_cb[-1][k] != info[k] for k in ("steps", "nfe", "n_accept", "n_reject")):
            return math.inf
    if len(ours_cb) != len(theirs_cb) or any(a["i"] != b["i"] for a, b in zip(ours_cb, theirs_cb, strict=True)):
        return math.inf
    diffs = [_rel(ours, theirs)]
    for a, b in zip(ours_cb, theirs_cb, strict=True):
        diffs += [_rel(a[k], b[k]) for k in ("x", "denoised", "sigma", "sigma_hat")]
    return max(diffs)


def run_brownian(ref: types.ModuleType, seed: Any) -> float:
    """Largest relative difference between the two BrownianTreeNoiseSamplers over a few intervals."""
    x = torch.zeros(2, 3, 4, dtype=torch.float64)
    lo, hi = torch.tensor(0.03, dtype=torch.float64), torch.tensor(14.6, dtype=torch.float64)
    ours = BrownianTreeNoiseSampler(x, lo, hi, seed=seed)
    theirs = ref.BrownianTreeNoiseSampler(x, lo, hi, seed=seed)
    pairs = [(14.6, 10.0), (10.0, 3.0), (0.5, 0.03), (3.0, 10.0), (1.0, 0.9)]
    pairs = [(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)) for a, b in pairs]
    return max(_rel(ours(a, b), theirs(a, b)) for a, b in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="k-diffusion checkout or k_diffusion/sampling.py")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"], help="x and sigmas dtype")
    args = parser.parse_args(argv)
    ref = load_reference(args.path)
    dtype = getattr(torch, args.dtype)
    rows = [(case.id, run_case(ref, case, dtype)) for case in CASES]
    rows += [(f"BrownianTreeNoiseSampler[seed={s}]", run_brownian(ref, s)) for s in (7, [7, 8])]
    width = max(len(name) for name, _ in rows)
    print(f"{'case':<{width}}  max rel diff  ok (< {TOLERANCE:g})")
    for name, diff in rows:
        print(f"{name:<{width}}  {diff:12.3e}  {'yes' if diff < TOLERANCE else 'NO'}")
    return 0 if all(diff < TOLERANCE for _, diff in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
