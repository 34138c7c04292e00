"""Optimizers by name: validated wrappers around `torch.optim`.

Each entry of `OPTIMIZERS` is a factory ``name(params, *, lr=..., ...)`` that
checks its settings (an error names the optimizer and the setting), picks the
fastest torch kernel that gives the same numbers, and returns the
`torch.optim.Optimizer`. The update rules are torch's; the docstrings write
them out so that a reader can check them against the papers.

Defaults. The learning rates are Keras's, because that is what most users
expect a name alone to mean (sgd/momentum/nesterov 0.01; adam, adamw, nadam,
rmsprop, adagrad 0.001), except adadelta (lr=1.0, as torch and Zeiler's paper:
its step is already in the units of the parameters, and Keras's 0.001 barely
moves it). The other constants (eps, betas, ...) are the papers' and torch's.

Weight decay. ``weight_decay`` is the coupled L2 form everywhere but `adamw`:
the gradient becomes ``g + weight_decay * p``, so in the adaptive methods the
decay is rescaled by the same per-coordinate factor as the gradient. `adamw`
decouples it: ``p <- p - lr * weight_decay * p``, applied next to (not inside)
the Adam step, as Loshchilov & Hutter propose.

Kernels. ``fused=None`` (the default) uses torch's fused kernel where torch has
one for the optimizer (sgd, momentum, nesterov, adagrad, adam, adamw) and for
the parameters' device and dtype (CPU and CUDA floating point, torch >= 2.4),
because it is several times faster and computes the same update; otherwise the
multi-tensor ``foreach`` path. ``fused=True`` demands the fused kernel (an error
where there is none), ``fused=False`` forbids it. Both paths are elementwise, so
a run is deterministic for a given seed.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = optimizer({"name": "adam", "lr": 0.1}, [w])
    >>> type(opt).__name__, opt.defaults["lr"]
    ('Adam', 0.1)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch

from trainlab import check
from trainlab.errors import InputError, InputTypeError, did_you_mean
from trainlab.registry import Registry

__all__ = [
    "OPTIMIZERS",
    "StackedForm",
    "optimizer",
    "stacked_form",
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "adamw",
    "nadam",
    "Optimizer",
    "LearningRate",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Nadam",
]

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


@dataclass(frozen=True)
class StackedForm:
    """An optimizer's stackable form: the capability ``"stacked"`` of its registry entry.

    K members that use such an optimizer take their steps together
    (`trainlab.stacked`): torch's own `torch_class`, built with ``lr=1`` and
    ``weight_decay=0`` over the members' rows, writes each member's update
    direction D (its state kept per row); the loop then applies
    ``p <- p - lr_k * D`` with each member's lr and weight decay. That is exact
    for an optimizer whose update is lr times a direction that depends on the
    gradients and its state but not on lr (SGD and its momenta, Adagrad,
    Adadelta, RMSprop, Adam, AdamW, NAdam). An optimizer whose entry has no such
    form (any other torch optimizer, a user's own class) trains solo.

    Attributes:
        torch_class: the torch optimizer the entry builds; a built optimizer has this
            form when its type is exactly this class.
        weight_decay: "coupled" (L2 in the gradient: g + wd * p) or "decoupled"
            (p <- p * (1 - lr * wd) before the step, as AdamW).
        state_slots: numbers of state kept per parameter, from the settings of the
            optimizer's parameter group (for the memory estimate of a stack).
        functional: the name of torch's functional form of the step ("adam" or "sgd"),
            which a stack may call with its lists bound once; None for ``step()``.
    """

    torch_class: type[torch.optim.Optimizer]
    state_slots: Callable[[Mapping[str, Any]], int]
    weight_decay: Literal["coupled", "decoupled"] = "coupled"
    functional: Literal["adam", "sgd"] | None = None


def stacked_form(built: torch.optim.Optimizer | None) -> StackedForm | None:
    """The stackable form the optimizer registry gives `built`'s class, or None.

    Asked by type, exactly: a subclass may change the step, so it has no form
    unless it is registered with one.

    Example:
        >>> import torch
        >>> w = [torch.nn.Parameter(torch.zeros(2))]
        >>> stacked_form(optimizer("adamw", w)).weight_decay
        'decoupled'
        >>> stacked_form(torch.optim.Adamax(w)) is None
        True
    """
    if built is None:
        return None
    for entry in OPTIMIZERS.describe():
        form = entry.capabilities.get("stacked")
        if isinstance(form, StackedForm) and type(built) is form.torch_class:
            return form
    return None


def _momentum_slots(group: Mapping[str, Any]) -> int:
    return 1 if group.get("momentum", 0) else 0


def _one_slot(group: Mapping[str, Any]) -> int:
    return 1


def _two_slots(group: Mapping[str, Any]) -> int:
    return 2


def _rmsprop_slots(group: Mapping[str, Any]) -> int:
    return 1 + bool(group.get("momentum")) + bool(group.get("centered"))


def _adam_slots(group: Mapping[str, Any]) -> int:
    return 3 if group.get("amsgrad") else 2


def optimizer(spec: Any, params: Any, *, source: str | None = None) -> torch.optim.Optimizer:
    """Build the optimizer a user described, for `params`.

    Args:
        spec: a registered name (``"adam"``), a mapping ``{"name": "adam",
            "lr": 0.01}`` (Keras's spelling ``learning_rate`` is accepted for
            ``lr``), a Keras-style `Optimizer` object (``Adam(learning_rate=1e-3)``),
            a `torch.optim.Optimizer` subclass (called as ``cls(params)``, so with
            torch's defaults), a `torch.optim.Optimizer` already built on (some of)
            these parameters (used as it is, as in a PyTorch loop), or any callable
            ``factory(params) -> Optimizer``.
        params: the parameters: an iterable of tensors, a list of param-group
            dicts (as torch.optim takes), or an `nn.Module`.
        source: where the spec came from (``"--optimizer"``, a TOML path),
            quoted in error messages.

    Raises:
        InputError: unknown name, unknown or invalid setting.
        InputTypeError: `spec` is none of the above, is an optimizer built for
            other parameters, or a factory did not return an optimizer.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2)
        >>> optimizer("momentum", model).defaults["momentum"]
        0.9
        >>> optimizer(torch.optim.SGD, model.parameters()).defaults["lr"]
        0.001
        >>> optimizer({"name": "adam", "learning_rate": 0.01}, model).defaults["lr"]
        0.01
        >>> optimizer({"name": "adam", "lr": -1}, model)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trainlab.errors.InputError: adam: lr must be >= 0, got -1. The learning rate scales every step; ...
    """
    params = _params(params)
    if isinstance(spec, Optimizer):
        return spec.build(params, source=source)
    if isinstance(spec, torch.optim.Optimizer):
        return _adopt(spec, params, source)
    if isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer):
        built: Any = cast(Callable[..., torch.optim.Optimizer], spec)(params)
    elif isinstance(spec, (str, Mapping)):
        built = OPTIMIZERS.build(_settings(spec, source), source=source, params=params)
    elif callable(spec) and not isinstance(spec, torch.nn.Module):
        built = spec(params)
    else:
        raise InputTypeError(
            f"optimizer{_from(source)} must be a name (one of {', '.join(OPTIMIZERS.names())}), a "
            f"table with a 'name' key, an Optimizer class or a factory, got "
            f"{_shown(spec)}"
        )
    if not isinstance(built, torch.optim.Optimizer):
        raise InputTypeError(
            f"optimizer factory {spec!r}{_from(source)} must return a torch.optim.Optimizer, got "
            f"{type(built).__name__}"
        )
    return built


# ---------------------------------------------------------------------------
# Registered optimizers


@OPTIMIZERS.register(
    "sgd",
    capabilities={"stacked": StackedForm(torch.optim.SGD, state_slots=_momentum_slots, functional="sgd")},
    claim="Stepping against the gradient with a small enough lr decreases a smooth loss; full-batch, "
    "mini-batch and stochastic gradient descent differ only in the batch size.",
)
def sgd(
    params: Params,
    *,
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.SGD:
    """Plain (stochastic) gradient descent: p <- p - lr * g.

    Full-batch, mini-batch and stochastic gradient descent are all this
    optimizer, with batch size n (the whole data set), b, and 1: the batch
    size is a setting of the training loop, not of the optimizer.

    `momentum` and `nesterov` are accepted as in Keras's and torch's SGD; the
    names `momentum` and `nesterov` are the same optimizer with momentum 0.9.

    Args:
        params: parameters or param-group dicts.
        lr: step size; 0.01 is Keras's default.
        momentum: velocity decay in [0, 1); 0 is plain gradient descent.
        nesterov: use Nesterov's look-ahead form of momentum (needs momentum > 0).
        weight_decay: coupled L2: the gradient becomes g + weight_decay * p.
        fused: None picks torch's fused kernel where available, True demands it,
            False forbids it.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = sgd([w], lr=0.5)
        >>> w.grad = torch.tensor([1.0, 1.0])
        >>> opt.step()
        >>> w.data
        tensor([ 0.5000, -2.5000])
    """
    name = "sgd"
    params = _params(params)
    _check_lr(name, lr)
    check.in_range(f"{name}: momentum", momentum, 0, 1, open_high=True,
                   hint="Momentum is the fraction of the last update kept; 0.9 is usual.")
    if _flag(name, "nesterov", nesterov) and momentum <= 0:
        raise InputError(
            f"{name}: nesterov=True needs momentum in (0, 1), got {momentum}. "
            f"Set momentum (e.g. 0.9) or use the optimizer 'nesterov'."
        )
    _check_decay(name, weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov,
                           weight_decay=weight_decay, **_kernel(name, params, fused, has_fused=True))


@OPTIMIZERS.register(
    "momentum",
    capabilities={"stacked": StackedForm(torch.optim.SGD, state_slots=_momentum_slots, functional="sgd")},
    claim="Accumulating a velocity damps oscillation across steep directions and speeds progress along "
    "shallow ones (Polyak 1964).",
)
def momentum(
    params: Params,
    *,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.SGD:
    """SGD with (heavy-ball) momentum: v <- momentum * v + g; p <- p - lr * v.

    torch's form (and ours): the velocity accumulates gradients, not lr-scaled
    steps, and starts as the first gradient. With a constant lr it is the same
    as Keras's ``v <- momentum * v - lr * g; p <- p + v``.

    Args:
        params: parameters or param-group dicts.
        lr: step size; 0.01 is Keras's default for SGD.
        momentum: velocity decay in [0, 1); 0.9 is the common choice (an
            effective step of about lr / (1 - 0.9) = 10 lr along steady directions).
        weight_decay: coupled L2: the gradient becomes g + weight_decay * p.
        fused: None picks torch's fused kernel where available, True demands it,
            False forbids it.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([0.0]))
        >>> opt = momentum([w], lr=1.0, momentum=0.5)
        >>> for _ in range(2):
        ...     w.grad = torch.tensor([1.0])
        ...     opt.step()
        >>> w.item()  # steps of 1 and 1 + 0.5
        -2.5
    """
    name = "momentum"
    params = _params(params)
    _check_lr(name, lr)
    check.in_range(f"{name}: momentum", momentum, 0, 1, open_high=True,
                   hint="Momentum is the fraction of the last update kept; 0.9 is usual.")
    _check_decay(name, weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           **_kernel(name, params, fused, has_fused=True))


@OPTIMIZERS.register(
    "nesterov",
    capabilities={"stacked": StackedForm(torch.optim.SGD, state_slots=_momentum_slots, functional="sgd")},
    claim="Taking the gradient's step from the look-ahead point reacts sooner to curvature than classical "
    "momentum (Nesterov 1983; Sutskever et al. 2013).",
)
def nesterov(
    params: Params,
    *,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.SGD:
    """SGD with Nesterov momentum, as torch defines it.

    v <- momentum * v + g;  p <- p - lr * (g + momentum * v).
    This is Sutskever et al.'s reformulation of Nesterov's method in terms of
    the current parameters (the update uses the velocity one step ahead).

    Args:
        params: parameters or param-group dicts.
        lr: step size; 0.01 is Keras's default for SGD.
        momentum: velocity decay in (0, 1); 0.9 is the common choice.
        weight_decay: coupled L2: the gradient becomes g + weight_decay * p.
        fused: None picks torch's fused kernel where available, True demands it,
            False forbids it.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([0.0]))
        >>> opt = nesterov([w], lr=1.0, momentum=0.5)
        >>> w.grad = torch.tensor([1.0])
        >>> opt.step()
        >>> w.item()  # v = 1, step = 1 + 0.5 * 1
        -1.5
    """
    name = "nesterov"
    params = _params(params)
    _check_lr(name, lr)
    check.in_range(f"{name}: momentum", momentum, 0, 1, open_low=True, open_high=True,
                   hint="Nesterov momentum needs a velocity; 0.9 is usual.")
    _check_decay(name, weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay,
                           **_kernel(name, params, fused, has_fused=True))


@OPTIMIZERS.register(
    "adagrad",
    capabilities={"stacked": StackedForm(torch.optim.Adagrad, state_slots=_one_slot)},
    claim="Scaling each coordinate's step by 1/sqrt(sum of its squared gradients) gives rarely-updated "
    "coordinates larger steps (Duchi et al. 2011).",
)
def adagrad(
    params: Params,
    *,
    lr: float = 0.001,
    eps: float = 1e-10,
    initial_accumulator_value: float = 0.0,
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.Adagrad:
    """Adagrad: s <- s + g^2;  p <- p - lr * g / (sqrt(s) + eps).

    Steps shrink as squared gradients accumulate, which suits sparse features
    and convex problems but can stall long non-convex runs (see rmsprop).

    Args:
        params: parameters or param-group dicts.
        lr: step size; 0.001 is Keras's default.
        eps: added to sqrt(s) for stability; 1e-10 is torch's default.
        initial_accumulator_value: starting value of s (torch 0; Keras uses 0.1).
        weight_decay: coupled L2: the gradient becomes g + weight_decay * p.
        fused: None picks torch's fused kernel where available, True demands it,
            False forbids it.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([0.0, 0.0]))
        >>> opt = adagrad([w], lr=0.1)
        >>> w.grad = torch.tensor([3.0, -0.01])
        >>> opt.step()
        >>> w.data  # the first step is lr * sign(g), whatever the gradient's size
        tensor([-0.1000,  0.1000])
    """
    name = "adagrad"
    params = _params(params)
    _check_lr(name, lr)
    _check_eps(name, eps)
    check.at_least(f"{name}: initial_accumulator_value", initial_accumulator_value, 0)
    _check_decay(name, weight_decay)
    return torch.optim.Adagrad(params, lr=lr, eps=eps, initial_accumulator_value=initial_accumulator_value,
                               weight_decay=weight_decay, **_kernel(name, params, fused, has_fused=True))


@OPTIMIZERS.register(
    "adadelta",
    capabilities={"stacked": StackedForm(torch.optim.Adadelta, state_slots=_two_slots)},
    claim="The ratio RMS(past updates) / RMS(gradients) gives steps in the parameters' own units, so the "
    "method needs no hand-tuned learning rate (Zeiler 2012).",
)
def adadelta(
    params: Params,
    *,
    lr: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.Adadelta:
    """Adadelta, with torch's accumulators:

    s <- rho * s + (1 - rho) * g^2
    d <- sqrt(u + eps) / sqrt(s + eps) * g
    u <- rho * u + (1 - rho) * d^2
    p <- p - lr * d

    lr=1.0 (torch's default, and the paper's method, which has no learning
    rate) rather than Keras's 0.001: the step d is already in the units of the
    parameters, and scaling it by 0.001 leaves the model almost where it
    started. rho=0.9 is torch's default (the paper also uses 0.95).

    Args:
        params: parameters or param-group dicts.
        lr: multiplier of the step d.
        rho: decay of both running averages, in [0, 1).
        eps: > 0; starts the update accumulator, so it sets the first steps' size.
        weight_decay: coupled L2: the gradient becomes g + weight_decay * p.
        fused: torch has no fused Adadelta; None and False use the foreach path,
            True is an error.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = adadelta([w])
        >>> w.grad = torch.tensor([2.0])
        >>> opt.step()
        >>> round(1.0 - w.item(), 6)  # sqrt(eps) / sqrt(0.1 * 4 + eps) * 2
        0.003162
    """
    name = "adadelta"
    params = _params(params)
    _check_lr(name, lr)
    check.in_range(f"{name}: rho", rho, 0, 1, open_high=True,
                   hint="rho is the decay of the running averages; 0.9 or 0.95 are usual.")
    check.positive(f"{name}: eps", eps,
                   hint="eps seeds the update accumulator; with 0 no step is ever taken.")
    _check_decay(name, weight_decay)
    return torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                **_kernel(name, params, fused, has_fused=False))


@OPTIMIZERS.register(
    "rmsprop",
    capabilities={"stacked": StackedForm(torch.optim.RMSprop, state_slots=_rmsprop_slots)},
    claim="Dividing by a running RMS of recent gradients normalizes each coordinate's step without "
    "Adagrad's ever-shrinking steps (Hinton 2012).",
)
def rmsprop(
    params: Params,
    *,
    lr: float = 0.001,
    rho: float = 0.9,
    eps: float = 1e-8,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.RMSprop:
    """RMSprop: s <- rho * s + (1 - rho) * g^2;  p <- p - lr * g / (sqrt(s) + eps).

    `rho` is the decay of the mean square (Hinton's and Keras's name); it is
    passed to torch as ``alpha``. The default 0.9 is Keras's and Hinton's
    lecture's (torch's own default is 0.99). eps sits outside the square root,
    as in torch (Keras puts it inside; the difference only matters for tiny s).
    With momentum m > 0: b <- m * b + g / (sqrt(s) + eps); p <- p - lr * b.
    centered=True divides by an estimate of the variance instead:
    sqrt(s - mean(g)^2) + eps.

    Args:
        params: parameters or param-group dicts.
        lr: step size; 0.001 is Keras's default.
        rho: decay of the mean square, in [0, 1) (torch's ``alpha``).
        eps: added to the root mean square for stability.
        momentum: momentum on the normalized step, in [0, 1).
        centered: normalize by the gradient's estimated variance.
        weight_decay: coupled L2: the gradient becomes g + weight_decay * p.
        fused: torch has no fused RMSprop; None and False use the foreach path,
            True is an error.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([0.0]))
        >>> opt = rmsprop([w], lr=0.01)
        >>> w.grad = torch.tensor([5.0])
        >>> opt.step()
        >>> round(w.item(), 4)  # -0.01 * 5 / sqrt(0.1 * 25)
        -0.0316
    """
    name = "rmsprop"
    params = _params(params)
    _check_lr(name, lr)
    check.in_range(f"{name}: rho", rho, 0, 1, open_high=True,
                   hint="rho is the decay of the mean square (torch's alpha); 0.9 is usual.")
    _check_eps(name, eps)
    check.in_range(f"{name}: momentum", momentum, 0, 1, open_high=True)
    _flag(name, "centered", centered)
    _check_decay(name, weight_decay)
    return torch.optim.RMSprop(params, lr=lr, alpha=rho, eps=eps, momentum=momentum, centered=centered,
                               weight_decay=weight_decay, **_kernel(name, params, fused, has_fused=False))


@OPTIMIZERS.register(
    "adam",
    capabilities={"stacked": StackedForm(torch.optim.Adam, state_slots=_adam_slots, functional="adam")},
    claim="Bias-corrected running means of the gradient and its square give each coordinate a step of "
    "about lr whatever the gradient's scale (Kingma & Ba 2015).",
)
def adam(
    params: Params,
    *,
    lr: float = 0.001,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    fused: bool | None = None,
) -> torch.optim.Adam:
    """Adam: bias-corrected first and second moment estimates.

    m <- b1 * m + (1 - b1) * g;  v <- b2 * v + (1 - b2) * g^2   (t = 1, 2, ...)
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    `weight_decay` here is coupled L2 (g <- g + weight_decay * p, before the
    moments), so the decay is divided by sqrt(v) like the gradient; for the
    decoupled form use `adamw`. amsgrad=True divides by the running maximum of
    v instead of v (Reddi et al. 2018).

    Args:
        params: parameters or param-group dicts.
        lr: step size; 0.001 is the paper's and Keras's default.
        betas: (b1, b2), each in [0, 1); the paper's (0.9, 0.999).
        eps: added to the denominator; the paper's 1e-8 (Keras: 1e-7).
        weight_decay: coupled L2, see above.
        amsgrad: use the AMSGrad variant.
        fused: None picks torch's fused kernel where available, True demands it,
            False forbids it.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([0.0, 0.0]))
        >>> opt = adam([w], lr=0.1)
        >>> w.grad = torch.tensor([100.0, -0.001])
        >>> opt.step()
        >>> w.data  # the first step is about lr * sign(g)
        tensor([-0.1000,  0.1000])
    """
    name = "adam"
    params = _params(params)
    _check_lr(name, lr)
    b = _betas(name, betas)
    _check_eps(name, eps)
    _check_decay(name, weight_decay)
    _flag(name, "amsgrad", amsgrad)
    return torch.optim.Adam(params, lr=lr, betas=b, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                            **_kernel(name, params, fused, has_fused=True))


@OPTIMIZERS.register(
    "adamw",
    capabilities={"stacked": StackedForm(torch.optim.AdamW, weight_decay="decoupled", state_slots=_adam_slots, functional="adam")},
    claim="Decoupling weight decay from the adaptive step makes it shrink every weight at the same rate, "
    "which L2 inside Adam does not, and regularizes better (Loshchilov & Hutter 2019).",
)
def adamw(
    params: Params,
    *,
    lr: float = 0.001,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    amsgrad: bool = False,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW: Adam with decoupled weight decay.

    p <- p - lr * weight_decay * p   (the decay, outside the adaptive step)
    then the Adam step with the plain gradient g (see `adam`).

    In `adam`, L2 added to the gradient is divided by sqrt(v), so weights with
    large gradients are barely decayed; here every weight shrinks by the same
    factor (1 - lr * weight_decay) per step. The decay is scaled by lr, so a
    schedule scales it too. weight_decay=0.01 is torch's default (Keras uses
    0.004).

    Args:
        params: parameters or param-group dicts.
        lr: step size; 0.001 as Adam.
        betas: (b1, b2), each in [0, 1).
        eps: added to the denominator.
        weight_decay: decoupled decay rate per unit of lr, >= 0.
        amsgrad: use the AMSGrad variant.
        fused: None picks torch's fused kernel where available, True demands it,
            False forbids it.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([2.0]))
        >>> opt = adamw([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = torch.tensor([0.0])
        >>> opt.step()
        >>> round(w.item(), 6)  # no gradient: only the decay, 2 * (1 - 0.1 * 0.5)
        1.9
    """
    name = "adamw"
    params = _params(params)
    _check_lr(name, lr)
    b = _betas(name, betas)
    _check_eps(name, eps)
    _check_decay(name, weight_decay)
    _flag(name, "amsgrad", amsgrad)
    return torch.optim.AdamW(params, lr=lr, betas=b, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                             **_kernel(name, params, fused, has_fused=True))


