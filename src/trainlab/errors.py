"""Errors that mean "the input is wrong", as opposed to a bug in trainlab.

The command line turns these into a one-paragraph message and exit status 2;
anything else is an internal error (exit status 1). They subclass the builtin
`ValueError`/`TypeError`, so Python callers can catch those as usual.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(ValueError):
    """A value given by the user is invalid: a name, a setting, data, a shape."""


class InputTypeError(InputError, TypeError):
    """A value given by the user has the wrong type."""


def close_matches(word: str, options: Iterable[str], *, limit: int = 3) -> list[str]:
    """Return up to `limit` entries of `options` that look like `word`, best first."""
    options = list(options)
    lowered = {o.lower(): o for o in options}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=limit, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """' Did you mean 'x'?' when a close match exists, else ''."""
    hits = close_matches(word, options)
    if not hits:
        return ""
    if len(hits) == 1:
        return f" Did you mean '{hits[0]}'?"
    return " Did you mean " + " or ".join(f"'{h}'" for h in hits) + "?"
