"""What values an option may take: :class:`Domain`, one declarative description, and :func:`check_option`.

The machinery behind every option table of sdlab (floor 0, imports only :mod:`sdlab.errors`): the sampler
options (:data:`sdlab.samplers.domains.SAMPLER_OPTION_DOMAINS`) and the schedule options
(:data:`sdlab.schedules.SCHEDULE_OPTION_DOMAINS`) are tables of :class:`Domain`. Values are never converted:
``eta="0.5"`` is refused with a hint, not read as 0.5.

>>> Domain.real(0, low_open=True).describe()
'a finite number > 0'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sdlab.errors import SdlabError, closest

__all__ = ["Domain", "check_option"]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _fmt(value: float) -> str:
    return "inf" if value == math.inf else f"{value:g}"


@dataclass(frozen=True)
class Domain:
    """The values one option accepts.

    ``kind``: "real", "int", "bool", "choice", "callable", "text", "restart_list" or "generator". ``low`` /
    ``high`` bound a real or int (``low_open`` / ``high_open`` exclude the bound). A real must be finite unless
    ``inf_ok`` (then +inf is allowed too). ``none_ok``: None is accepted (it means the function's default).
    ``note`` is added to the hint (what the value means, the front end's default).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    none_ok: bool = False
    inf_ok: bool = False
    note: str = ""

    # --- constructors --------------------------------------------------------------------------------------

    @classmethod
    def real(
        cls,
        low: float | None = None,
        high: float | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
        none_ok: bool = False,
        inf_ok: bool = False,
        note: str = "",
    ) -> Domain:
        """A number (int or float, not bool) in the given range, finite unless ``inf_ok``."""
        return cls("real", low, high, low_open, high_open, (), none_ok, inf_ok, note)

    @classmethod
    def integer(
        cls, low: int | None = None, high: int | None = None, *, none_ok: bool = False, note: str = ""
    ) -> Domain:
        """An int (not bool) in [low, high]."""
        return cls("int", low, high, none_ok=none_ok, note=note)

    @classmethod
    def one_of(cls, *choices: str, note: str = "") -> Domain:
        """One of the given strings, spelt exactly."""
        return cls("choice", choices=tuple(choices), note=note)

    @classmethod
    def flag(cls, note: str = "") -> Domain:
        """True or False (not 0/1, not a string)."""
        return cls("bool", note=note)

    @classmethod
    def function(cls, note: str = "") -> Domain:
        """None (the default) or a callable."""
        return cls("callable", none_ok=True, note=note)

    @classmethod
    def text(cls, note: str = "") -> Domain:
        """A non-empty string."""
        return cls("text", note=note)

    # --- checking ------------------------------------------------------------------------------------------

    def describe(self) -> str:
        """The accepted values in words, e.g. 'a finite number > 0' or "one of 'midpoint', 'heun'"."""
        if self.kind in ("real", "int"):
            noun = "an integer" if self.kind == "int" else ("a number" if self.inf_ok else "a finite number")
            if self.low is not None and self.high is not None:
                left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
                text = f"{noun} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"
            elif self.low is not None:
                text = f"{noun} {'>' if self.low_open else '>='} {_fmt(self.low)}"
            elif self.high is not None:
                text = f"{noun} {'<' if self.high_open else '<='} {_fmt(self.high)}"
            else:
                text = noun
            if self.inf_ok:
                text += " (inf allowed)"
        elif self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "bool":
            text = "True or False"
        elif self.kind == "callable":
            text = "a function"
        elif self.kind == "text":
            text = "a non-empty string"
        elif self.kind == "restart_list":
            text = "a dict {min_sigma: (restart_steps + 1, restart_times, max_sigma)}"
        elif self.kind == "generator":
            text = "a torch.Generator or a list of them (one per image)"
        else:  # pragma: no cover - table error
            raise AssertionError(f"unknown domain kind {self.kind!r}")
        return text + (" or None" if self.none_ok else "")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is outside the domain, or None when it is inside."""
        if value is None:
            return None if self.none_ok else "it may not be None"
        if self.kind in ("real", "int"):
            return self._number_problem(value)
        if self.kind == "choice":
            if not isinstance(value, str):
                return f"it is a {type(value).__name__}, not a string"
            return None if value in self.choices else "it is not one of the choices"
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"it is a {type(value).__name__}, not True or False"
        if self.kind == "callable":
            return None if callable(value) else f"a {type(value).__name__} is not callable"
        if self.kind == "text":
            return None if isinstance(value, str) and value.strip() else "it is not a non-empty string"
        if self.kind == "restart_list":
            return _restart_list_problem(value)
        if self.kind == "generator":
            items = value if isinstance(value, (list, tuple)) else [value]
            if not items or not all(isinstance(g, torch.Generator) for g in items):
                return "it is not a torch.Generator or a non-empty list of them"
            return None
        raise AssertionError(f"unknown domain kind {self.kind!r}")  # pragma: no cover

    def _number_problem(self, value: Any) -> str | None:
        if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_complex() and value.dtype != torch.bool:
            value = value.item()  # a 0-d real tensor is checked as its number (and passed on as it is)
        if isinstance(value, str):
            return "it is a string, not a number"
        if isinstance(value, bool):
            return "it is a bool, not a number"
        if self.kind == "int" and not _is_int(value):
            return f"it is a {type(value).__name__}, not an integer"
        if not _is_real(value):
            return f"it is a {type(value).__name__}, not a number"
        number = float(value)
        if math.isnan(number):
            return "it is NaN"
        if math.isinf(number) and not (self.inf_ok and number > 0):
            return "it is infinite"
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            return "it is out of range"
        if self.high is not None and (number > self.high or (self.high_open and number == self.high)):
            return "it is out of range"
        return None

    def hint(self, option: str, value: Any) -> str:
        """What to pass instead."""
        if isinstance(value, str) and self.kind in ("real", "int"):
            try:
                float(value)
                example = f" ({option}={value.strip()})"
            except ValueError:
                example = ""
            text = f"pass {option} as a number{example}, not as the string {value!r}; allowed: {self.describe()}"
        elif self.kind == "choice" and isinstance(value, str):
            text = f"allowed: {self.describe()}; {closest(value, [str(c) for c in self.choices])}"
        else:
            text = f"allowed: {self.describe()}"
        return f"{text} ({self.note})" if self.note else text


def _restart_list_problem(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"it is a {type(value).__name__}, not a dict"
    for key, entry in value.items():
        if not _is_real(key) or not math.isfinite(key) or key < 0:
            return f"key {key!r} is not a finite sigma >= 0"
        if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 3:
            return f"entry {entry!r} is not (restart_steps + 1, restart_times, max_sigma)"
        steps, times, top = entry
        if not (_is_int(steps) and steps >= 1) or not (_is_int(times) and times >= 0):
            return f"entry {entry!r} needs restart_steps + 1 >= 1 and restart_times >= 0, as integers"
        if not _is_real(top) or not math.isfinite(top) or top <= 0:
            return f"entry {entry!r} needs a finite max_sigma > 0"
    return None


def check_option(domain: Domain, option: str, value: Any, **context: Any) -> None:
    """Raise :class:`SdlabError` naming ``option`` (and ``context``: sampler or schedule) unless ``value`` fits."""
    why = domain.problem(value)
    if why is not None:
        raise SdlabError(
            f"option {option!r} must be {domain.describe()}: {why}",
            **context,
            option=option,
            got=value,
            hint=domain.hint(option, value),
        )
