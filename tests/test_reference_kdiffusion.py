"""sdlab's k-diffusion samplers against k-diffusion itself, in float64, on the same denoiser, sigmas and noise.

Runs when ``k_diffusion.sampling`` is importable, or when ``SDLAB_KDIFFUSION_PATH`` points at a k-diffusion
checkout (or its ``k_diffusion/sampling.py``), which is then loaded on its own; skips otherwise. The cases
live in ``scripts/check_kdiffusion.py``, which prints the same comparison as a table.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_kdiffusion.py"


def _load_check() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("check_kdiffusion", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_kdiffusion", module)
    spec.loader.exec_module(module)
    return module


check = _load_check()


@pytest.fixture(scope="module")
def reference() -> types.ModuleType:
    path = os.environ.get("SDLAB_KDIFFUSION_PATH")
    if path:
        return check.load_reference(path)
    return pytest.importorskip("k_diffusion.sampling")


@pytest.mark.parametrize("case", check.CASES, ids=[case.id for case in check.CASES])
def test_sampler_matches_kdiffusion(reference: types.ModuleType, case: check.Case) -> None:
    assert check.run_case(reference, case) < check.TOLERANCE


@pytest.mark.parametrize("seed", [7, [7, 8]], ids=["int", "list"])
def test_brownian_noise_matches_kdiffusion(reference: types.ModuleType, seed: int | list[int]) -> None:
    assert check.run_brownian(reference, seed) < check.TOLERANCE


def test_every_sampler_is_checked() -> None:
    from sdlab.samplers.kdiffusion import SAMPLERS

    assert {case.sampler for case in check.CASES} == set(SAMPLERS)
