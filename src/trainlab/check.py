"""Small validators that raise `InputError` with the field's name and a hint."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch

from trainlab.errors import InputError, InputTypeError, did_you_mean


def choice(field: str, value: Any, options: Sequence[str], hint: str = "") -> str:
    if value not in options:
        raise InputError(
            f"{field} must be one of {', '.join(map(repr, options))}, got {value!r}."
            f"{did_you_mean(str(value), options)}{' ' + hint if hint else ''}"
        )
    return str(value)


def number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"{field} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{field} must be finite, got {value!r}")
    return float(value)


def int_at_least(field: str, value: Any, low: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"{field} must be an int >= {low}, got {type(value).__name__} {value!r}")
    if value < low:
        raise InputError(f"{field} must be an int >= {low}, got {value}.{' ' + hint if hint else ''}")
    return value


def at_least(field: str, value: Any, low: float, hint: str = "") -> float:
    v = number(field, value)
    if v < low:
        raise InputError(f"{field} must be >= {low}, got {value}.{' ' + hint if hint else ''}")
    return v


def positive(field: str, value: Any, hint: str = "") -> float:
    v = number(field, value)
    if v <= 0:
        raise InputError(f"{field} must be > 0, got {value}.{' ' + hint if hint else ''}")
    return v


def in_range(field: str, value: Any, low: float, high: float, *, open_low: bool = False,
             open_high: bool = False, hint: str = "") -> float:
    v = number(field, value)
    bad = (v <= low if open_low else v < low) or (v >= high if open_high else v > high)
    if bad:
        lb = "(" if open_low else "["
        rb = ")" if open_high else "]"
        raise InputError(f"{field} must be in {lb}{low}, {high}{rb}, got {value}.{' ' + hint if hint else ''}")
    return v


# Names Windows reserves for devices, with or without an extension ("CON", "nul.txt").
WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))]
)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
MAX_NAME_LENGTH = 100


def plain_name(field: str, value: Any) -> str:
    """A name that is safe as one folder name on every system: letters, digits, '-', '_', '.'.

    A run's or a study's name becomes a folder inside the runs directory, so it
    may not hold a path separator, be '.' or '..', start with a dot (hidden, and
    the staging folders' prefix), end with a dot, or be a device name that
    Windows reserves (CON, NUL, COM1, ...).

    Example:
        >>> plain_name("name", "digits-mlp_v2.1")
        'digits-mlp_v2.1'
        >>> plain_name("name", "../escaped")
        Traceback (most recent call last):
        ...
        trainlab.errors.InputError: name must be a plain name ...
    """
    if not isinstance(value, str):
        raise InputTypeError(f"{field} must be a string (a plain folder name), got {type(value).__name__} "
                             f"{value!r}")
    advice = (f"{field} must be a plain name made of letters, digits, '-', '_' and '.', such as "
              f"'digits-mlp', because it names the run's folder inside the runs directory; got {value!r}")
    if not _PLAIN_NAME.fullmatch(value):
        bad = sorted({c for c in value if not _PLAIN_NAME.fullmatch(c)})
        shown = ", ".join(repr(c) for c in bad[:5])
        where = (" To write runs elsewhere, pass --runs-dir (runs_dir=) instead of a path in the name."
                 if any(c in value for c in "/\\:") else "")
        raise InputError(f"{advice}, which holds {shown or 'nothing'}.{where}")
    if value.startswith(".") or value.endswith("."):
        raise InputError(f"{advice}: it may not start or end with '.' ('..' and hidden folders would leave "
                         "or hide the run folder).")
    if value.split(".")[0].upper() in WINDOWS_RESERVED:
        raise InputError(f"{advice}: '{value.split('.')[0]}' is a device name that Windows reserves, so the "
                         "folder could not be created there. Choose another name.")
    if len(value) > MAX_NAME_LENGTH:
        raise InputError(f"{advice[:-len(repr(value))]}got a name of {len(value)} characters; keep it to "
                         f"{MAX_NAME_LENGTH}.")
    return value


def all_finite(t: torch.Tensor) -> bool:
    """Whether every number of `t` is finite (True for integer and empty tensors).

    One pass without a mask: ``torch.aminmax`` carries a NaN through, and an infinity is
    the minimum or the maximum.

    Example:
        >>> all_finite(torch.tensor([1.0, float("nan")])), all_finite(torch.tensor([1.0, -2.0]))
        (False, True)
    """
    if not t.is_floating_point() or t.numel() == 0:
        return True
    low, high = torch.aminmax(t)
    return math.isfinite(float(low)) and math.isfinite(float(high))