@OPTIMIZERS.register(
    "nadam",
    capabilities={"stacked": StackedForm(torch.optim.NAdam, state_slots=_adam_slots)},
    claim="Applying Nesterov's look-ahead to Adam's momentum term speeds early progress over Adam "
    "(Dozat 2016).",
)
def nadam(
    params: Params,
    *,
    lr: float = 0.001,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    momentum_decay: float = 0.004,
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.NAdam:
    """NAdam (Dozat 2016), with torch's momentum schedule:

    mu_t = b1 * (1 - 0.5 * 0.96^(t * momentum_decay));  P_t = mu_1 * ... * mu_t
    m <- b1 * m + (1 - b1) * g;  v <- b2 * v + (1 - b2) * g^2
    p <- p - lr * [(1 - mu_t) / (1 - P_t) * g + mu_{t+1} / (1 - P_t * mu_{t+1}) * m]
             / (sqrt(v / (1 - b2^t)) + eps)

    lr=0.001 is Keras's default (torch's is 0.002).

    Args:
        params: parameters or param-group dicts.
        lr: step size.
        betas: (b1, b2), each in [0, 1).
        eps: added to the denominator.
        momentum_decay: psi in the momentum schedule above (torch's 0.004).
        weight_decay: coupled L2: the gradient becomes g + weight_decay * p.
        fused: torch has no fused NAdam; None and False use the foreach path,
            True is an error.

    Example:
        >>> import torch
        >>> w = torch.nn.Parameter(torch.tensor([0.0]))
        >>> opt = nadam([w], lr=0.1)
        >>> w.grad = torch.tensor([50.0])
        >>> opt.step()
        >>> -0.11 < w.item() < -0.09  # about lr * sign(g), like Adam
        True
    """
    name = "nadam"
    params = _params(params)
    _check_lr(name, lr)
    b = _betas(name, betas)
    _check_eps(name, eps)
    check.at_least(f"{name}: momentum_decay", momentum_decay, 0)
    _check_decay(name, weight_decay)
    return torch.optim.NAdam(params, lr=lr, betas=b, eps=eps, momentum_decay=momentum_decay,
                             weight_decay=weight_decay, **_kernel(name, params, fused, has_fused=False))


# ---------------------------------------------------------------------------
# Keras-style optimizer objects


class LearningRate(float):
    """The learning rate read from `Optimizer.learning_rate`: a float with Keras's ``assign``.

    Keras callbacks write ``self.model.optimizer.learning_rate = 0.01`` or
    ``self.model.optimizer.learning_rate.assign(0.01)``; both set the rate of
    the optimizer in training, from its next step on.
    """

    owner: Optimizer | None

    def __new__(cls, value: float, owner: Optimizer | None = None) -> LearningRate:
        made = super().__new__(cls, value)
        made.owner = owner
        return made

    def assign(self, value: float) -> None:
        """Set the optimizer's learning rate (Keras's ``Variable.assign``)."""
        if self.owner is None:
            raise InputError("this learning rate does not belong to an optimizer; set "
                             "`model.optimizer.learning_rate = value` instead")
        self.owner.learning_rate = value

    def numpy(self) -> float:
        return float(self)


class Optimizer:
    """An optimizer as Keras users hold it: `model.optimizer` after `compile`.

    It is a description (a registry name and its settings, or a torch optimizer
    object, class or factory) that `build` turns into the `torch.optim.Optimizer`
    of a run; it stays bound to that optimizer, so a callback can read and set
    `learning_rate` during training with effect from the next step. A new
    `fit` builds a new torch optimizer (fresh moments) with the current
    learning rate.

    Example:
        >>> import torch
        >>> opt = Optimizer({"name": "momentum", "learning_rate": 0.1})
        >>> float(opt.learning_rate)
        0.1
        >>> torch_opt = opt.build([torch.nn.Parameter(torch.zeros(2))])
        >>> opt.learning_rate = 0.05
        >>> torch_opt.param_groups[0]["lr"]
        0.05
    """

    def __init__(self, spec: Any = "rmsprop", *, source: str | None = None) -> None:
        if isinstance(spec, Optimizer):
            spec = spec.spec
        self.spec: Any = spec
        self._lr: float | None = None
        self.torch_optimizer: torch.optim.Optimizer | None = None
        self.source = source
        if isinstance(spec, (str, Mapping)):
            # Built once on a dummy parameter so that a typo fails now, as in Keras's compile.
            probe = optimizer(spec, [torch.nn.Parameter(torch.zeros(1))], source=source)
            self._lr = float(probe.param_groups[0]["lr"])
        elif isinstance(spec, torch.optim.Optimizer):
            self.torch_optimizer = spec
        elif not callable(spec) or isinstance(spec, torch.nn.Module):
            optimizer(spec, [torch.nn.Parameter(torch.zeros(1))], source=source)  # raises the type error

    @property
    def name(self) -> str:
        if isinstance(self.spec, str):
            return self.spec
        if isinstance(self.spec, Mapping):
            return str(self.spec.get("name", ""))
        built = self.torch_optimizer
        return type(built).__name__ if built is not None else getattr(self.spec, "__name__", "optimizer")

    def build(self, params: Any, *, source: str | None = None) -> torch.optim.Optimizer:
        """The torch optimizer for `params`, with the learning rate set on this object."""
        spec = self.spec
        source = self.source or source
        if isinstance(spec, (str, Mapping)):
            settings = _settings(spec, source)
            if self._lr is not None:
                settings["lr"] = self._lr
            built = optimizer(settings, params, source=source)
        else:
            built = optimizer(spec, params, source=source)
            if self._lr is not None and not isinstance(spec, torch.optim.Optimizer):
                for group in built.param_groups:
                    group["lr"] = self._lr
        self.torch_optimizer = built
        return built

    @property
    def learning_rate(self) -> LearningRate:
        """The learning rate of the first parameter group (of the optimizer in training, once built)."""
        if self.torch_optimizer is not None:
            return LearningRate(float(self.torch_optimizer.param_groups[0]["lr"]), self)
        return LearningRate(self._lr if self._lr is not None else float("nan"), self)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        check.at_least("optimizer.learning_rate", float(value), 0,
                       hint="The learning rate scales every step; use a small positive value such as 0.001.")
        self._lr = float(value)
        if self.torch_optimizer is not None:
            for group in self.torch_optimizer.param_groups:
                group["lr"] = float(value)

    lr = learning_rate  # torch's and trainlab's spelling

    def get_config(self) -> dict[str, Any]:
        """``{"name": ..., **settings}`` with the current learning rate (only for named optimizers)."""
        if not isinstance(self.spec, (str, Mapping)):
            raise InputError(f"the optimizer {self.name} is a torch object or factory and has no JSON config; "
                             "compile with a name or a table to save it")
        config = _settings(self.spec, None)
        if self._lr is not None:
            config["lr"] = self._lr
        return config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def _keras(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, **{k: v for k, v in settings.items() if v is not None}}


class SGD(Optimizer):
    """Keras's `SGD(learning_rate=0.01, momentum=0.0, nesterov=False)` on torch's SGD."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float | None = None) -> None:
        super().__init__(_keras("sgd", {"lr": learning_rate, "momentum": momentum, "nesterov": nesterov,
                                        "weight_decay": weight_decay}), source="SGD")


class Adam(Optimizer):
    """Keras's `Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)` on torch's Adam.

    `weight_decay` is decoupled, as in Keras 3 (torch's AdamW).
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay: float | None = None) -> None:
        name = "adamw" if weight_decay else "adam"
        super().__init__(_keras(name, {"lr": learning_rate, "betas": (beta_1, beta_2), "eps": epsilon,
                                       "amsgrad": amsgrad, "weight_decay": weight_decay or None}), source="Adam")


class AdamW(Optimizer):
    """Keras's `AdamW(learning_rate=0.001, weight_decay=0.004, ...)` on torch's AdamW."""

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False) -> None:
        super().__init__(_keras("adamw", {"lr": learning_rate, "weight_decay": weight_decay,
                                          "betas": (beta_1, beta_2), "eps": epsilon, "amsgrad": amsgrad}),
                         source="AdamW")


