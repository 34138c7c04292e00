"""Small validators that raise `InputError` with the field's name and a hint."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

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
