"""The environment variables sdlab reads, each read one way, in this one place.

| variable | meaning |
|---|---|
| ``SDLAB_OFFLINE`` or ``HF_HUB_OFFLINE`` | never reach a model hub: load only local files and cached downloads |
| ``SDLAB_MAX_PIXELS`` | largest image, in pixels (:mod:`sdlab.limits`) |
| ``SDLAB_MAX_SWEEP_IMAGES`` | most images in one sweep (:mod:`sdlab.limits`) |
| ``SDLAB_TAESD`` | a folder holding the tiny decoder (TAESD) of a Stable Diffusion model |
| ``SDLAB_LPIPS_RANDOM_BACKBONE`` | LPIPS on a seeded random backbone (tests and benchmarks where none is cached) |

A flag is on when its value is ``1``, ``true``, ``yes`` or ``on`` (any case) and off when unset, empty, ``0``,
``false``, ``no`` or ``off``; any other value is an error rather than a guess.
"""

from __future__ import annotations

import os

from sdlab.errors import SdlabError

__all__ = ["flag", "offline", "OFFLINE_VARIABLES"]

OFFLINE_VARIABLES = ("SDLAB_OFFLINE", "HF_HUB_OFFLINE")
_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")


def flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to an "on" value (see the module docstring)."""
    value = os.environ.get(name, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise SdlabError(
        f"environment variable {name} must be on or off", setting=name, got=os.environ[name], hint="use 1 or 0"
    )


def offline() -> bool:
    """Whether sdlab must not reach a model hub (``SDLAB_OFFLINE`` or ``HF_HUB_OFFLINE`` is on)."""
    return any(flag(name) for name in OFFLINE_VARIABLES)