class RMSprop(Optimizer):
    """Keras's `RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)`."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False) -> None:
        super().__init__(_keras("rmsprop", {"lr": learning_rate, "rho": rho, "momentum": momentum,
                                            "eps": epsilon, "centered": centered}), source="RMSprop")


class Adagrad(Optimizer):
    """Keras's `Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)`."""

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7) -> None:
        super().__init__(_keras("adagrad", {"lr": learning_rate, "eps": epsilon,
                                            "initial_accumulator_value": initial_accumulator_value}),
                         source="Adagrad")


class Adadelta(Optimizer):
    """Keras's `Adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-7)` (trainlab's name 'adadelta' uses 1.0)."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7) -> None:
        super().__init__(_keras("adadelta", {"lr": learning_rate, "rho": rho, "eps": epsilon}),
                         source="Adadelta")


class Nadam(Optimizer):
    """Keras's `Nadam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)` on torch's NAdam."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7) -> None:
        super().__init__(_keras("nadam", {"lr": learning_rate, "betas": (beta_1, beta_2), "eps": epsilon}),
                         source="Nadam")


# ---------------------------------------------------------------------------
# Helpers


def _settings(spec: str | Mapping[str, Any], source: str | None) -> dict[str, Any]:
    """``{"name": ..., **settings}`` with Keras's `learning_rate` spelled `lr`; a typo in either is an error."""
    if isinstance(spec, str):
        return {"name": spec}
    if "name" not in spec:
        raise InputError(f"an optimizer given as a table needs a 'name' key{_from(source)}, got {dict(spec)!r}")
    settings = dict(spec)
    if "learning_rate" in settings:
        if "lr" in settings:
            raise InputError(
                f"optimizer '{settings['name']}'{_from(source)} got both lr={settings['lr']!r} and "
                f"learning_rate={settings['learning_rate']!r}; they are two spellings of one setting, keep one."
            )
        settings["lr"] = settings.pop("learning_rate")
    entry = OPTIMIZERS.entry(settings["name"], source=source)
    accepted = [n for n, p in inspect.signature(entry.factory).parameters.items()
                if p.kind is p.KEYWORD_ONLY]
    for key in spec:
        if key != "name" and key != "learning_rate" and key not in accepted:
            known = [*accepted, "learning_rate"]
            raise InputError(
                f"optimizer '{entry.name}' has no setting '{key}'{_from(source)}. "
                f"Settings: {', '.join(known)}.{did_you_mean(key, known)}"
            )
    return settings


