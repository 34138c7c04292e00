"""Losses: what training minimizes, by name (``"mse"``, ``"sparse_categorical_crossentropy"``, ...).

Every loss is a small frozen dataclass called as ``loss(y_pred, y_true)``; it
returns the batch MEAN as a 0-d tensor. The argument order is PyTorch's
(prediction first), not Keras's. The names, defaults and formulas follow Keras,
so a Keras recipe gives the same numbers here.

Why the extra attributes:

- ``from_logits`` / ``fusable_activation`` / ``with_logits()``: a softmax (or
  sigmoid) followed by a log loses precision and overflows for large logits.
  When the model's last layer has the loss's ``fusable_activation`` and the loss
  takes probabilities, the engine feeds the pre-activation logits to
  ``loss.with_logits()`` instead, which computes the same value stably with
  log-softmax / BCE-with-logits (Keras does the same).
- ``target_dtype``: the engine converts the targets once before training, not
  every batch.
- ``check_target``: a target that does not fit the model (label 10 with 10
  outputs, one-hot targets given to the sparse loss) fails once, before
  training, with a message that says how to fix it, instead of as a CUDA assert
  or a silently broadcast loss.

The hot path uses fused ``torch.nn.functional`` kernels and never syncs with
the device (no ``.item()``); shape checks are plain Python on ``.shape``.

Example:
    >>> import torch
    >>> ce = loss("sparse_categorical_crossentropy")
    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    >>> y = torch.tensor([0, 1])
    >>> fused = ce.with_logits()          # what the engine does after a softmax layer
    >>> round(fused(logits, y).item(), 4) == round(ce(logits.softmax(-1), y).item(), 4)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from trainlab import check
from trainlab.errors import InputError, InputTypeError
from trainlab.registry import Registry

__all__ = [
    "EPSILON",
    "LOSSES",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "CustomLoss",
    "Huber",
    "KLDivergence",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "RootMeanSquaredError",
    "SparseCategoricalCrossentropy",
    "loss",
]

#: Keras's ``backend.epsilon()``: probabilities are clamped to [EPSILON, 1 - EPSILON] before a log.
EPSILON = 1e-7

LOSSES: Registry[Callable[..., Loss]] = Registry("loss")

LossSpec = Union[str, Mapping[str, Any], "Loss", Callable[[Tensor, Tensor], Tensor]]


# --------------------------------------------------------------------------- the interface


@dataclass(frozen=True, kw_only=True)
class Loss:
    """Base of every loss: ``__call__(y_pred, y_true) -> Tensor`` gives the batch mean (0-d).

    Attributes:
        name: the registry name (``"mse"``); aliases give the canonical name.
        from_logits: whether ``y_pred`` is pre-activation (only the cross-entropies
            can take logits; False elsewhere).
        fusable_activation: ``"softmax"`` / ``"sigmoid"`` for the cross-entropies,
            whose activation the engine may fuse into the loss; None elsewhere.
        target_dtype: the dtype the engine converts targets to once
            (``torch.long`` for sparse labels, float32 otherwise).

    Subclasses set these as non-init fields and implement ``__call__``.
    """

    name: str = field(default="loss", init=False)
    from_logits: bool = field(default=False, init=False)
    fusable_activation: str | None = field(default=None, init=False)
    target_dtype: torch.dtype = field(default=torch.float32, init=False)
    #: Capability: the loss is the mean of per-sample terms (``per_sample``), so the sum of K
    #: members' batch losses is K times the loss of their samples together.
    sample_mean: bool = field(default=True, init=False)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement __call__")

    def per_sample(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        """Each sample's loss, shape (N,): the terms whose mean is ``self(y_pred, y_true)``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement per_sample")

    def member_terms(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        """Each sample's loss for m batches side by side: (m, n, ...) in, (m, n) out.

        Row k holds ``per_sample(y_pred[k], y_true[k])``; the m batches are one call.

        Example:
            >>> import torch
            >>> MeanSquaredError().member_terms(torch.ones(2, 3, 1), torch.zeros(2, 3)).shape
            torch.Size([2, 3])
        """
        m = y_pred.shape[0]
        return self.per_sample(y_pred.flatten(0, 1), y_true.flatten(0, 1)).view(m, -1)

    def weighted(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor) -> Tensor:
        """sum_i w_i * loss_i / N: Keras's ``sum_over_batch_size`` reduction with sample weights.

        Example:
            >>> import torch
            >>> mse = MeanSquaredError()
            >>> mse.weighted(torch.tensor([[1.0], [3.0]]), torch.zeros(2), torch.tensor([1.0, 0.0])).item()
            0.5
        """
        terms = self.per_sample(y_pred, y_true)
        return (terms * sample_weight.to(terms.dtype)).sum() / max(terms.shape[0], 1)

    def with_logits(self) -> Loss:
        """A copy that takes pre-activation logits (``from_logits=True``).

        Only the cross-entropies have a logits form; the others raise InputError.
        """
        if self.fusable_activation is None:
            raise InputError(
                f"{self.name}: this loss has no logits form (from_logits applies only to "
                "binary_crossentropy, categorical_crossentropy and sparse_categorical_crossentropy)."
            )
        return replace(self, from_logits=True)

    def check_target(self, y_true: Tensor, num_outputs: int) -> None:
        """Raise InputError if `y_true` does not fit a model with `num_outputs` outputs.

        The base check (used by the regression losses) wants finite targets with one
        column per output; a (N,) target fits a single output.
        """
        _check_finite(self.name, y_true)
        width = _width(y_true)
        if width == num_outputs:
            return
        hint = (
            f"Make the last layer Dense({width}) to predict all {width} target columns, or select "
            "the target columns you meant."
        )
        if width == 1 and num_outputs > 1 and _is_integral(y_true):
            hint = (
                f"The targets look like class labels: for classification use "
                f"loss='sparse_categorical_crossentropy' with a Dense({num_outputs}, activation='softmax') "
                f"output, or make the last layer Dense(1) for regression."
            )
        raise InputError(
            f"{self.name}: the targets have {width} column(s) (shape {tuple(y_true.shape)}) but the model "
            f"has {num_outputs} output(s); {self.name} compares each output with one target column. "
            f"{hint}"
        )


# --------------------------------------------------------------------------- regression


@dataclass(frozen=True, kw_only=True)
class MeanSquaredError(Loss):
    """mean((y_pred - y_true)^2) over every entry.

    Example:
        >>> import torch
        >>> MeanSquaredError()(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0])).item()
        2.5
    """

    name: str = field(default="mse", init=False)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        return F.mse_loss(y_pred, y_true)

    def per_sample(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        return _sample_means(F.mse_loss(y_pred, y_true, reduction="none"))


@dataclass(frozen=True, kw_only=True)
class RootMeanSquaredError(Loss):
    """sqrt(mean((y_pred - y_true)^2)): the batch MSE in the targets' own units.

    The square root is taken of the MSE clamped to the smallest positive float, so
    a perfect fit gives a gradient of 0, not NaN (sqrt has an infinite slope at 0);
    the value differs from the exact one by at most ~1e-19.
    """

    name: str = field(default="rmse", init=False)
    sample_mean: bool = field(default=False, init=False)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        mse = F.mse_loss(y_pred, y_true)
        return torch.sqrt(mse.clamp_min(torch.finfo(mse.dtype).tiny))

    def weighted(self, y_pred: Tensor, y_true: Tensor, sample_weight: Tensor) -> Tensor:
        """sqrt of the weighted batch MSE (sum_i w_i e_i^2 / N)."""
        mse = MeanSquaredError().weighted(y_pred, y_true, sample_weight)
        return torch.sqrt(mse.clamp_min(torch.finfo(mse.dtype).tiny))


@dataclass(frozen=True, kw_only=True)
class MeanAbsoluteError(Loss):
    """mean(|y_pred - y_true|) over every entry."""

    name: str = field(default="mae", init=False)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        return F.l1_loss(y_pred, y_true)

    def per_sample(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        return _sample_means(F.l1_loss(y_pred, y_true, reduction="none"))


@dataclass(frozen=True, kw_only=True)
class Huber(Loss):
    """Mean Huber loss: 0.5 e^2 where |e| <= delta, delta (|e| - 0.5 delta) beyond (Keras's `huber`)."""

    name: str = field(default="huber", init=False)
    delta: float = 1.0

    def __post_init__(self) -> None:
        value = check.positive(
            "huber: delta", self.delta,
            hint="delta is the error size where the loss turns from quadratic to linear, e.g. 1.0.",
        )
        object.__setattr__(self, "delta", value)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        return F.huber_loss(y_pred, y_true, delta=self.delta)

    def per_sample(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        return _sample_means(F.huber_loss(y_pred, y_true, delta=self.delta, reduction="none"))


@dataclass(frozen=True, kw_only=True)
class KLDivergence(Loss):
    """mean over samples of sum_c y_true log(y_true / y_pred), both clamped to [EPSILON, 1] (Keras)."""

    name: str = field(default="kl_divergence", init=False)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        target = y_true.clamp(EPSILON, 1.0)
        log_pred = y_pred.clamp(EPSILON, 1.0).log()
        return F.kl_div(log_pred, target, reduction="none").sum(-1).mean()

    def per_sample(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        target = y_true.clamp(EPSILON, 1.0)
        return _sample_means(F.kl_div(y_pred.clamp(EPSILON, 1.0).log(), target, reduction="none").sum(-1))

    def check_target(self, y_true: Tensor, num_outputs: int) -> None:
        """Targets must be distributions over the `num_outputs` outputs: non-negative, one column each."""
        super().check_target(y_true, num_outputs)
        low = float(y_true.min().item()) if y_true.numel() else 0.0
        if low < 0:
            raise InputError(
                f"{self.name}: the targets must be probability distributions (values >= 0), but the "
                f"smallest target is {low:g}. Normalize each row to sum to 1, e.g. with a softmax."
            )


# --------------------------------------------------------------------------- cross-entropies


@dataclass(frozen=True, kw_only=True)
class _CrossEntropy(Loss):
    """Shared settings of the cross-entropies: `from_logits` and `label_smoothing`."""

    from_logits: bool = False
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.from_logits, bool):
            raise InputTypeError(
                f"{self.name}: from_logits must be true or false, got "
                f"{type(self.from_logits).__name__} {self.from_logits!r}"
            )
        value = check.in_range(
            f"{self.name}: label_smoothing", self.label_smoothing, 0.0, 1.0,
            hint="It is the probability mass moved from the true class to all classes; 0.1 is typical.",
        )
        object.__setattr__(self, "label_smoothing", value)


@dataclass(frozen=True, kw_only=True)
class BinaryCrossentropy(_CrossEntropy):
    """Mean of -[y log p + (1 - y) log(1 - p)] over every entry, for 0/1 (or soft) targets.

    From probabilities, p is clamped to [EPSILON, 1 - EPSILON] as in Keras; with
    ``from_logits=True`` it is ``F.binary_cross_entropy_with_logits`` (stable for
    any logit). Label smoothing ``ls`` uses y * (1 - ls) + 0.5 * ls.
    """

    name: str = field(default="binary_crossentropy", init=False)
    fusable_activation: str | None = field(default="sigmoid", init=False)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            return F.binary_cross_entropy_with_logits(y_pred, y_true)
        # Written out rather than F.binary_cross_entropy, which refuses to run under autocast.
        p = y_pred.clamp(EPSILON, 1.0 - EPSILON)
        return -(y_true * torch.log(p) + (1.0 - y_true) * torch.log(1.0 - p)).mean()

    def per_sample(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            return _sample_means(F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none"))
        p = y_pred.clamp(EPSILON, 1.0 - EPSILON)
        return _sample_means(-(y_true * torch.log(p) + (1.0 - y_true) * torch.log(1.0 - p)))

    def check_target(self, y_true: Tensor, num_outputs: int) -> None:
        """Targets must lie in [0, 1], one column per output ((N,) fits one output)."""
        _check_finite(self.name, y_true)
        if y_true.numel() == 0:
            return
        low, high = float(y_true.min().item()), float(y_true.max().item())
        width = _width(y_true)
        if low < 0 or high > 1:
            hint = "Scale them to [0, 1], or use a regression loss such as 'mse'."
            if _is_integral(y_true) and width == 1 and low >= 0:
                hint = (
                    f"They look like class labels 0..{high:g}: use loss='sparse_categorical_crossentropy' "
                    f"with a Dense({int(high) + 1}, activation='softmax') output."
                )
            raise InputError(
                f"{self.name}: targets must be probabilities in [0, 1], but they range from {low:g} to "
                f"{high:g}. {hint}"
            )
        if width != num_outputs:
            hint = f"Make the last layer Dense({width}, activation='sigmoid')."
            if width == 1 and num_outputs == 2:
                hint = (
                    "For two classes use either Dense(1, activation='sigmoid') with binary_crossentropy, "
                    "or keep Dense(2, activation='softmax') with loss='sparse_categorical_crossentropy'."
                )
            raise InputError(
                f"{self.name}: the targets have {width} column(s) (shape {tuple(y_true.shape)}) but the "
                f"model has {num_outputs} output(s); binary cross-entropy needs one 0/1 target per output. "
                f"{hint}"
            )


@dataclass(frozen=True, kw_only=True)
class CategoricalCrossentropy(_CrossEntropy):
    """Mean over samples of -sum_c y_c log p_c, for one-hot or soft targets (N, C).

    From probabilities, each row is renormalized and clamped to [EPSILON,
    1 - EPSILON] as in Keras; with ``from_logits=True`` it is ``F.cross_entropy``
    with probability targets. Label smoothing ``ls`` uses y * (1 - ls) + ls / C.
    """

    name: str = field(default="categorical_crossentropy", init=False)
    fusable_activation: str | None = field(default="softmax", init=False)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        if self.from_logits:
            return F.cross_entropy(
                _classes_second(y_pred), _classes_second(y_true), label_smoothing=self.label_smoothing
            )
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        return -(y_true * _log_probabilities(y_pred)).sum(-1).mean()

    def per_sample(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        y_pred, y_true = _float_pair(self.name, y_pred, y_true)
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        log_p = F.log_softmax(y_pred, -1) if self.from_logits else _log_probabilities(y_pred)
        return _sample_means(-(y_true * log_p).sum(-1))

    def check_target(self, y_true: Tensor, num_outputs: int) -> None:
        """Targets must be (N, num_outputs) one-hot or soft labels in [0, 1]."""
        _check_finite(self.name, y_true)
        if y_true.ndim < 2 or (y_true.shape[-1] == 1 and num_outputs > 1):
            found = _label_range(y_true)
            raise InputError(
                f"{self.name}: the targets have shape {tuple(y_true.shape)}, one value per sample{found}, "
                f"but categorical cross-entropy wants one-hot rows of width {num_outputs}. Use "
                "loss='sparse_categorical_crossentropy' for integer class labels, or one-hot encode them "
                "(torch.nn.functional.one_hot)."
            )
        if y_true.shape[-1] != num_outputs:
            raise InputError(
                f"{self.name}: the one-hot targets have {y_true.shape[-1]} columns but the model has "
                f"{num_outputs} outputs; each column is one class. Make the last layer "
                f"Dense({y_true.shape[-1]}, activation='softmax')."
            )
        low, high = float(y_true.min().item()), float(y_true.max().item())
        if low < 0 or high > 1:
            raise InputError(
                f"{self.name}: targets must be one-hot or class probabilities in [0, 1], but they range "
                f"from {low:g} to {high:g}."
            )


@dataclass(frozen=True, kw_only=True)
class SparseCategoricalCrossentropy(_CrossEntropy):
    """Mean of -log p[y] for integer class labels y in [0, C), shape (N,) or (N, 1).

    The same value as `categorical_crossentropy` on the one-hot labels, without
    building them. From probabilities, rows are renormalized and clamped as in
    Keras; with ``from_logits=True`` it is ``F.cross_entropy``. Label smoothing
    ``ls`` acts on the one-hot labels: y * (1 - ls) + ls / C.
    """

    name: str = field(default="sparse_categorical_crossentropy", init=False)
    fusable_activation: str | None = field(default="softmax", init=False)
    target_dtype: torch.dtype = field(default=torch.long, init=False)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if _probability_rows(y_pred, y_true):  # soft targets from a batch transform (mixup)
            return CategoricalCrossentropy(from_logits=self.from_logits,
                                           label_smoothing=self.label_smoothing)(y_pred, y_true)
        labels = _labels(self.name, y_pred, y_true)
        if self.from_logits:
            return F.cross_entropy(_classes_second(y_pred), labels, label_smoothing=self.label_smoothing)
        log_p = _log_probabilities(y_pred)
        nll = F.nll_loss(_classes_second(log_p), labels)
        if not self.label_smoothing:
            return nll
        # -sum_c [(1 - ls) onehot_c + ls / C] log p_c = (1 - ls) nll - ls * mean_c log p_c
        return (1.0 - self.label_smoothing) * nll - self.label_smoothing * log_p.mean(-1).mean()

    def per_sample(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if _probability_rows(y_pred, y_true):
            return CategoricalCrossentropy(from_logits=self.from_logits,
                                           label_smoothing=self.label_smoothing).per_sample(y_pred, y_true)
        labels = _labels(self.name, y_pred, y_true)
        if self.from_logits and not self.label_smoothing and y_pred.dim() == 2:
            return F.cross_entropy(y_pred, labels, reduction="none")  # -log_softmax at the label, in one call
        log_p = F.log_softmax(y_pred, -1) if self.from_logits else _log_probabilities(y_pred)
        nll = -log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        if not self.label_smoothing:
            return _sample_means(nll)
        terms = (1.0 - self.label_smoothing) * nll - self.label_smoothing * log_p.mean(-1)
        return _sample_means(terms)

    def member_terms(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if (self.from_logits and not self.label_smoothing and y_pred.dim() == 3 and not y_true.is_floating_point()
                and y_true.shape == y_pred.shape[:2]):
            # Classes on axis 1 of the (m, C, n) view: no copy of a transposed batch, one call.
            return F.cross_entropy(y_pred.transpose(1, 2), y_true.long(), reduction="none")
        return super().member_terms(y_pred, y_true)

    def check_target(self, y_true: Tensor, num_outputs: int) -> None:
        """Targets must be integer labels in [0, num_outputs), one per sample."""
        _check_finite(self.name, y_true)
        if y_true.ndim >= 2 and y_true.shape[-1] != 1:
            if _looks_one_hot(y_true):
                raise InputError(
                    f"{self.name}: the targets have shape {tuple(y_true.shape)} and look one-hot, but "
                    "sparse categorical cross-entropy wants one integer class label per sample. Use "
                    "loss='categorical_crossentropy' for one-hot targets, or pass y.argmax(-1)."
                )
            raise InputError(
                f"{self.name}: the targets have shape {tuple(y_true.shape)}, but sparse categorical "
                "cross-entropy wants one integer class label per sample, shape (N,) or (N, 1)."
            )
        if y_true.numel() == 0:
            return
        if not _is_integral(y_true):
            raise InputError(
                f"{self.name}: class labels must be whole numbers, but the targets hold non-integer "
                f"values{_label_range(y_true)}. For continuous targets use a regression loss such as "
                "'mse'; for class probabilities use 'categorical_crossentropy'."
            )
        low, high = int(y_true.min().item()), int(y_true.max().item())
        if 0 <= low and high < num_outputs:
            return
        if low < 0:
            hint = "Labels must start at 0: remap them, e.g. with sklearn.preprocessing.LabelEncoder."
        elif num_outputs == 1 and high == 1:
            hint = (
                "For two classes use Dense(2, activation='softmax'), or keep Dense(1, activation='sigmoid') "
                "with loss='binary_crossentropy'."
            )
        else:
            hint = (
                f"Make the last layer Dense({high + 1}, activation='softmax') (one output per class), "
                "or remap the labels to 0..num_classes-1."
            )
        raise InputError(
            f"{self.name}: class labels must be in [0, {num_outputs}) for a model with {num_outputs} "
            f"output(s), but they range from {low} to {high}. {hint}"
        )


# --------------------------------------------------------------------------- user callables


@dataclass(frozen=True, kw_only=True)
class CustomLoss(Loss):
    """A user's ``fn(y_pred, y_true) -> Tensor`` (or a ``torch.nn`` loss module) used as a loss.

    (N,) targets are reshaped to (N, 1) against (N, 1) predictions, as for the
    built-in losses, so ``torch.nn.MSELoss()`` does not silently broadcast to
    (N, N). The function must return the batch mean, a 0-d tensor.

    Example:
        >>> import torch
        >>> def squared_log_error(y_pred, y_true):
        ...     return ((y_pred.log1p() - y_true.log1p()) ** 2).mean()
        >>> custom = loss(squared_log_error)
        >>> custom.name, custom(torch.tensor([[0.0]]), torch.tensor([0.0])).item()
        ('squared_log_error', 0.0)
    """

    fn: Callable[[Tensor, Tensor], Tensor]
    name: str = "custom"
    target_dtype: torch.dtype = torch.float32
    sample_mean: bool = field(default=False, init=False)

    def __call__(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true.unsqueeze(-1)
        elif (y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] > 1 and y_true.is_floating_point()
              and self.target_dtype == torch.float32):
            # One target per row against several outputs can only be class labels: a function
            # written for PyTorch (F.cross_entropy) takes them as int64, as they came in.
            y_true = y_true.long()
        value = self.fn(y_pred, y_true)
        if not isinstance(value, Tensor) or value.ndim != 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InputError(
                f"loss '{self.name}' must return the batch mean as a 0-d tensor, got {shape}. "
                "Reduce it with .mean() (for a torch.nn loss, keep reduction='mean')."
            )
        return value

    def per_sample(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        """The function on each sample alone (torch.func.vmap over the batch)."""
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true.unsqueeze(-1)
        one = lambda p, t: self.fn(p.unsqueeze(0), t.unsqueeze(0))  # noqa: E731
        return torch.func.vmap(one)(y_pred, y_true)

    def check_target(self, y_true: Tensor, num_outputs: int) -> None:
        """Only finiteness can be checked: a custom loss defines its own target format."""
        _check_finite(self.name, y_true)


# --------------------------------------------------------------------------- registry


@LOSSES.register(
    "mse",
    claim="Its minimizing constant is the targets' mean, and errors weigh quadratically, "
    "so it fits the conditional mean and is sensitive to outliers.",
)
def mse() -> Loss:
    """Mean squared error, the default regression loss: mean((y_pred - y_true)^2)."""
    return MeanSquaredError()


LOSSES.register("mean_squared_error", summary="Keras's long name for mse.",
                claim=LOSSES.entry("mse").claim)(mse)


@LOSSES.register(
    "rmse",
    claim="It has the same minimizer as mse but is in the targets' units (sqrt of the batch MSE).",
)
def rmse() -> Loss:
    """Root mean squared error: sqrt of the batch MSE, in the targets' units."""
    return RootMeanSquaredError()


@LOSSES.register(
    "mae",
    claim="Its minimizing constant is the targets' median and every error pulls with the same "
    "force, so it is robust to outliers.",
)
def mae() -> Loss:
    """Mean absolute error: mean(|y_pred - y_true|), robust to outliers."""
    return MeanAbsoluteError()


LOSSES.register("mean_absolute_error", summary="Keras's long name for mae.",
                claim=LOSSES.entry("mae").claim)(mae)


@LOSSES.register(
    "huber",
    claim="Quadratic for errors up to delta and linear beyond, so an outlier's gradient is bounded "
    "by delta while small errors behave like mse.",
)
def huber(*, delta: float = 1.0) -> Loss:
    """Huber loss: like mse for small errors, like mae (bounded gradient) beyond `delta`.

    Example:
        >>> import torch
        >>> round(huber(delta=1.0)(torch.tensor([0.5, 3.0]), torch.zeros(2)).item(), 4)
        1.3125
    """
    return Huber(delta=delta)


@LOSSES.register(
    "binary_crossentropy",
    claim="It is the negative log-likelihood of 0/1 targets under Bernoulli outputs; on logits it "
    "stays finite for any logit value.",
)
def binary_crossentropy(*, from_logits: bool = False, label_smoothing: float = 0.0) -> Loss:
    """Binary cross-entropy for 0/1 targets and sigmoid outputs (one per label).

    Example:
        >>> import torch
        >>> bce = binary_crossentropy(from_logits=True)
        >>> bool(torch.isfinite(bce(torch.tensor([1e4, -1e4]), torch.tensor([0.0, 1.0]))))
        True
    """
    return BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing)


@LOSSES.register(
    "categorical_crossentropy",
    claim="It is the negative log-likelihood of one-hot (or soft) targets under softmax outputs; "
    "with label smoothing its minimum is at the smoothed distribution, not at certainty.",
)
def categorical_crossentropy(*, from_logits: bool = False, label_smoothing: float = 0.0) -> Loss:
    """Categorical cross-entropy for one-hot or soft targets of shape (N, C)."""
    return CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing)


@LOSSES.register(
    "sparse_categorical_crossentropy",
    claim="It equals categorical_crossentropy on the one-hot labels without building them.",
)
def sparse_categorical_crossentropy(*, from_logits: bool = False, label_smoothing: float = 0.0) -> Loss:
    """Categorical cross-entropy for integer class labels (N,) in [0, C)."""
    return SparseCategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing)


@LOSSES.register(
    "kl_divergence",
    claim="It is zero exactly when the predicted distribution equals the target one, and positive "
    "otherwise (cross-entropy minus the targets' entropy).",
)
def kl_divergence() -> Loss:
    """Kullback-Leibler divergence KL(y_true || y_pred) between distributions over the last axis."""
    return KLDivergence()


def loss(spec: LossSpec, *, source: str | None = None) -> Loss:
    """Build a loss from a name, a ``{"name": ..., **settings}`` table, a Loss, or a callable.

    A callable ``fn(y_pred, y_true) -> Tensor`` (PyTorch's argument order) or a
    ``torch.nn`` loss module is wrapped in a `CustomLoss` named after it;
    ``torch.nn.CrossEntropyLoss`` and ``torch.nn.NLLLoss`` get ``torch.long``
    targets. `source` names where the spec came from, for error messages.

    Example:
        >>> loss({"name": "categorical_crossentropy", "label_smoothing": 0.1}).label_smoothing
        0.1
        >>> loss("mean_squared_error").name
        'mse'
        >>> loss("cross_entropy")
        Traceback (most recent call last):
        ...
        trainlab.errors.InputError: unknown loss 'cross_entropy'. Known: ...
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, (str, Mapping)):
        built = LOSSES.build(spec, source=source)
        if not isinstance(built, Loss):  # a factory registered by someone else returned something odd
            raise TypeError(f"loss factory for {spec!r} returned {type(built).__name__}, not a Loss")
        return built
    if callable(spec):
        long_targets = isinstance(spec, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss))
        return CustomLoss(
            fn=spec, name=_callable_name(spec), target_dtype=torch.long if long_targets else torch.float32
        )
    where = f" (from {source})" if source else ""
    raise InputTypeError(
        f"a loss{where} must be a name, a table with a 'name' key, a Loss, or a function "
        f"(y_pred, y_true) -> Tensor; got {type(spec).__name__} {spec!r}"
    )


# --------------------------------------------------------------------------- helpers


def _callable_name(fn: Any) -> str:
    if isinstance(fn, torch.nn.Module):
        return type(fn).__name__
    name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", None)
    return "custom" if not name or name == "<lambda>" else str(name)


def _float_pair(name: str, y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
    """Targets shaped and typed like the predictions; (N,) against (N, 1) is accepted as Keras does."""
    if y_true.shape != y_pred.shape:
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true.unsqueeze(-1)
        if y_true.shape != y_pred.shape:
            raise InputError(
                f"{name}: predictions have shape {tuple(y_pred.shape)} but targets {tuple(y_true.shape)}; "
                "they must match (a (N,) target is accepted for a (N, 1) prediction). Check the last "
                "layer's size against the number of target columns."
            )
    if y_true.dtype != y_pred.dtype:
        if y_true.is_floating_point():
            common = torch.promote_types(y_pred.dtype, y_true.dtype)
            return y_pred.to(common), y_true.to(common)
        y_true = y_true.to(y_pred.dtype)
    return y_pred, y_true


def _labels(name: str, y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Integer labels shaped like y_pred without its class axis; (N, 1) is accepted."""
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_true.shape != y_pred.shape[:-1]:
        raise InputError(
            f"{name}: predictions have shape {tuple(y_pred.shape)} (samples, classes) but the labels "
            f"{tuple(y_true.shape)}; give one integer label per sample. For one-hot targets use "
            "'categorical_crossentropy'."
        )
    return y_true if y_true.dtype == torch.long else y_true.long()


def _classes_second(t: Tensor) -> Tensor:
    """Move the class axis from last (Keras layout) to 1 (PyTorch's loss layout) for >2-D tensors."""
    return t if t.ndim <= 2 else t.movedim(-1, 1)


def _log_probabilities(y_pred: Tensor) -> Tensor:
    """log of the rows renormalized to sum 1 and clamped to [EPSILON, 1 - EPSILON], as Keras does."""
    p = y_pred / y_pred.sum(-1, keepdim=True)
    return torch.log(p.clamp(EPSILON, 1.0 - EPSILON))


def _sample_means(terms: Tensor) -> Tensor:
    """(N, ...) per-entry terms -> (N,) per-sample means (Keras averages a sample's last axes)."""
    return terms.reshape(terms.shape[0], -1).mean(-1) if terms.dim() > 1 else terms


def _probability_rows(y_pred: Tensor, y_true: Tensor) -> bool:
    """Whether sparse-label targets came as float probability rows (N, C), as mixup makes them."""
    if not (y_true.is_floating_point() and y_true.dim() == y_pred.dim() and y_pred.shape[-1] > 1
            and y_true.shape == y_pred.shape):
        return False
    return bool(torch.allclose(y_true.sum(-1), torch.ones((), dtype=y_true.dtype, device=y_true.device),
                               atol=1e-4))


def _width(y: Tensor) -> int:
    return 1 if y.ndim <= 1 else int(y.shape[-1])


def _check_finite(name: str, y: Tensor) -> None:
    if not check.all_finite(y):
        bad = int((~torch.isfinite(y)).sum().item())
        raise InputError(
            f"{name}: the targets contain {bad} NaN or infinite value(s). Drop or impute those rows "
            "before training."
        )


def _is_integral(y: Tensor) -> bool:
    if not y.is_floating_point():
        return True
    return bool((y == y.round()).all()) if y.numel() else True


def _looks_one_hot(y: Tensor) -> bool:
    if y.ndim < 2 or y.numel() == 0:
        return False
    yf = y.float()
    binary = bool(((yf == 0) | (yf == 1)).all())
    return binary and bool((yf.sum(-1) == 1).all())


def _label_range(y: Tensor) -> str:
    if y.numel() == 0:
        return ""
    return f" (from {float(y.min().item()):g} to {float(y.max().item()):g})"
