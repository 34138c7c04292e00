"""Weight initializers by name: ``initializer("he_normal")(weight, generator=g)``.

An initializer fills a tensor in place (without recording autograd history)
and returns it. Each one wraps the ``torch.nn.init`` function that implements
it; this module adds names, Keras's exact variants, and clear errors.

Fan convention (PyTorch's weight layout ``(out_features, in_features, *kernel)``,
the same as ``torch.nn.init``)::

    fan_in  = in_features  * prod(kernel)
    fan_out = out_features * prod(kernel)

Initializers that read fans (``xavier``, ``glorot_*``, ``he_*``, ``lecun_*``)
and ``orthogonal`` need a tensor with at least 2 dims; ``zeros``, ``ones``,
``constant``, ``normal`` and ``uniform`` work on any shape, biases included.

Truncated normals follow Keras: draws beyond 2 standard deviations are redrawn,
and the std of the untruncated normal is divided by 0.87962566103423978 (the
std of a standard normal truncated to [-2, 2]) so that the *empirical*
variance is exactly the target (2 / (fan_in + fan_out) for glorot_normal,
2 / fan_in for he_normal, 1 / fan_in for lecun_normal).

Example:
    >>> import torch
    >>> init = initializer("he_normal")
    >>> w = init(torch.empty(256, 512), generator=torch.Generator().manual_seed(0))
    >>> round(w.std().item() ** 2 * 512, 1)  # variance 2 / fan_in
    2.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from trainlab import check
from trainlab.errors import InputError, InputTypeError
from trainlab.registry import Registry

# Std of a standard normal truncated to [-2, 2] (Keras's constant).
TRUNCATED_NORMAL_STD = 0.87962566103423978


class Initializer(Protocol):
    """Anything that fills a tensor in place and returns it."""

    def __call__(self, tensor: Tensor, *, generator: torch.Generator | None = None) -> Tensor: ...


INITIALIZERS: Registry[Callable[..., Initializer]] = Registry("initializer")

Rule = Callable[[Tensor, "torch.Generator | None"], Any]


@dataclass(frozen=True, eq=False)
class NamedInitializer:
    """An initializer built from the registry: its name, its settings, and the rule that fills.

    Calling it checks the tensor (type, dtype, number of dims) and the
    generator, then applies the rule under ``torch.no_grad()``, so parameters
    that require grad can be filled directly.
    """

    name: str
    rule: Rule = field(repr=False, compare=False)
    settings: Mapping[str, float] = field(default_factory=dict)
    needs_fans: bool = False
    random: bool = True

    def __call__(self, tensor: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise InputTypeError(f"{self.name}: expected a torch.Tensor to fill, got {type(tensor).__name__}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise InputTypeError(
                f"{self.name}: generator must be a torch.Generator or None, got {type(generator).__name__} "
                f"{generator!r}. Make one with torch.Generator().manual_seed(seed)."
            )
        if self.needs_fans and tensor.dim() < 2:
            raise InputError(
                f"{self.name}: needs a tensor with at least 2 dims (out_features, in_features, *kernel) "
                f"to read its fans, got shape {tuple(tensor.shape)}. For biases use 'zeros' (the usual "
                f"choice), 'constant', 'normal' or 'uniform'."
            )
        if self.random and not tensor.is_floating_point():
            raise InputTypeError(f"{self.name}: needs a floating-point tensor, got dtype {tensor.dtype}")
        if tensor.numel() == 0:
            return tensor
        with torch.no_grad():
            self.rule(tensor, generator)
        return tensor

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{self.name}({args})"


def fans(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight in PyTorch layout ``(out, in, *kernel)``.

    Example:
        >>> fans(torch.empty(16, 3, 5, 5))
        (75, 400)
    """
    if tensor.dim() < 2:
        raise InputError(f"fans need a tensor with at least 2 dims, got shape {tuple(tensor.shape)}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _truncated_normal(tensor: Tensor, generator: torch.Generator | None, *, variance: float) -> Tensor:
    """Keras's truncated normal: redraw beyond 2 std, rescaled so the variance is `variance`."""
    std = math.sqrt(variance) / TRUNCATED_NORMAL_STD
    return torch.nn.init.trunc_normal_(
        tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std, generator=generator
    )


# ----------------------------------------------------------------------------- constants


@INITIALIZERS.register(
    "zeros", claim="zero biases are the standard start; zero weights would make all units identical"
)
def zeros() -> Initializer:
    """Fill with 0; the usual bias initializer (never for weights: units would stay identical)."""
    return NamedInitializer("zeros", lambda t, g: torch.nn.init.zeros_(t), random=False)


@INITIALIZERS.register("ones", claim="ones start normalization scales (gamma) at the identity transform")
def ones() -> Initializer:
    """Fill with 1; the usual start for normalization scales."""
    return NamedInitializer("ones", lambda t, g: torch.nn.init.ones_(t), random=False)


@INITIALIZERS.register(
    "constant", claim="a constant start gives every unit the same value (e.g. a small positive ReLU bias)"
)
def constant(*, value: float = 0.0) -> Initializer:
    """Fill with `value` (default 0.0, as Keras's ``Constant``).

    Example:
        >>> constant(value=0.1)(torch.empty(3)).tolist()
        [0.10000000149011612, 0.10000000149011612, 0.10000000149011612]
    """
    fill = check.number("constant: value", value)
    return NamedInitializer(
        "constant", lambda t, g: torch.nn.init.constant_(t, fill), {"value": fill}, random=False
    )


# ----------------------------------------------------------------------------- plain random


@INITIALIZERS.register(
    "normal",
    claim="a fixed-std normal ignores layer width: std 1 explodes, tiny std vanishes deep activations",
)
def normal(*, mean: float = 0.0, std: float = 1.0) -> Initializer:
    """Fill from N(mean, std^2), std not scaled by the layer's size.

    The default std=1.0 is the naive choice the course notes warn about: with
    fan_in inputs each pre-activation then has variance ~fan_in, which
    saturates sigmoid/tanh units. Prefer ``he_normal``/``glorot_normal``.

    Args:
        mean: mean of the normal.
        std: standard deviation, > 0.
    """
    centre = check.number("normal: mean", mean)
    spread = check.positive("normal: std", std, hint="For a fixed value use 'constant'.")
    return NamedInitializer(
        "normal",
        lambda t, g: torch.nn.init.normal_(t, mean=centre, std=spread, generator=g),
        {"mean": centre, "std": spread},
    )


@INITIALIZERS.register(
    "uniform",
    claim="a fixed-range uniform ignores layer width, so activation scale drifts with depth",
)
def uniform(*, low: float = -0.05, high: float = 0.05) -> Initializer:
    """Fill from U(low, high); the defaults are Keras's ``RandomUniform`` (-0.05, 0.05).

    Args:
        low: lower bound.
        high: upper bound, > low.
    """
    lo = check.number("uniform: low", low)
    hi = check.number("uniform: high", high)
    if not lo < hi:
        raise InputError(
            f"uniform: low must be < high, got low={low}, high={high}. Swap them or widen the range."
        )
    return NamedInitializer(
        "uniform", lambda t, g: torch.nn.init.uniform_(t, a=lo, b=hi, generator=g), {"low": lo, "high": hi}
    )


# ----------------------------------------------------------------------------- fan-scaled


@INITIALIZERS.register(
    "xavier",
    claim="std 1/sqrt(fan_in) keeps a linear/tanh layer's output variance equal to its input variance",
)
def xavier() -> Initializer:
    """Fill from N(0, 1/fan_in), the course notes' "Xavier" initialization.

    This is the notes' definition (Xavier/Glorot's forward-pass argument alone).
    Glorot & Bengio's published rule, and Keras's ``glorot_*``, average the
    fans: variance 2 / (fan_in + fan_out); use ``glorot_normal`` or
    ``glorot_uniform`` for that. Not truncated (``lecun_normal`` is the
    truncated, Keras version of the same variance).

    Example:
        >>> w = xavier()(torch.empty(512, 400), generator=torch.Generator().manual_seed(0))
        >>> round(w.std().item() * 20, 2)  # std = 1/sqrt(400) = 0.05
        1.0
    """
    return NamedInitializer(
        "xavier",
        lambda t, g: torch.nn.init.kaiming_normal_(t, mode="fan_in", nonlinearity="linear", generator=g),
        needs_fans=True,
    )


@INITIALIZERS.register(
    "glorot_normal",
    claim="variance 2/(fan_in+fan_out) balances the forward activations' and backward gradients' variance",
)
def glorot_normal() -> Initializer:
    """Keras's GlorotNormal: truncated normal with variance 2 / (fan_in + fan_out).

    Truncated at 2 std and rescaled as Keras does (see the module docstring), so
    the empirical variance is exactly 2 / (fan_in + fan_out).
    """

    def rule(t: Tensor, g: torch.Generator | None) -> Tensor:
        fan_in, fan_out = fans(t)
        return _truncated_normal(t, g, variance=2.0 / (fan_in + fan_out))

    return NamedInitializer("glorot_normal", rule, needs_fans=True)


@INITIALIZERS.register(
    "glorot_uniform",
    claim="variance 2/(fan_in+fan_out) balances the forward activations' and backward gradients' variance",
)
def glorot_uniform() -> Initializer:
    """Keras's default kernel initializer: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))."""
    return NamedInitializer(
        "glorot_uniform",
        lambda t, g: torch.nn.init.xavier_uniform_(t, gain=1.0, generator=g),
        needs_fans=True,
    )


@INITIALIZERS.register("he_normal", claim="He init keeps ReLU activations' variance constant across layers")
def he_normal() -> Initializer:
    """Keras's HeNormal: truncated normal with variance 2 / fan_in (He et al. 2015), for ReLU layers.

    ReLU zeroes half of its inputs, halving the variance; the factor 2 makes up
    for it. Truncated and rescaled as Keras does, so the empirical variance is
    exactly 2 / fan_in.
    """

    def rule(t: Tensor, g: torch.Generator | None) -> Tensor:
        fan_in, _ = fans(t)
        return _truncated_normal(t, g, variance=2.0 / fan_in)

    return NamedInitializer("he_normal", rule, needs_fans=True)


@INITIALIZERS.register("he_uniform", claim="He init keeps ReLU activations' variance constant across layers")
def he_uniform() -> Initializer:
    """Keras's HeUniform: U(-limit, limit), limit = sqrt(6 / fan_in), i.e. variance 2 / fan_in."""
    return NamedInitializer(
        "he_uniform",
        lambda t, g: torch.nn.init.kaiming_uniform_(t, mode="fan_in", nonlinearity="relu", generator=g),
        needs_fans=True,
    )


@INITIALIZERS.register(
    "lecun_normal",
    claim="variance 1/fan_in keeps unit variance through linear layers; SELU nets self-normalize with it",
)
def lecun_normal() -> Initializer:
    """Keras's LecunNormal: truncated normal with variance 1 / fan_in; the partner of ``selu``.

    Truncated and rescaled as Keras does, so the empirical variance is exactly 1 / fan_in.
    """

    def rule(t: Tensor, g: torch.Generator | None) -> Tensor:
        fan_in, _ = fans(t)
        return _truncated_normal(t, g, variance=1.0 / fan_in)

    return NamedInitializer("lecun_normal", rule, needs_fans=True)


@INITIALIZERS.register(
    "lecun_uniform",
    claim="variance 1/fan_in preserves unit variance through linear layers",
)
def lecun_uniform() -> Initializer:
    """Keras's LecunUniform: U(-limit, limit), limit = sqrt(3 / fan_in), i.e. variance 1 / fan_in."""
    return NamedInitializer(
        "lecun_uniform",
        lambda t, g: torch.nn.init.kaiming_uniform_(t, mode="fan_in", nonlinearity="linear", generator=g),
        needs_fans=True,
    )


@INITIALIZERS.register(
    "orthogonal",
    claim="an orthogonal matrix preserves norms exactly, so deep linear stacks neither explode nor vanish",
)
def orthogonal(*, gain: float = 1.0) -> Initializer:
    """Fill with a (semi-)orthogonal matrix times `gain` (Saxe et al. 2014).

    The tensor is viewed as ``(shape[0], prod(shape[1:]))``: for a tall or
    square matrix W^T W = gain^2 I, for a wide one W W^T = gain^2 I.

    Args:
        gain: scale of the matrix, > 0.

    Example:
        >>> w = orthogonal()(torch.empty(6, 4), generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(w.T @ w, torch.eye(4), atol=1e-5)
        True
    """
    scale = check.positive("orthogonal: gain", gain)
    return NamedInitializer(
        "orthogonal",
        lambda t, g: torch.nn.init.orthogonal_(t, gain=scale, generator=g),
        {"gain": scale},
        needs_fans=True,
    )


# ----------------------------------------------------------------------------- lookup


def initializer(spec: str | Mapping[str, Any] | Initializer, *, source: str | None = None) -> Initializer:
    """Turn what a user wrote into an initializer.

    Args:
        spec: a registry name (``"he_normal"``, case-insensitive), a mapping
            ``{"name": "normal", "std": 0.01}``, or a callable
            ``(tensor, *, generator=None) -> tensor`` returned as is (for
            example ``torch.nn.init.xavier_normal_``).
        source: where the spec came from (``"layers[0].kernel_initializer"``), quoted in errors.

    Raises:
        InputError: unknown name or bad setting; the message lists the close matches.

    Example:
        >>> initializer({"name": "normal", "std": 0.01})
        normal(mean=0.0, std=0.01)
    """
    if isinstance(spec, (str, Mapping)):
        built: Initializer = INITIALIZERS.build(spec, source=source)
        return built
    if callable(spec):
        return spec
    where = f" (from {source})" if source else ""
    raise InputTypeError(
        f"initializer{where} must be a name such as 'he_normal', a {{name = ..., setting = ...}} table or a "
        f"function (tensor, *, generator=None) -> tensor, got {type(spec).__name__} {spec!r}. "
        f"Known names: {', '.join(INITIALIZERS.names())}."
    )