def _adopt(built: torch.optim.Optimizer, params: list[Any], source: str | None) -> torch.optim.Optimizer:
    """A torch optimizer the user built, used as it is if it updates only the model's parameters."""
    ours = {id(t) for t in _tensors(params)}
    foreign = [p for group in built.param_groups for p in group["params"]
               if id(p) not in ours and p.requires_grad]
    if foreign:
        raise InputTypeError(
            f"optimizer{_from(source)} is an already built {type(built).__name__} holding "
            f"{len(foreign)} tensor(s) that are not trainable parameters of the model being trained. "
            f"Build it on this model's parameters (`torch.optim.{type(built).__name__}(model.parameters(), "
            f"...)`), or pass a factory `lambda params: torch.optim.{type(built).__name__}(params, ...)`."
        )
    return built




def _kernel(name: str, params: list[Any], fused: Any, *, has_fused: bool) -> dict[str, bool]:
    """The ``fused``/``foreach`` keywords for torch: fused where possible (faster, same numbers)."""
    if fused is not None:
        _flag(name, "fused", fused)
    tensors = _tensors(params)
    if fused is True:
        if not has_fused:
            raise InputError(
                f"{name}: fused=True is not available: torch has no fused kernel for this optimizer. "
                f"Use fused=None (automatic) or fused=False."
            )
        devices = _fused_devices()
        bad = [t for t in tensors if not _fusable(t, devices)]
        if bad:
            raise InputError(
                f"{name}: fused=True needs floating-point parameters on a device with fused kernels "
                f"({', '.join(sorted(devices))}), got a {bad[0].dtype} parameter on {bad[0].device.type}. "
                f"Use fused=None to fall back automatically."
            )
        return {"fused": True}
    if fused is None and has_fused and tensors and all(_fusable(t, _fused_devices()) for t in tensors):
        return {"fused": True}
    # The multi-tensor path is faster than torch's per-tensor loop on the CPU too;
    # torch only picks it by itself on accelerators.
    foreach_ok = all(type(t) in (torch.Tensor, torch.nn.Parameter) and not t.is_sparse for t in tensors)
    kernel = {"fused": False} if has_fused else {}
    if foreach_ok:
        kernel["foreach"] = True
    return kernel


