"""sdlab's k-diffusion samplers and schedules against k-diffusion itself, in float64, on the same inputs.

The reference is the installed k-diffusion package (``make test`` installs it: ``pip install --no-deps
"k-diffusion==0.1.1.post1" torchdiffeq``); its ``sampling.py`` and ``external.py`` are imported from the
package folder without running the package ``__init__`` (which needs its training dependencies). A checkout
can stand in for it with ``SDLAB_KDIFFUSION_PATH``. Without either the module skips, saying how to install.
The cases, and a script printing them as a table, live in ``scripts/check_kdiffusion.py``.
"""

from __future__ import annotations

import os

import pytest
from scripts_loader import load_script

check = load_script("check_kdiffusion")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference() -> check.Reference:
    path = os.environ.get("SDLAB_KDIFFUSION_PATH")
    if path:
        return check.load_reference(path)
    if check.kdiffusion_location() is None:
        pytest.skip(f"k-diffusion is not installed (make test installs it: {check.INSTALL})")
    return check.load_reference()


@pytest.mark.parametrize("case", check.CASES, ids=[case.id for case in check.CASES])
def test_sampler_matches_kdiffusion(reference: check.Reference, case: check.Case) -> None:
    assert check.run_case(reference, case) < check.TOLERANCE


@pytest.mark.parametrize("seed", [7, [7, 8]], ids=["int", "list"])
def test_brownian_noise_matches_kdiffusion(reference: check.Reference, seed: int | list[int]) -> None:
    assert check.run_brownian(reference, seed) < check.TOLERANCE


@pytest.mark.parametrize("case", check.SCHEDULE_CASES, ids=[case.id for case in check.SCHEDULE_CASES])
def test_schedule_matches_kdiffusion(reference: check.Reference, case: check.ScheduleCase) -> None:
    assert check.run_schedule(reference, case) < check.TOLERANCE


def test_time_maps_match_discrete_schedule(reference: check.Reference) -> None:
    assert check.run_time_maps(reference) < check.TOLERANCE


def test_every_sampler_is_checked() -> None:
    from sdlab.samplers.kdiffusion import SAMPLERS

    assert {case.sampler for case in check.CASES} == set(SAMPLERS)
    for name in SAMPLERS:  # each with and without a final 0, and eta 0 and > 0 where it takes eta
        cases = [case for case in check.CASES if case.sampler == name]
        assert {case.zero for case in cases} == {True, False}, name
        if name in (*check.ETA_SAMPLERS, *check.DPM_SOLVER):
            etas = {case.options.get("eta", 0.0 if name in check.DPM_SOLVER else 1.0) for case in cases}
            assert 0.0 in etas and any(eta > 0 for eta in etas), name


def test_every_kdiffusion_schedule_is_checked(reference: check.Reference) -> None:
    from sdlab.schedules import list_schedules

    ours = {info.name for info in list_schedules()}
    assert check.kdiffusion_schedules(reference) <= ours  # sdlab has every schedule k-diffusion defines ...
    assert check.kdiffusion_schedules(reference) <= {case.schedule for case in check.SCHEDULE_CASES}  # ... checked
