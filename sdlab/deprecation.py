"""Old import paths that keep working for one release: a moved module's old file forwards to the new one.

A moved module leaves behind a file of two lines::

    from sdlab.deprecation import forward
    __getattr__ = forward(__name__, "sdlab.sweeps")

Every name read from the old path then comes from the new module, with a ``DeprecationWarning`` that names both.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["forward"]


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
