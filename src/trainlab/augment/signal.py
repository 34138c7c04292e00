"""1-D signal augmentations (MNIST-1D, sequences): random shift, scale and additive jitter.

Signals are (N, L) or (N, L, C) (Keras layout: steps before features); the
time axis is axis 1. Every sample gets its own draw, all in one tensor
operation per batch. Labels are returned unchanged.

Example:
    >>> import torch
    >>> shift = SignalShift(max_shift=2)
    >>> x = torch.arange(1.0, 7.0).view(1, 6)
    >>> params = shift.draw(1, torch.Generator().manual_seed(1), x.device)
    >>> out = shift.apply(x, params)
    >>> s = int(params["shift"])
    >>> bool((out[0, max(s, 0):6 + min(s, 0)] == x[0, max(-s, 0):6 - max(s, 0)]).all())
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainlab import check
from trainlab.augment import AUGMENTATIONS
from trainlab.errors import InputError

__all__ = ["SignalJitter", "SignalScale", "SignalShift"]

Params = dict[str, Tensor]


def _check_signal(name: str, x: Tensor) -> None:
    if x.ndim not in (2, 3):
        raise InputError(
            f"{name}: expects signals (N, L) or (N, L, C), got shape {tuple(x.shape)}. For images use "
            "random_translation, random_crop or random_flip."
        )


class _SignalAugmentation:
    name = "signal_augmentation"

    def draw(self, n: int, generator: torch.Generator, device: torch.device) -> Params:
        raise NotImplementedError

    def apply(self, x: Tensor, params: Params) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_signal(self.name, x)
        return self.apply(x, self.draw(x.shape[0], generator, x.device)), y

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


def _per_sample(values: Tensor, x: Tensor) -> Tensor:
    return values.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


@AUGMENTATIONS.register(
    "signal_shift",
    claim="Shifting a signal in time by a few steps teaches the model that the class does not "
    "depend on where the pattern starts; the label is kept.",
)
class SignalShift(_SignalAugmentation):
    """Shift each signal by a random whole number of steps in [-max_shift, max_shift].

    Positive shifts move the signal later; the uncovered steps are `fill_value`
    (with ``circular=True`` the signal wraps around instead).
    """

    name = "signal_shift"

    def __init__(self, *, max_shift: int = 4, fill_value: float = 0.0, circular: bool = False) -> None:
        self.max_shift = check.int_at_least(f"{self.name}: max_shift", max_shift, 1)
        self.fill_value = check.number(f"{self.name}: fill_value", fill_value)
        self.circular = bool(circular)

    def draw(self, n: int, generator: torch.Generator, device: torch.device) -> Params:
        shift = torch.randint(-self.max_shift, self.max_shift + 1, (n,), generator=generator, device=device)
        return {"shift": shift}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        length = x.shape[1]
        source = torch.arange(length, device=x.device).view(1, length) - params["shift"].view(-1, 1)
        if self.circular:
            source = source.remainder(length)
        valid = (source >= 0) & (source < length)
        index = source.clamp(0, length - 1)
        if x.ndim == 3:
            index, valid = index.unsqueeze(-1).expand_as(x), valid.unsqueeze(-1)
        return torch.gather(x, 1, index).masked_fill(~valid, self.fill_value)


@AUGMENTATIONS.register(
    "signal_scale",
    claim="Scaling a signal's amplitude by a random factor makes the model invariant to gain; "
    "the label is kept.",
)
class SignalScale(_SignalAugmentation):
    """Multiply each signal by a random factor in [1 - factor, 1 + factor]."""

    name = "signal_scale"

    def __init__(self, *, factor: float = 0.1) -> None:
        self.factor = check.in_range(f"{self.name}: factor", factor, 0.0, 1.0)

    def draw(self, n: int, generator: torch.Generator, device: torch.device) -> Params:
        u = torch.rand(n, generator=generator, device=device)
        return {"scale": 1.0 - self.factor + 2.0 * self.factor * u}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return x * _per_sample(params["scale"], x)


@AUGMENTATIONS.register(
    "signal_jitter",
    claim="Adding small independent Gaussian noise to every step makes the model robust to "
    "measurement noise; the label is kept.",
)
class SignalJitter(_SignalAugmentation):
    """Add N(0, stddev^2) noise to every value of each signal."""

    name = "signal_jitter"

    def __init__(self, *, stddev: float = 0.05) -> None:
        self.stddev = check.positive(f"{self.name}: stddev", stddev)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return x + self.stddev * params["noise"]

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_signal(self.name, x)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return self.apply(x, {"noise": noise}), y
