"""Old import paths that keep working for one release: a moved module's old file forwards to the new one.

A moved module leaves behind a file of two lines::

    from sdlab.deprecation import forward
    __getattr__ = forward(__name__, "sdlab.sweeps")

Every name read from the old path then comes from the new module, with a ``DeprecationWarning`` that names both.
:func:`lazy` gives a package names read from their modules on first use, old names of it included.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["forward", "lazy"]


def forward(old: str, new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old`` that reads each name from module ``new``, warning that it moved."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        warnings.warn(
            f"{old} moved to {new}; import {name} from {new} (the old path goes away in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new), name)

    return __getattr__


def lazy(
    package: str, names: Mapping[str, str], renamed: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__``: each public name (``names``: name -> module) read from its
    module on first use and kept; an old name of ``renamed`` (old -> new) warns and reads the new one.

    >>> __getattr__, __dir__ = lazy(__name__, {"generate": "sdlab.generation"})
    """
    renamed = dict(renamed or {})
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name in renamed:
            warnings.warn(
                f"{package}: {name} is now {renamed[name]} (the old name goes away in the next release)",
                DeprecationWarning,
                stacklevel=2,
            )
            return __getattr__(renamed[name])
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace["__all__"])

    return __getattr__, __dir__
