"""The one exception type sdlab raises, with the context needed to act on it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["SdlabError", "closest"]


class SdlabError(ValueError):
    """Bad input or a failed run, named with its context and what to do about it.

    >>> raise SdlabError("steps must be >= 1", sampler="Euler", steps=0, hint="pass steps=20")
    Traceback (most recent call last):
    ...
    sdlab.errors.SdlabError: steps must be >= 1 [sampler='Euler', steps=0] -> pass steps=20

    Subclasses ``ValueError`` so generic callers that catch bad values keep working.
    """

    def __init__(self, message: str, *, hint: str | None = None, **context: Any) -> None:
        self.message = message
        self.hint = hint
        self.context = {k: v for k, v in context.items() if v is not None}
        super().__init__(self._format())

    def with_context(self, **context: Any) -> SdlabError:
        """The same error with more context (given keys override), e.g. naming the config key it came from."""
        return SdlabError(self.message, hint=self.hint, **{**self.context, **context})

    def _format(self) -> str:
        text = self.message
        if self.context:
            text += " [" + ", ".join(f"{k}={v!r}" for k, v in self.context.items()) + "]"
        if self.hint:
            text += f" -> {self.hint}"
        return text


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """A "did you mean ...?" hint listing the choices nearest to ``name`` (case-insensitive)."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.4)
    if not hits:
        return "choose one of: " + ", ".join(sorted(choices)[:12]) + (" ..." if len(choices) > 12 else "")
    return "did you mean " + " or ".join(repr(lowered[h]) for h in hits) + "?"
