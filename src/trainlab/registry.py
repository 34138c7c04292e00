"""Registry[T]: one table of named techniques per kind (optimizers, losses, ...).

An entry has a name, a factory, a one-line summary and the claim the technique
makes. `build` turns what a user wrote (a name, a ``{"name": ..., **settings}``
mapping, or an object that is already built) into the object, checking every
setting against the factory's signature so that a typo is an error, never a
silently dropped keyword.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from trainlab.errors import InputError, InputTypeError, did_you_mean

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered technique."""

    name: str
    kind: str
    factory: T
    summary: str
    claim: str
    #: What the engine may rely on (a loss is a per-sample mean, a metric's direction, whether it
    #: sums over batches, an optimizer's stackable form); see each registry's module.
    capabilities: Mapping[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named table of factories of one kind.

    Example:
        >>> SHAPES = Registry("shape")
        >>> @SHAPES.register("square", claim="all sides equal")
        ... def square(*, side: float = 1.0) -> float:
        ...     '''Area of a square.'''
        ...     return side * side
        >>> SHAPES.build({"name": "square", "side": 3.0})
        9.0
        >>> SHAPES.get("sqare")
        Traceback (most recent call last):
        ...
        trainlab.errors.InputError: unknown shape 'sqare'. Known: square. Did you mean 'square'?
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, *, summary: str | None = None, claim: str = "",
        capabilities: Mapping[str, Any] | None = None,
    ) -> Callable[[T], T]:
        """Decorator adding `factory` under `name`; the summary defaults to its docstring's first line."""

        def add(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            doc = inspect.getdoc(factory) or ""
            text = summary if summary is not None else (doc.splitlines()[0] if doc else "")
            self._entries[name] = Entry(name, self.kind, factory, text, claim, dict(capabilities or {}))
            return factory

        return add

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def entry(self, name: str, *, source: str | None = None) -> Entry[T]:
        """The entry called `name`; an unknown name lists the known ones and the close matches."""
        if not isinstance(name, str):
            raise InputTypeError(
                f"{self.kind} name must be a string{_from(source)}, got {type(name).__name__} {name!r}"
            )
        key = self._canonical(name)
        if key not in self._entries:
            raise InputError(
                f"unknown {self.kind} '{name}'{_from(source)}. Known: {', '.join(self.names())}."
                f"{did_you_mean(name, self.names())}"
            )
        return self._entries[key]

    def get(self, name: str, *, source: str | None = None) -> T:
        return self.entry(name, source=source).factory

    def build(self, spec: Any, *, source: str | None = None, **context: Any) -> Any:
        """Make the object a user described.

        `spec` is a name (``"adam"``), a mapping with a ``name`` key and settings
        (``{"name": "adam", "lr": 0.01}``), or an object that is not a str or a
        mapping, returned as it is. `context` holds arguments the caller supplies
        (parameters, step counts); they are passed only where the factory takes them.
        """
        if isinstance(spec, str):
            name, settings = spec, {}
        elif isinstance(spec, Mapping):
            if "name" not in spec:
                raise InputError(
                    f"a {self.kind} given as a table needs a 'name' key{_from(source)}, got {dict(spec)!r}"
                )
            settings = {k: v for k, v in spec.items() if k != "name"}
            name = spec["name"]
        else:
            return spec
        entry = self.entry(name, source=source)
        return call_with_settings(entry, settings, context)

    def _canonical(self, name: str) -> str:
        if name in self._entries:
            return name
        lowered = name.lower()
        for key in self._entries:
            if key.lower() == lowered:
                return key
        return name


def call_with_settings(entry: Entry[Any], settings: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    """Call `entry.factory` with the user's `settings` plus the parts of `context` it accepts."""
    params = dict(inspect.signature(entry.factory).parameters)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    declared = getattr(entry.factory, "accepted_settings", None)
    if callable(declared):
        # Classes that forward **kwargs to their bases list the settings of the whole chain.
        params = {name: inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in declared()}
        takes_any = False
    accepted = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    settable = [n for n in accepted if n not in context]
    for key in settings:
        if key not in params and not takes_any:
            raise InputError(
                f"{entry.kind} '{entry.name}' has no setting '{key}'. "
                f"Settings: {', '.join(settable) or '(none)'}.{did_you_mean(key, settable)}"
            )
    kwargs = dict(settings)
    for key, value in context.items():
        if key in params or takes_any:
            kwargs.setdefault(key, value)
    try:
        return entry.factory(**kwargs)
    except InputError:
        raise
    except (TypeError, ValueError) as error:
        raise InputError(f"{entry.name}: {error}") from error


def _from(source: str | None) -> str:
    return f" (from {source})" if source else ""
