"""Activation functions by name: ``activation("relu")`` -> a fresh ``torch.nn.Module``.

Each factory wraps the ``torch.nn`` module that already implements the function
and tags it with ``name``, its registry name. The model layer reads that tag:
a final ``softmax`` or ``sigmoid`` can be fused with a cross-entropy loss (which
is then computed from logits, the numerically stable way), so the tag of a
module must never claim a function it does not compute.

Settings follow Keras 3 where Keras has one (``alpha`` of ``leaky_relu`` and
``elu``, ``theta`` of ``thresholded_relu``, ``axis`` of ``softmax``).

Example:
    >>> import torch
    >>> act = activation({"name": "leaky_relu", "alpha": 0.1})
    >>> act.name, act(torch.tensor([-1.0, 2.0])).tolist()
    ('leaky_relu', [-0.10000000149011612, 2.0])
    >>> activation(None).name
    'linear'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from trainlab import check
from trainlab.errors import InputTypeError
from trainlab.registry import Registry

ACTIVATIONS: Registry[Callable[..., nn.Module]] = Registry("activation")

M = TypeVar("M", bound=nn.Module)


def _named(module: M, name: str) -> M:
    """Tag `module` with its registry name (read by the model layer to fuse softmax/sigmoid with the loss)."""
    module.name = name  # type: ignore[assignment]
    return module


# ----------------------------------------------------------------------------- classic squashing functions


@ACTIVATIONS.register(
    "sigmoid",
    claim="sigmoid squashes to (0, 1); its derivative peaks at 1/4 at 0, so deep stacks shrink gradients",
)
def sigmoid() -> nn.Module:
    """Logistic sigmoid 1 / (1 + exp(-x)), output in (0, 1); for binary probabilities."""
    return _named(nn.Sigmoid(), "sigmoid")


@ACTIVATIONS.register(
    "tanh",
    claim="tanh is a zero-centred sigmoid, tanh(x) = 2 sigmoid(2x) - 1, with derivative 1 at 0",
)
def tanh() -> nn.Module:
    """Hyperbolic tangent, output in (-1, 1) and zero-centred."""
    return _named(nn.Tanh(), "tanh")


@ACTIVATIONS.register(
    "softplus",
    claim="softplus log(1 + exp(x)) is a smooth ReLU whose derivative is the sigmoid",
)
def softplus() -> nn.Module:
    """Softplus log(1 + exp(x)): a smooth, everywhere-differentiable ReLU."""
    return _named(nn.Softplus(), "softplus")


# ----------------------------------------------------------------------------- rectifiers


@ACTIVATIONS.register(
    "relu",
    claim="ReLU max(0, x) passes gradient 1 for positive inputs, so it does not saturate like sigmoid/tanh",
)
def relu() -> nn.Module:
    """Rectified linear unit max(0, x); the default hidden activation."""
    return _named(nn.ReLU(), "relu")


@ACTIVATIONS.register(
    "leaky_relu",
    claim="leaky ReLU keeps a small slope alpha for negative inputs, so units cannot die",
)
def leaky_relu(*, alpha: float = 0.3) -> nn.Module:
    """Leaky ReLU: x for x >= 0, alpha * x otherwise.

    The default ``alpha=0.3`` is that of Keras 3's ``LeakyReLU`` layer (which
    calls it ``negative_slope``); note that Keras's *function*
    ``keras.activations.leaky_relu`` defaults to 0.2 and PyTorch's
    ``nn.LeakyReLU`` to 0.01.

    Args:
        alpha: slope for negative inputs, >= 0 (0 gives a plain ReLU).

    Example:
        >>> leaky_relu(alpha=0.5)(torch.tensor([-2.0, 3.0])).tolist()
        [-1.0, 3.0]
    """
    slope = check.at_least("leaky_relu: alpha", alpha, 0, hint="alpha is the slope for negative inputs.")
    return _named(nn.LeakyReLU(negative_slope=slope), "leaky_relu")


class PReLU(nn.PReLU):
    """``torch.nn.PReLU`` tagged with its registry name; the slope(s) of negative inputs are learned."""

    name = "prelu"


class LazyPReLU(LazyModuleMixin, PReLU):
    """A per-channel PReLU whose channel count is read from the first input.

    The channel dim is dim 1, PyTorch's convention (``nn.PReLU``, ``F.prelu``):
    features for 2-D input ``(batch, features)``, channels for ``(N, C, H, W)``
    images. For 1-D input there is no channel dim and one slope is learned.
    After the first call the module becomes a plain :class:`PReLU`. Build the
    optimizer after that first call (the model layer runs one forward pass to
    infer shapes), since an uninitialized parameter cannot be optimized.
    """

    cls_to_become = PReLU
    weight: UninitializedParameter  # type: ignore[assignment]

    def __init__(self, *, init: float = 0.25) -> None:
        super().__init__(num_parameters=0, init=init)
        self.weight = UninitializedParameter()

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params():
            super().reset_parameters()

    def initialize_parameters(self, input: Tensor) -> None:
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.num_parameters = int(input.shape[1]) if input.dim() >= 2 else 1
                self.weight.materialize((self.num_parameters,))
                self.reset_parameters()


@ACTIVATIONS.register(
    "prelu",
    claim="PReLU learns the negative slope by gradient descent instead of fixing it (He et al. 2015)",
)
def prelu(*, init: float = 0.25, per_channel: bool = False) -> nn.Module:
    """Parametric ReLU: x for x >= 0, a * x otherwise, with the slope `a` learned.

    Args:
        init: starting slope (0.25 as in He et al. 2015 and ``nn.PReLU``).
        per_channel: learn one slope per channel (dim 1 of the input, i.e. the
            features of a 2-D input), inferred on the first call; otherwise one
            slope shared by all units.

    Example:
        >>> act = prelu(per_channel=True)
        >>> act(torch.ones(2, 5)).shape, tuple(act.weight.shape)
        (torch.Size([2, 5]), (5,))
    """
    start = check.number("prelu: init", init)
    if not isinstance(per_channel, bool):
        raise InputTypeError(
            f"prelu: per_channel must be true or false, got {type(per_channel).__name__} {per_channel!r}"
        )
    return LazyPReLU(init=start) if per_channel else PReLU(num_parameters=1, init=start)


@ACTIVATIONS.register(
    "thresholded_relu",
    claim="thresholded ReLU passes x only above theta, giving sparse activations",
)
def thresholded_relu(*, theta: float = 1.0) -> nn.Module:
    """Thresholded ReLU as in Keras: x if x > theta, else 0.

    Args:
        theta: threshold, >= 0 (Keras's rule); theta=0 is a plain ReLU.

    Example:
        >>> thresholded_relu(theta=1.0)(torch.tensor([0.5, 1.0, 1.5])).tolist()
        [0.0, 0.0, 1.5]
    """
    limit = check.at_least("thresholded_relu: theta", theta, 0)
    return _named(nn.Threshold(threshold=limit, value=0.0), "thresholded_relu")


# ----------------------------------------------------------------------------- smooth modern units


@ACTIVATIONS.register(
    "elu",
    claim="ELU has negative outputs down to -alpha, pushing mean activations toward zero",
)
def elu(*, alpha: float = 1.0) -> nn.Module:
    """Exponential linear unit: x for x > 0, alpha * (exp(x) - 1) otherwise.

    Args:
        alpha: magnitude of the negative saturation value, > 0.
    """
    scale = check.positive(
        "elu: alpha", alpha, hint="alpha is the negative saturation level; use 'relu' for 0."
    )
    return _named(nn.ELU(alpha=scale), "elu")


@ACTIVATIONS.register(
    "selu",
    claim="SELU with lecun_normal weights self-normalizes: activations stay at mean 0, std 1 with depth",
)
def selu() -> nn.Module:
    """Scaled ELU with the constants of Klambauer et al. 2017; pair it with ``lecun_normal`` weights."""
    return _named(nn.SELU(), "selu")


@ACTIVATIONS.register(
    "gelu",
    claim="GELU weights x by the standard normal CDF, x * Phi(x): a smooth ReLU used by Transformers",
)
def gelu(*, approximate: bool = False) -> nn.Module:
    """Gaussian error linear unit x * Phi(x).

    Args:
        approximate: use the tanh approximation (as Keras's ``approximate=True``
            and PyTorch's ``approximate="tanh"``) instead of the exact erf form.
    """
    if not isinstance(approximate, bool):
        raise InputTypeError(
            f"gelu: approximate must be true or false, got {type(approximate).__name__} {approximate!r}"
        )
    return _named(nn.GELU(approximate="tanh" if approximate else "none"), "gelu")


_SWISH_CLAIM = "swish/SiLU x * sigmoid(x) is a smooth, non-monotone ReLU that often trains deep nets better"


@ACTIVATIONS.register("swish", claim=_SWISH_CLAIM)
def swish() -> nn.Module:
    """Swish x * sigmoid(x) (Ramachandran et al. 2017); the same function as ``silu``."""
    return _named(nn.SiLU(), "swish")


@ACTIVATIONS.register("silu", claim=_SWISH_CLAIM)
def silu() -> nn.Module:
    """Sigmoid linear unit x * sigmoid(x) (Hendrycks & Gimpel 2016); the same function as ``swish``."""
    return _named(nn.SiLU(), "silu")


# ----------------------------------------------------------------------------- outputs


def _axis(technique: str, axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise InputTypeError(
            f"{technique}: axis must be an int (the dim that sums to one; -1 is the last), "
            f"got {type(axis).__name__} {axis!r}"
        )
    return axis


@ACTIVATIONS.register(
    "softmax",
    claim="softmax turns scores into a probability distribution: positive outputs summing to 1",
)
def softmax(*, axis: int = -1) -> nn.Module:
    """Softmax exp(x_i) / sum_j exp(x_j) along `axis`; for class probabilities.

    Example:
        >>> softmax()(torch.zeros(1, 4)).tolist()
        [[0.25, 0.25, 0.25, 0.25]]
    """
    return _named(nn.Softmax(dim=_axis("softmax", axis)), "softmax")


@ACTIVATIONS.register(
    "log_softmax",
    claim="log_softmax computes log(softmax(x)) stably as x - logsumexp(x), for a log-likelihood",
)
def log_softmax(*, axis: int = -1) -> nn.Module:
    """Logarithm of the softmax along `axis`, computed as x - logsumexp(x) without overflow."""
    return _named(nn.LogSoftmax(dim=_axis("log_softmax", axis)), "log_softmax")


@ACTIVATIONS.register("linear", claim="the identity: a layer with no activation is a linear (affine) map")
def linear() -> nn.Module:
    """Identity f(x) = x (no activation); the usual output for regression."""
    return _named(nn.Identity(), "linear")


# ----------------------------------------------------------------------------- user functions


class FunctionActivation(nn.Module):
    """Wraps a plain function (e.g. ``torch.relu``) as a module.

    Its ``name`` is ``"function:<function name>"``, which never equals a
    registry name: the model layer only fuses a final activation with the loss
    when it knows the activation is exactly softmax/sigmoid, and a user's
    function is not assumed to be.
    """

    def __init__(self, function: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.function = function
        self.name = f"function:{getattr(function, '__name__', type(function).__name__)}"

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)

    def extra_repr(self) -> str:
        return self.name


def activation(
    spec: str | Mapping[str, Any] | nn.Module | Callable[[Tensor], Tensor] | None,
    *,
    source: str | None = None,
) -> nn.Module:
    """Turn what a user wrote into an activation module.

    Args:
        spec: a registry name (``"relu"``, case-insensitive), a mapping
            ``{"name": "leaky_relu", "alpha": 0.1}``, an ``nn.Module`` (returned
            as is), a plain function of one tensor (wrapped in a module), or
            None (no activation: ``nn.Identity`` named ``"linear"``).
        source: where the spec came from (``"layers[2].activation"``), quoted in errors.

    Raises:
        InputError: unknown name or bad setting; the message lists the close matches.

    Example:
        >>> activation("ReLU").name
        'relu'
        >>> activation(torch.tanh)(torch.zeros(2)).tolist()
        [0.0, 0.0]
    """
    if spec is None:
        return linear()
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, (str, Mapping)):
        module: nn.Module = ACTIVATIONS.build(spec, source=source)
        return module
    where = f" (from {source})" if source else ""
    if isinstance(spec, type):
        raise InputTypeError(
            f"activation{where} must be a name, a module instance or a function, got the class "
            f"{spec.__name__}. Pass an instance, e.g. {spec.__name__}(), or a name such as 'relu'."
        )
    if callable(spec):
        return FunctionActivation(spec)
    raise InputTypeError(
        f"activation{where} must be a name such as 'relu', a {{name = ..., setting = ...}} table, "
        f"an nn.Module or a function, got {type(spec).__name__} {spec!r}. Known names: "
        f"{', '.join(ACTIVATIONS.names())}."
    )