def _fused_devices() -> set[str]:
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return set(_get_fused_kernels_supported_devices())
    except (ImportError, AttributeError):  # private helper moved: CUDA always had fused kernels
        return {"cuda"}


def _fusable(tensor: torch.Tensor, devices: set[str]) -> bool:
    return (
        type(tensor) in (torch.Tensor, torch.nn.Parameter)
        and tensor.device.type in devices
        and torch.is_floating_point(tensor)
    )


def _params(params: Any) -> list[Any]:
    """`params` as a list that can be read twice: generators (also inside param groups) are drained once."""
    if isinstance(params, torch.nn.Module):
        return list(params.parameters())
    if isinstance(params, torch.Tensor):
        return [params]
    out: list[Any] = []
    for item in params:
        if isinstance(item, Mapping) and "params" in item and not isinstance(item["params"], torch.Tensor):
            item = {**item, "params": list(item["params"])}
        out.append(item)
    return out


def _tensors(params: list[Any]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for item in params:
        if isinstance(item, Mapping):
            group = item.get("params", [])
            out.extend([group] if isinstance(group, torch.Tensor) else group)
        elif isinstance(item, torch.Tensor):
            out.append(item)
    return out


def _check_lr(name: str, lr: Any) -> None:
    check.at_least(f"{name}: lr", lr, 0,
                   hint="The learning rate scales every step; use a small positive value such as 0.001.")


def _check_eps(name: str, eps: Any) -> None:
    check.at_least(f"{name}: eps", eps, 0, hint="eps keeps the denominator away from 0; 1e-8 is usual.")


def _check_decay(name: str, weight_decay: Any) -> None:
    check.at_least(f"{name}: weight_decay", weight_decay, 0,
                   hint="A negative decay would push weights away from 0; use 0 to turn it off.")


def _flag(name: str, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputTypeError(f"{name}: {field} must be true or false, got {type(value).__name__} {value!r}")
    return value


def _betas(name: str, betas: Any) -> tuple[float, float]:
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise InputTypeError(
            f"{name}: betas must be a pair (b1, b2) such as (0.9, 0.999), got {betas!r}"
        )
    hint = "b1 and b2 are decay rates of running averages; (0.9, 0.999) is usual."
    b1 = check.in_range(f"{name}: betas[0]", betas[0], 0, 1, open_high=True, hint=hint)
    b2 = check.in_range(f"{name}: betas[1]", betas[1], 0, 1, open_high=True, hint=hint)
    return (b1, b2)


def _shown(value: Any) -> str:
    """The type and, when short and on one line, the repr: a message stays one paragraph."""
    text = repr(value)
    return type(value).__name__ + (f" {text}" if len(text) <= 60 and "\n" not in text else "")


def _from(source: str | None) -> str:
    return f" (from {source})" if source else ""
