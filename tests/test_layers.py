"""The folder tree is the architecture: every module's imports are read here and checked against the floors of
docs/architecture.md. A module imports only from its own floor and the floors below, never closes a circle, never
imports another module's private name, and imports sdlab at module top (only heavy optional third-party
dependencies are imported inside functions, so that ``import sdlab`` stays light)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sdlab"

# the one map of floors (docs/architecture.md draws it): the longest matching prefix decides a module's floor
FLOORS: dict[str, int] = {
    "sdlab.errors": 0,
    "sdlab.limits": 0,
    "sdlab.environment": 0,
    "sdlab.deprecation": 0,
    "sdlab.options": 0,
    "sdlab.inputs": 0,
    "sdlab.noise": 1,
    "sdlab.philox": 1,
    "sdlab.rng": 1,
    "sdlab.schedules": 1,
    "sdlab.samplers": 2,
    "sdlab.models": 3,
    "sdlab.embedded": 3,
    "sdlab.spec": 4,
    "sdlab.infotext": 4,
    "sdlab.generation": 4,
    "sdlab.rerun": 4,
    "sdlab.measure": 5,
    "sdlab.metrics": 5,
    "sdlab.experiments": 5,
    "sdlab.groundtruth": 5,
    "sdlab.embedded.training": 5,
    "sdlab.embedded.evaluate": 5,
    "sdlab.embedded.train": 5,
    "sdlab.embedded.dataset": 5,
    "sdlab.embedded.classifier": 5,
    "sdlab.embedded.tiny_decoder": 5,
    "sdlab.viz": 6,
    "sdlab.display": 6,
    "sdlab.charts": 6,
    "sdlab.sweeps": 7,
    "sdlab.sweep": 7,
    "sdlab.store": 7,
    "sdlab.cluster": 7,
    "sdlab.folklore": 7,
    "sdlab.lab": 8,
    "sdlab.workflows": 8,
    "sdlab.report": 8,
    "sdlab.notebooks": 8,
    "sdlab.cli": 9,
    "sdlab.testing": 9,
    "sdlab.__main__": 9,
    "sdlab": 9,  # the package's lazy front door
}
# third-party packages that stay lazy: imported inside the functions that need them
HEAVY = {"diffusers", "transformers", "plotly", "matplotlib", "ipywidgets", "anywidget", "IPython", "ray", "lpips",
         "torchvision", "skimage", "papermill", "nbformat", "nbclient", "jupytext", "scipy", "torchsde", "PIL",
         "safetensors", "accelerate", "huggingface_hub", "tqdm", "pandas", "pyarrow"}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> int:
    best = max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)
    return FLOORS[best]


def imports(path: Path) -> list[tuple[str, list[str], int, bool]]:
    """(module, names, line, at module top) for each import of an sdlab module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    for node in tree.body:  # an `if TYPE_CHECKING:` block counts as top
        if isinstance(node, ast.If):
            top.update(id(n) for n in node.body)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("sdlab"):
            found.append((node.module, [a.name for a in node.names], node.lineno, id(node) in top))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sdlab"):
                    found.append((alias.name, [], node.lineno, id(node) in top))
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(target: str, names: list[str]) -> list[str]:
    """The modules an import reads: ``from sdlab.x import y`` reads sdlab.x.y where that is a module."""
    out = []
    for name in names or [""]:
        sub = f"{target}.{name}" if name else target
        out.append(sub if sub in MODULES else target)
    return out


def test_no_import_goes_up_a_floor():
    wrong = []
    for module, path in MODULES.items():
        for target, names, line, _ in imports(path):
            for read in _resolve(target, names):
                if read != module and floor(read) > floor(module):
                    wrong.append(f"{path.relative_to(ROOT)}:{line} {module} (floor {floor(module)}) imports "
                                 f"{read} (floor {floor(read)})")  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_no_import_closes_a_circle():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for target, names, _, at_top in imports(path):
            if at_top:
                graph[module].update(r for r in _resolve(target, names) if r != module and r != "sdlab")
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(trail[trail.index(nxt) :] + [nxt]) if nxt in trail else nxt)
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, "\n".join(circles)


def test_no_private_name_crosses_modules():
    wrong = []
    for path in MODULES.values():
        for target, names, line, _ in imports(path):
            for name in names:
                if name.startswith("_") and not name.startswith("__") and f"{target}.{name}" not in MODULES:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}.{name}")
    assert not wrong, "\n".join(wrong)


def test_sdlab_imports_sit_at_module_top():
    wrong = []
    for module, path in MODULES.items():
        for target, _, line, at_top in imports(path):
            if not at_top and module != "sdlab":
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} inside a function")
    assert not wrong, f"{len(wrong)} imports inside functions:\n" + "\n".join(wrong)


def test_every_module_has_a_floor():
    assert all(floor(m) >= 0 for m in MODULES)


@pytest.mark.parametrize("module", ["sdlab"])
def test_import_sdlab_stays_light(module):
    code = (f"import sys; import {module}; heavy = sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules); "
            "print(','.join(heavy))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import {module} loaded: {out}"
