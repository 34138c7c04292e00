"""Weight penalties by name: ``L2(1e-4)`` or ``regularizer("l2")``, added to the loss.

A regularizer maps a parameter tensor to a scalar penalty; the engine adds the
penalties of all regularized parameters to the training loss. The formulas are
Keras's, with no 1/2 factor::

    l1 * sum(|x|) + l2 * sum(x ** 2)

so ``L2(l2)`` adds ``2 * l2 * x`` to the gradient, i.e. it equals SGD weight
decay with ``weight_decay = 2 * l2``.

Example:
    >>> import torch
    >>> L1L2(l1=0.1, l2=0.01)(torch.tensor([1.0, -2.0]))
    tensor(0.3500)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from torch import Tensor

from trainlab import check
from trainlab.errors import InputTypeError
from trainlab.registry import Registry


class Regularizer(Protocol):
    """Anything that maps a parameter tensor to a scalar penalty."""

    def __call__(self, x: Tensor) -> Tensor: ...


REGULARIZERS: Registry[Callable[..., Regularizer]] = Registry("regularizer")


def _strength(technique: str, setting: str, value: Any) -> float:
    return check.at_least(
        f"{technique}: {setting}", value, 0,
        hint=f"{setting} is a penalty strength; use 0 for no penalty, typical values are 1e-5 to 1e-2.",
    )


@REGULARIZERS.register(
    "l1",
    claim="an L1 penalty drives uninformative weights to exactly zero, giving sparse models (as the lasso)",
)
@dataclass(frozen=True)
class L1:
    """L1 penalty ``l1 * sum(|x|)``; pushes weights to exactly zero (sparsity).

    Args:
        l1: strength, >= 0 (default 0.01, as Keras 3).

    Example:
        >>> import torch
        >>> L1(0.5)(torch.tensor([1.0, -3.0]))
        tensor(2.)
    """

    l1: float = 0.01
    name: ClassVar[str] = "l1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "l1", _strength("l1", "l1", self.l1))

    def __call__(self, x: Tensor) -> Tensor:
        return self.l1 * x.abs().sum()


@REGULARIZERS.register(
    "l2",
    claim="an L2 penalty shrinks all weights toward zero (weight decay): a little bias for less variance",
)
@dataclass(frozen=True)
class L2:
    """L2 penalty ``l2 * sum(x ** 2)`` (no 1/2 factor, as Keras); shrinks weights (weight decay).

    Args:
        l2: strength, >= 0 (default 0.01, as Keras 3).

    Example:
        >>> import torch
        >>> L2(0.5)(torch.tensor([1.0, -3.0]))
        tensor(5.)
    """

    l2: float = 0.01
    name: ClassVar[str] = "l2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "l2", _strength("l2", "l2", self.l2))

    def __call__(self, x: Tensor) -> Tensor:
        return self.l2 * x.square().sum()


@REGULARIZERS.register(
    "l1l2",
    claim="L1 plus L2 (the elastic net) gives sparsity while keeping groups of correlated weights together",
)
@dataclass(frozen=True, kw_only=True)
class L1L2:
    """Both penalties, ``l1 * sum(|x|) + l2 * sum(x ** 2)`` (the elastic net).

    Both strengths default to 0.0, as Keras 3's ``L1L2``; set at least one.
    Keyword-only, so ``l1`` and ``l2`` cannot be swapped by position.

    Args:
        l1: L1 strength, >= 0.
        l2: L2 strength, >= 0.
    """

    l1: float = 0.0
    l2: float = 0.0
    name: ClassVar[str] = "l1l2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "l1", _strength("l1l2", "l1", self.l1))
        object.__setattr__(self, "l2", _strength("l1l2", "l2", self.l2))

    def __call__(self, x: Tensor) -> Tensor:
        penalty = x.new_zeros(())
        if self.l1:
            penalty = penalty + self.l1 * x.abs().sum()
        if self.l2:
            penalty = penalty + self.l2 * x.square().sum()
        return penalty


def regularizer(
    spec: str | Mapping[str, Any] | Regularizer | None, *, source: str | None = None
) -> Regularizer | None:
    """Turn what a user wrote into a regularizer (None means no penalty and stays None).

    Args:
        spec: a registry name (``"l2"``, ``"L2"``), a mapping
            ``{"name": "l2", "l2": 1e-4}``, a callable ``tensor -> scalar``
            (such as ``L2(1e-4)``) returned as is, or None.
        source: where the spec came from (``"layers[0].kernel_regularizer"``), quoted in errors.

    Raises:
        InputError: unknown name, unknown setting or a negative strength.

    Example:
        >>> regularizer({"name": "L2", "l2": 1e-4})
        L2(l2=0.0001)
    """
    if spec is None:
        return None
    if isinstance(spec, (str, Mapping)):
        built: Regularizer = REGULARIZERS.build(spec, source=source)
        return built
    if callable(spec):
        return spec
    where = f" (from {source})" if source else ""
    raise InputTypeError(
        f"regularizer{where} must be a name such as 'l2', a {{name = ..., setting = ...}} table, a function "
        f"tensor -> scalar penalty, or None, got {type(spec).__name__} {spec!r}. "
        f"Known names: {', '.join(REGULARIZERS.names())}."
    )
