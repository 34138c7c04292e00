"""Metrics: what a run reports each epoch, by name (``"accuracy"``, ``"f1"``, ``"auc"``, ``"r2"``, ...).

A `Metric` accumulates over an epoch and reports one exact value for all of it:

- ``reset()`` at the start of an epoch (or of an evaluation);
- ``update(y_pred, y_true, *, from_logits=False)`` once per batch, in the
  training hot loop: a couple of tensor ops that accumulate on the device of
  the inputs, never ``.item()`` / ``.cpu()`` (each would wait for the GPU);
- ``compute()`` once at the end: one device sync. The value is exact over
  everything seen since ``reset()`` (F1 from the summed confusion counts, AUC
  from all the scores), never an average of per-batch values, which would be
  wrong for unequal batches and for every ratio metric.

``from_logits=True`` says ``y_pred`` is pre-activation (the engine fused the
final softmax/sigmoid into the loss): binary predictions are thresholded at
logit(threshold) (0 for 0.5) instead of `threshold`, argmax is unchanged, and
multi-class AUC applies the softmax first.

Shapes follow Keras: predictions are (N, C) class scores or (N, 1) / (N,) for a
single (binary or regression) output; targets are integer labels (N,) or
(N, 1), one-hot rows (N, C), or 0/1 values for a single output. A single output
column means a binary problem (threshold); several columns mean classes (argmax).

`metric("accuracy", loss=..., num_outputs=...)` resolves ``"accuracy"`` as
Keras does, and the history key stays ``"accuracy"``.

Example:
    >>> import torch
    >>> f1 = metric("f1", num_outputs=1)
    >>> f1.update(torch.tensor([0.9, 0.2, 0.7]), torch.tensor([1.0, 0.0, 0.0]))
    >>> f1.update(torch.tensor([0.1]), torch.tensor([1.0]))
    >>> round(f1.compute(), 4)  # tp=1, fp=1, fn=1
    0.5
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from trainlab import check
from trainlab.errors import InputError, InputTypeError
from trainlab.registry import Registry

if TYPE_CHECKING:
    from trainlab.losses import Loss

__all__ = [
    "AVERAGES",
    "METRICS",
    "AUC",
    "Accuracy",
    "ExpectedCalibrationError",
    "LogLoss",
    "ConfusionMatrix",
    "MeanMetric",
    "Metric",
    "PrecisionRecallF1",
    "RegressionMetric",
    "TopKAccuracy",
    "metric",
]

#: The ways to average precision / recall / F1 over classes, as in scikit-learn.
AVERAGES = ("binary", "macro", "micro", "weighted")

#: What `compute()` returns: a float, or a list of lists for `confusion_matrix` (``scalar = False``).
MetricValue = float | list[list[int]]


class Metric(ABC):
    """Base of every metric: accumulate with `update`, report with `compute`.

    Attributes:
        name: the history key (``"accuracy"``, ``"f1"``, ...).
        scalar: False when `compute` returns something other than a float (the
            confusion matrix); the engine keeps those out of per-epoch history.
    """

    name: str = "metric"
    scalar: bool = True
    #: Capability: its value over an epoch is the same whether fed batch by batch or all at once.
    sums_over_batches: bool = False

    @abstractmethod
    def reset(self) -> None:
        """Forget everything seen; start a new epoch or evaluation."""

    @abstractmethod
    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        """Accumulate one batch on its device, without syncing."""

    @classmethod
    def update_members(cls, metrics: Sequence[Metric], y_pred: Tensor, y_true: Tensor, sizes: Sequence[int], *,
                       from_logits: bool = False) -> bool:
        """``metrics[k].update(y_pred[k, :sizes[k]], y_true[k, :sizes[k]])`` for every k, in one pass.

        For the batches of several stacked members side by side, (k, n, ...) each. Returns
        False, having updated nothing, where this kind of metric has no such pass or the
        metrics differ in their settings: the caller then updates each metric alone.
        """
        return False

    @abstractmethod
    def compute(self) -> MetricValue:
        """The value over every batch since `reset` (one device sync); NaN before any update."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# --------------------------------------------------------------------------- accuracy


class Accuracy(Metric):
    """Fraction of correct predictions over every sample since `reset`.

    `kind` picks how a prediction is compared with its target:

    - ``"binary"``: each output thresholded (``y_pred > threshold``) against 0/1
      targets, element by element (so multi-label outputs work, as in Keras);
    - ``"categorical"``: argmax of the scores against argmax of one-hot targets;
    - ``"sparse"``: argmax of the scores against integer labels;
    - ``"auto"``: chosen per batch from the shapes, by Keras's rule: one output
      column -> binary; targets with one column fewer, or a single column ->
      sparse; otherwise categorical.

    Example:
        >>> import torch
        >>> acc = Accuracy(kind="sparse")
        >>> acc.update(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
        >>> acc.compute()
        0.5
    """

    sums_over_batches = True

    KINDS = ("auto", "binary", "categorical", "sparse")

    def __init__(self, *, name: str = "accuracy", kind: str = "auto", threshold: float = 0.5) -> None:
        self.name = name
        self.kind = check.choice(f"{name}: kind", kind, self.KINDS)
        self.threshold = _threshold(name, threshold)
        self._logit_threshold = _logit(self.threshold)
        self.reset()

    def reset(self) -> None:
        self._correct: Tensor | None = None
        self._count = 0

    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        hits = self._hits(y_pred.detach(), y_true, from_logits)
        self._add(hits.sum(), hits.numel())

    @classmethod
    def update_members(cls, metrics: Sequence[Metric], y_pred: Tensor, y_true: Tensor, sizes: Sequence[int], *,
                       from_logits: bool = False) -> bool:
        same = [m for m in metrics if type(m) is type(metrics[0]) and isinstance(m, Accuracy)]
        first = same[0] if same else None
        if (y_pred.dim() < 3 or first is None or len(same) != len(metrics)
                or not all(m.kind == first.kind and m.threshold == first.threshold for m in same)):
            return False  # (k, n) predictions would read as n output columns: each member alone instead
        k, n = y_pred.shape[:2]
        hits = first._hits(y_pred.detach(), y_true, from_logits).reshape(k, n, -1)
        if any(size != n for size in sizes):
            kept = torch.arange(n, device=hits.device) < torch.tensor(sizes, device=hits.device).unsqueeze(1)
            hits = hits & kept.unsqueeze(-1)
        correct = hits.flatten(1).sum(1)
        for metric, size, value in zip(same, sizes, correct.unbind()):
            if size > 0:
                metric._add(value, size * hits.shape[-1])
        return True

    def _add(self, correct: Tensor, count: int) -> None:
        self._correct = correct if self._correct is None else self._correct + correct
        self._count += count

    def _hits(self, y_pred: Tensor, y_true: Tensor, from_logits: bool) -> Tensor:
        """Whether each prediction is right (a bool per sample, or per output for binary outputs)."""
        kind = self.kind
        if kind == "auto":
            kind = _keras_accuracy_kind(y_pred, y_true)
        if kind == "binary":
            y_true = _like(self.name, y_pred, y_true)
            threshold = self._logit_threshold if from_logits else self.threshold
            hits = (y_pred > threshold) == (y_true > 0.5)
        elif kind == "categorical":
            y_true = _like(self.name, y_pred, y_true)
            hits = y_pred.argmax(-1) == y_true.argmax(-1)
        else:
            if y_true.is_floating_point() and y_true.shape == y_pred.shape and _columns(y_pred) > 1:
                # Soft targets (mixup, cutmix): scored against the dominant label.
                y_true = y_true.argmax(-1)
            hits = y_pred.argmax(-1) == _sparse_labels(self.name, y_pred, y_true)
        return hits

    def compute(self) -> float:
        if self._correct is None or self._count == 0:
            return math.nan
        return float(self._correct.item()) / self._count


class TopKAccuracy(Metric):
    """Fraction of samples whose true class is among the `k` highest scores.

    Targets are integer labels or one-hot rows. With ``k >= C`` every sample
    counts as correct (scikit-learn warns about the same; so do we, once).

    Example:
        >>> import torch
        >>> top2 = TopKAccuracy(k=2)
        >>> top2.update(torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]]), torch.tensor([2, 1]))
        >>> top2.compute()
        0.5
    """

    sums_over_batches = True

    name = "top_k_accuracy"

    def __init__(self, *, k: int = 5) -> None:
        self.k = check.int_at_least(
            "top_k_accuracy: k", k, 1, hint="k is how many of the highest-scored classes may hold the label."
        )
        self._warned = False
        self.reset()

    def reset(self) -> None:
        self._correct: Tensor | None = None
        self._count = 0

    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        y_pred = y_pred.detach()
        classes = _columns(y_pred)
        if classes < 2:
            raise InputError(
                f"top_k_accuracy needs one score per class (at least 2 output columns), got predictions "
                f"of shape {tuple(y_pred.shape)}. For a single output use 'binary_accuracy'."
            )
        if self.k >= classes and not self._warned:
            self._warned = True
            warnings.warn(
                f"top_k_accuracy: k={self.k} is >= the number of classes ({classes}), so every sample "
                "counts as correct and the score is always 1.0; choose a smaller k.",
                UserWarning,
                stacklevel=2,
            )
        labels = _class_labels(self.name, y_pred, y_true, classes)
        top = y_pred.reshape(-1, classes).topk(min(self.k, classes), dim=-1).indices
        hits = (top == labels.unsqueeze(-1)).any(-1)
        correct = hits.sum()
        self._correct = correct if self._correct is None else self._correct + correct
        self._count += hits.numel()

    def compute(self) -> float:
        if self._correct is None or self._count == 0:
            return math.nan
        return float(self._correct.item()) / self._count


# --------------------------------------------------------------------------- confusion counts


class _ConfusionCounts(Metric):
    """Accumulates a C x C confusion matrix (rows: true class, columns: predicted) on the device.

    One output column is a binary problem (C = 2, predicted class 1 when
    ``y_pred > threshold``); C columns are C classes (argmax).
    """

    sums_over_batches = True

    def __init__(self, *, name: str, threshold: float = 0.5) -> None:
        self.name = name
        self.threshold = _threshold(name, threshold)
        self._logit_threshold = _logit(self.threshold)
        self.reset()

    def reset(self) -> None:
        self._counts: Tensor | None = None
        self._num_classes = 0

    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        y_pred = y_pred.detach()
        columns = _columns(y_pred)
        threshold = self._logit_threshold if from_logits else self.threshold
        predicted = _predicted_classes(y_pred, columns, threshold)
        labels = _class_labels(self.name, y_pred, y_true, columns)
        n = max(columns, 2)
        if self._counts is None:
            self._counts = torch.zeros(n * n, dtype=torch.long, device=predicted.device)
            self._num_classes = n
        elif n != self._num_classes:
            raise InputError(
                f"{self.name}: predictions changed from {self._num_classes} to {n} classes between "
                "batches; call reset() before scoring a different model."
            )
        # index_add_ rather than torch.bincount: bincount reads the max label back to the host
        # to size its output, a device sync in the hot loop.
        self._counts.index_add_(0, labels * n + predicted, torch.ones_like(predicted))

    def _matrix(self) -> np.ndarray | None:
        if self._counts is None:
            return None
        n = self._num_classes
        return np.asarray(self._counts.tolist(), dtype=np.int64).reshape(n, n)


class PrecisionRecallF1(_ConfusionCounts):
    """Precision, recall or F1 from the confusion counts accumulated since `reset`.

    ``average`` follows scikit-learn (``precision_score`` & co., with
    ``zero_division=0``):

    - ``"binary"`` (the default, as in scikit-learn): the score of the positive
      class 1. It needs a binary problem: one output (thresholded) or two classes.
      With more classes it is an error, as in scikit-learn, because no single
      class is "the positive one"; choose one of the averages below.
    - ``"macro"``: the unweighted mean over classes (each class counts the same);
    - ``"weighted"``: the mean over classes weighted by their number of true samples;
    - ``"micro"``: from the summed counts (each sample counts the same; for
      single-label multi-class data all three equal accuracy).

    As in scikit-learn, the class averages are over the classes that occur among
    the targets or the predictions; a ratio with a zero denominator counts as 0.
    """

    def __init__(self, *, kind: str, average: str = "binary", threshold: float = 0.5,
                 num_outputs: int | None = None) -> None:
        kind = check.choice("PrecisionRecallF1: kind", kind, ("precision", "recall", "f1"))
        self.average = check.choice(
            f"{kind}: average", average, AVERAGES,
            hint="'binary' scores class 1 of a two-class problem; the others average over classes.",
        )
        if self.average == "binary" and num_outputs is not None and num_outputs > 2:
            raise _binary_average_error(kind, num_outputs)
        super().__init__(name=kind, threshold=threshold)

    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        if self.average == "binary" and _columns(y_pred) > 2:
            raise _binary_average_error(self.name, _columns(y_pred))
        super().update(y_pred, y_true, from_logits=from_logits)

    def compute(self) -> float:
        cm = self._matrix()
        if cm is None:
            return math.nan
        true_positives = np.diag(cm).astype(np.float64)
        predicted = cm.sum(0).astype(np.float64)  # tp + fp per class
        actual = cm.sum(1).astype(np.float64)  # tp + fn per class
        if self.average == "binary":
            return float(_ratio(self.name, true_positives[1:], predicted[1:], actual[1:])[0])
        present = (predicted + actual) > 0
        if self.average == "micro":
            return float(_ratio(self.name, true_positives[present].sum(keepdims=True),
                                predicted[present].sum(keepdims=True), actual[present].sum(keepdims=True))[0])
        per_class = _ratio(self.name, true_positives, predicted, actual)[present]
        if self.average == "macro":
            return float(per_class.mean()) if per_class.size else 0.0
        weights = actual[present]
        return float((per_class * weights).sum() / weights.sum()) if weights.sum() > 0 else 0.0


class ConfusionMatrix(_ConfusionCounts):
    """The C x C confusion matrix: entry [i][j] counts samples of true class i predicted as j.

    `compute` returns a list of lists of ints (``[]`` before any update), not a
    float, so ``scalar`` is False and the engine keeps it out of the per-epoch
    history. All classes 0..C-1 appear, as in scikit-learn's
    ``confusion_matrix(..., labels=range(C))``; a single output column gives 2 x 2.
    """

    scalar = False

    def __init__(self, *, threshold: float = 0.5) -> None:
        super().__init__(name="confusion_matrix", threshold=threshold)

    def compute(self) -> list[list[int]]:
        cm = self._matrix()
        return [] if cm is None else cm.tolist()


# --------------------------------------------------------------------------- ROC AUC


class AUC(Metric):
    """Area under the ROC curve over every score since `reset` (ties count one half).

    Binary (one output column): the scores as they are, logits or probabilities
    (the sigmoid keeps their order), against 0/1 targets. Several columns:
    one-vs-rest, macro-averaged, like scikit-learn's
    ``roc_auc_score(multi_class="ovr")``; logits are softmaxed first, since a
    class's rank among samples depends on the other classes' scores too.
    Classes that have no positive or no negative sample are left out of the
    average, and the result is NaN when no class can be scored (scikit-learn
    raises instead; a metric should not stop training).

    The scores are kept on the device until `compute` (N floats per column).
    """

    sums_over_batches = True

    name = "auc"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._scores: list[Tensor] = []
        self._labels: list[Tensor] = []

    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        y_pred = y_pred.detach()
        columns = _columns(y_pred)
        scores = y_pred.reshape(-1, columns)
        if columns > 1 and from_logits:
            scores = scores.softmax(-1)
        self._scores.append(scores)
        self._labels.append(_class_labels(self.name, y_pred, y_true, columns))

    def compute(self) -> float:
        if not self._scores:
            return math.nan
        scores = torch.cat(self._scores)
        labels = torch.cat(self._labels).to(scores.dtype).unsqueeze(-1)
        both = torch.cat([scores.double(), labels.double()], dim=-1).cpu().numpy()  # the one sync
        scores_np, labels_np = both[:, :-1], both[:, -1].astype(np.int64)
        columns = scores_np.shape[1]
        if columns == 1:
            positive = (labels_np == 1)[:, None]
        else:
            positive = labels_np[:, None] == np.arange(columns)[None, :]
        return _ovr_auc(scores_np, positive)


# --------------------------------------------------------------------------- regression


class RegressionMetric(Metric):
    """Mean squared / absolute error, RMSE or R^2 over every sample since `reset`.

    Sums are kept per output column in float64 on the device. With several
    outputs, ``mse`` and ``mae`` are the mean over every entry (equal to
    scikit-learn's uniform average), ``rmse`` is the square root of that (as in
    Keras; scikit-learn's ``root_mean_squared_error`` averages per-column RMSEs
    instead), and ``r2`` is the uniform average of per-column R^2 (as in
    scikit-learn, with a constant column scoring 1 if predicted exactly, else 0).

    Example:
        >>> import torch
        >>> r2 = RegressionMetric(kind="r2")
        >>> r2.update(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 2.0]))
        >>> r2.update(torch.tensor([[2.5]]), torch.tensor([3.0]))
        >>> round(r2.compute(), 4)  # 1 - 0.25 / 2
        0.875
    """

    sums_over_batches = True

    KINDS = ("mse", "rmse", "mae", "r2")

    def __init__(self, *, kind: str) -> None:
        self.name = check.choice("RegressionMetric: kind", kind, self.KINDS)
        self.reset()

    def reset(self) -> None:
        self._sums: Tensor | None = None
        self._shift: Tensor | None = None
        self._rows = 0
        self._columns = 0

    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        y_pred = y_pred.detach()
        y_true = _like(self.name, y_pred, y_true)
        columns = _columns(y_pred)
        if self._sums is not None and columns != self._columns:
            raise InputError(
                f"{self.name}: predictions changed from {self._columns} to {columns} columns between "
                "batches; call reset() before scoring a different model."
            )
        error = y_pred.reshape(-1, columns).double() - y_true.reshape(-1, columns).double()
        if self.name == "mae":
            sums = error.abs().sum(0)
        elif self.name == "r2":
            target = y_true.reshape(-1, columns).double()
            if self._shift is None:
                # Sums of (y - shift) instead of y: the total sum of squares is then a small
                # difference of small numbers even when the targets' mean is large.
                self._shift = target.mean(0)
            centered = target - self._shift
            sums = torch.stack([error.square().sum(0), centered.sum(0), centered.square().sum(0)])
        else:
            sums = error.square().sum(0)
        self._sums = sums if self._sums is None else self._sums + sums
        self._rows += error.shape[0]
        self._columns = columns

    def compute(self) -> float:
        if self._sums is None or self._rows == 0:
            return math.nan
        sums = self._sums.cpu().numpy()
        if self.name != "r2":
            mean = float(sums.sum()) / (self._rows * self._columns)
            return math.sqrt(mean) if self.name == "rmse" else mean
        squared_error, target_sum, target_square_sum = sums
        total = target_square_sum - target_sum**2 / self._rows
        safe = np.where(total > 0, total, 1.0)
        score = np.where(total > 0, 1.0 - squared_error / safe, np.where(squared_error == 0, 1.0, 0.0))
        return float(score.mean())


# --------------------------------------------------------------------------- calibration


def _probabilities(y_pred: Tensor, from_logits: bool) -> Tensor:
    """Class probabilities (N, C), or (N,) P(class 1) for a single output."""
    if _columns(y_pred) == 1:
        flat = y_pred.reshape(-1)
        return flat.sigmoid() if from_logits else flat
    probs = y_pred.softmax(-1) if from_logits else y_pred / y_pred.sum(-1, keepdim=True)
    return probs.reshape(-1, y_pred.shape[-1])


class ExpectedCalibrationError(Metric):
    """Expected calibration error: sum over confidence bins of (n_b / N) |accuracy_b - confidence_b|.

    The confidence of a prediction is its top class probability (for a single
    sigmoid output, max(p, 1 - p)); predictions are put in `num_bins`
    equal-width bins ((m - 1) / M, m / M], and ECE is the gap between how often
    each bin is right and how sure it was, weighted by the bin's share. 0 is a
    perfectly calibrated model. Soft targets count by their dominant label.

    Example:
        >>> import torch
        >>> ece = ExpectedCalibrationError(num_bins=10)
        >>> ece.update(torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]]), torch.tensor([0, 1, 1]))
        >>> round(ece.compute(), 4)  # bin 0.9: right 1/2, sure 0.9; bin 0.6: right 1/1, sure 0.6
        0.4

    References:
        Guo et al., "On Calibration of Modern Neural Networks", 2017.
    """

    name = "ece"

    def __init__(self, *, num_bins: int = 15) -> None:
        self.num_bins = check.int_at_least("ece: num_bins", num_bins, 1)
        self.reset()

    def reset(self) -> None:
        self._sums: Tensor | None = None  # (3, num_bins): count, confidence, correct

    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        y_pred = y_pred.detach()
        columns = _columns(y_pred)
        probs = _probabilities(y_pred, from_logits).double()
        if columns == 1:
            predicted = probs > 0.5
            confidence = torch.where(predicted, probs, 1.0 - probs)
            hits = predicted == (_like(self.name, y_pred, y_true).reshape(-1) > 0.5)
        else:
            confidence, predicted_class = probs.max(-1)
            hits = predicted_class == _class_labels(self.name, y_pred, y_true, columns)
        bins = (torch.ceil(confidence * self.num_bins).long() - 1).clamp(0, self.num_bins - 1)
        sums = torch.zeros(3, self.num_bins, dtype=torch.float64, device=probs.device)
        sums[0].index_add_(0, bins, torch.ones_like(confidence))
        sums[1].index_add_(0, bins, confidence)
        sums[2].index_add_(0, bins, hits.double())
        self._sums = sums if self._sums is None else self._sums + sums

    def compute(self) -> float:
        if self._sums is None or float(self._sums[0].sum().item()) == 0:
            return math.nan
        count, confidence, correct = self._sums.cpu()
        return float((correct - confidence).abs().sum() / count.sum())


class LogLoss(Metric):
    """Mean negative log-likelihood of the targets: -log p[y] (scikit-learn's log_loss).

    Unlike the training loss it has no label smoothing, so it measures how well
    the predicted probabilities are calibrated whatever the loss was. Integer
    labels, one-hot or soft rows (-sum_c q_c log p_c), or 0/1 targets for a
    single sigmoid output; probabilities are clamped to [1e-15, 1].

    Example:
        >>> import torch
        >>> nll = LogLoss()
        >>> nll.update(torch.tensor([[0.5, 0.5], [0.25, 0.75]]), torch.tensor([0, 1]))
        >>> round(nll.compute(), 4)  # (log 2 + log 4/3) / 2
        0.4904
    """

    name = "log_loss"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._total: Tensor | None = None
        self._count = 0

    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        y_pred = y_pred.detach()
        columns = _columns(y_pred)
        probs = _probabilities(y_pred, from_logits).double().clamp(1e-15, 1.0)
        if columns == 1:
            target = _like(self.name, y_pred, y_true).reshape(-1).double()
            losses = -(target * probs.log() + (1.0 - target) * (1.0 - probs).clamp(1e-15, 1.0).log())
        elif y_true.is_floating_point() and y_true.shape == y_pred.shape:
            losses = -(y_true.reshape(-1, columns).double() * probs.log()).sum(-1)
        else:
            labels = _class_labels(self.name, y_pred, y_true, columns)
            losses = -probs.log().gather(1, labels.view(-1, 1)).squeeze(1)
        total = losses.sum()
        self._total = total if self._total is None else self._total + total
        self._count += losses.numel()

    def compute(self) -> float:
        if self._total is None or self._count == 0:
            return math.nan
        return float(self._total.item()) / self._count


# --------------------------------------------------------------------------- user callables


class MeanMetric(Metric):
    """A user's ``fn(y_pred, y_true) -> Tensor`` averaged over samples, weighted by batch size.

    `fn` returns the batch mean as a 0-d tensor (PyTorch's argument order:
    prediction first). It always sees probabilities: when the engine passes
    logits (``from_logits=True``), `activation` (the loss's fused activation,
    ``"softmax"`` or ``"sigmoid"``; by default softmax for several columns and
    sigmoid for one) is applied first.

    Example:
        >>> import torch
        >>> def mean_error(y_pred, y_true):
        ...     return (y_pred - y_true).mean()
        >>> m = MeanMetric(fn=mean_error)
        >>> m.update(torch.tensor([1.0, 1.0, 1.0]), torch.zeros(3))
        >>> m.update(torch.tensor([0.0]), torch.zeros(1))
        >>> m.name, m.compute()  # (1 + 1 + 1 + 0) / 4, not the mean of batch means
        ('mean_error', 0.75)
    """

    def __init__(self, *, fn: Callable[[Tensor, Tensor], Tensor], name: str | None = None,
                 activation: str | None = None) -> None:
        self.fn = fn
        self.name = name or _callable_name(fn)
        self.activation = activation
        self.reset()

    def reset(self) -> None:
        self._total: Tensor | None = None
        self._count = 0

    def update(self, y_pred: Tensor, y_true: Tensor, *, from_logits: bool = False) -> None:
        y_pred = y_pred.detach()
        if from_logits:
            activation = self.activation or ("softmax" if _columns(y_pred) > 1 else "sigmoid")
            y_pred = y_pred.softmax(-1) if activation == "softmax" else y_pred.sigmoid()
        value = self.fn(y_pred, y_true)
        if not isinstance(value, Tensor) or value.ndim != 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InputError(
                f"metric '{self.name}' must return the batch mean as a 0-d tensor, got {shape}. "
                "Reduce it with .mean()."
            )
        size = int(y_pred.shape[0]) if y_pred.ndim else 1
        weighted = value.detach().double() * size
        self._total = weighted if self._total is None else self._total + weighted
        self._count += size

    def compute(self) -> float:
        if self._total is None or self._count == 0:
            return math.nan
        return float(self._total.item()) / self._count


# --------------------------------------------------------------------------- registry

METRICS: Registry[Callable[..., Metric]] = Registry("metric")


@METRICS.register(
    "accuracy",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is the fraction of correct predictions, resolved from the loss as Keras does "
    "(binary, categorical or sparse) and exact over the epoch.",
)
def accuracy(*, threshold: float = 0.5, loss: Loss | str | None = None,
             num_outputs: int | None = None) -> Metric:
    """Fraction correct, resolved like Keras's ``"accuracy"`` (history key ``"accuracy"``).

    With sparse_categorical_crossentropy: argmax vs integer label; with
    categorical_crossentropy: argmax vs argmax of the one-hot target; with
    binary_crossentropy or a single output: ``y_pred > threshold``; otherwise
    chosen from the shapes of each batch (Keras's rule).

    Example:
        >>> accuracy(loss="sparse_categorical_crossentropy").kind
        'sparse'
        >>> accuracy(num_outputs=1).kind
        'binary'
    """
    loss_name = _loss_name(loss)
    if loss_name == "sparse_categorical_crossentropy":
        kind = "sparse"
    elif loss_name == "categorical_crossentropy":
        kind = "categorical"
    elif loss_name == "binary_crossentropy" or num_outputs == 1:
        kind = "binary"
    else:
        kind = "auto"
    return Accuracy(name="accuracy", kind=kind, threshold=threshold)


METRICS.register("acc", summary="Keras's short name for accuracy (history key 'accuracy').",
                 claim=METRICS.entry("accuracy").claim)(accuracy)


@METRICS.register(
    "binary_accuracy",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is the fraction of outputs on the right side of the threshold (0/1 targets).",
)
def binary_accuracy(*, threshold: float = 0.5) -> Metric:
    """Fraction of outputs with (y_pred > threshold) equal to the 0/1 target, element by element."""
    return Accuracy(name="binary_accuracy", kind="binary", threshold=threshold)


@METRICS.register(
    "categorical_accuracy",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is the fraction of samples whose highest score is the one-hot target's class.",
)
def categorical_accuracy() -> Metric:
    """Fraction of samples with argmax(y_pred) == argmax(one-hot y_true)."""
    return Accuracy(name="categorical_accuracy", kind="categorical")


@METRICS.register(
    "sparse_categorical_accuracy",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is the fraction of samples whose highest score is the integer label.",
)
def sparse_categorical_accuracy() -> Metric:
    """Fraction of samples with argmax(y_pred) == the integer label."""
    return Accuracy(name="sparse_categorical_accuracy", kind="sparse")


@METRICS.register(
    "top_k_accuracy",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is the fraction of samples whose true class is among the k highest scores; "
    "it never decreases as k grows.",
)
def top_k_accuracy(*, k: int = 5) -> Metric:
    """Fraction of samples whose label is among the `k` highest-scored classes."""
    return TopKAccuracy(k=k)


@METRICS.register(
    "precision",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is tp / (tp + fp) from the epoch's summed counts: of the predicted positives, "
    "the fraction that are positive.",
)
def precision(*, average: str = "binary", threshold: float = 0.5, num_outputs: int | None = None) -> Metric:
    """Precision tp / (tp + fp); see `PrecisionRecallF1` for `average` (default 'binary', as in sklearn)."""
    return PrecisionRecallF1(kind="precision", average=average, threshold=threshold, num_outputs=num_outputs)


@METRICS.register(
    "recall",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is tp / (tp + fn) from the epoch's summed counts: of the positives, the fraction found.",
)
def recall(*, average: str = "binary", threshold: float = 0.5, num_outputs: int | None = None) -> Metric:
    """Recall tp / (tp + fn); see `PrecisionRecallF1` for `average` (default 'binary', as in sklearn)."""
    return PrecisionRecallF1(kind="recall", average=average, threshold=threshold, num_outputs=num_outputs)


@METRICS.register(
    "f1",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is the harmonic mean of precision and recall, 2 tp / (2 tp + fp + fn), "
    "from the epoch's summed counts.",
)
def f1(*, average: str = "binary", threshold: float = 0.5, num_outputs: int | None = None) -> Metric:
    """F1 = 2 tp / (2 tp + fp + fn); see `PrecisionRecallF1` for `average` (default 'binary')."""
    return PrecisionRecallF1(kind="f1", average=average, threshold=threshold, num_outputs=num_outputs)


@METRICS.register(
    "auc",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is the probability that a random positive is scored above a random negative "
    "(ROC AUC; one-vs-rest macro for several classes).",
)
def auc() -> Metric:
    """Area under the ROC curve (binary; one-vs-rest macro average for several classes)."""
    return AUC()


@METRICS.register(
    "confusion_matrix",
    capabilities={"direction": None, "sums_over_batches": True},
    claim="Entry [i][j] counts samples of true class i predicted as class j; the diagonal holds "
    "the correct ones.",
)
def confusion_matrix(*, threshold: float = 0.5) -> Metric:
    """Confusion matrix as a list of lists (not a scalar: kept out of per-epoch history)."""
    return ConfusionMatrix(threshold=threshold)


@METRICS.register("mse", capabilities={"direction": 'min', "sums_over_batches": True}, claim="It is the mean of the squared errors over every output of the epoch.")
def mse() -> Metric:
    """Mean squared error over the epoch."""
    return RegressionMetric(kind="mse")


@METRICS.register("rmse", capabilities={"direction": 'min', "sums_over_batches": True}, claim="It is the square root of the epoch's MSE, in the targets' units.")
def rmse() -> Metric:
    """Root mean squared error over the epoch (sqrt of the MSE over every entry, as in Keras)."""
    return RegressionMetric(kind="rmse")


@METRICS.register("mae", capabilities={"direction": 'min', "sums_over_batches": True}, claim="It is the mean of the absolute errors over every output of the epoch.")
def mae() -> Metric:
    """Mean absolute error over the epoch."""
    return RegressionMetric(kind="mae")


@METRICS.register(
    "r2",
    capabilities={"direction": 'max', "sums_over_batches": True},
    claim="It is 1 - SSE / SST: 1 for a perfect fit, 0 for predicting the targets' mean, "
    "negative when worse than that.",
)
def r2() -> Metric:
    """Coefficient of determination R^2 over the epoch (uniform average over outputs)."""
    return RegressionMetric(kind="r2")


def direction_of(key: str) -> str | None:
    """'min' or 'max' for a log key (``val_`` prefix ignored), or None when it cannot be told.

    Losses, penalties and errors are minimized; a registered metric's direction is the
    ``direction`` capability of its registry entry.

    Example:
        >>> direction_of("val_accuracy"), direction_of("loss"), direction_of("val_mae"), direction_of("speed")
        ('max', 'min', 'min', None)
    """
    base = key.removeprefix("val_")
    if base in ("loss", "penalty") or base.endswith("loss") or base.endswith("error"):
        return "min"
    aliases = {"acc": "accuracy"}
    name = aliases.get(base, base)
    if name in METRICS:
        found = METRICS.entry(name).capabilities.get("direction")
        return str(found) if found is not None else None
    if base.endswith("accuracy"):
        return "max"
    return None


@METRICS.register(
    "ece",
    capabilities={"direction": "min", "sums_over_batches": True},
    claim="It is the accuracy-weighted gap between confidence and accuracy over confidence bins: "
    "0 for a calibrated model, whose 80%-sure predictions are right 80% of the time.",
)
def ece(*, num_bins: int = 15) -> Metric:
    """Expected calibration error over `num_bins` equal-width confidence bins (history key 'ece')."""
    return ExpectedCalibrationError(num_bins=num_bins)


@METRICS.register(
    "log_loss",
    capabilities={"direction": "min", "sums_over_batches": True},
    claim="It is the negative log-likelihood of the true labels: a proper scoring rule, lowest "
    "only for the true probabilities, so it rewards calibration as well as accuracy.",
)
def log_loss() -> Metric:
    """Mean negative log-likelihood of the labels, without label smoothing (scikit-learn's log_loss)."""
    return LogLoss()


METRICS.register("nll", summary="Another name for log_loss (history key 'log_loss').",
                 claim=METRICS.entry("log_loss").claim,
                 capabilities=METRICS.entry("log_loss").capabilities)(log_loss)


def metric(spec: str | Mapping[str, Any] | Metric | Callable[[Tensor, Tensor], Tensor], *,
           loss: Loss | str | None = None, num_outputs: int | None = None,
           source: str | None = None) -> Metric:
    """Build a metric from a name, a ``{"name": ..., **settings}`` table, a Metric, or a callable.

    `loss` and `num_outputs` describe the task: they resolve ``"accuracy"`` (as
    Keras does), reject ``average="binary"`` for more than two classes before
    training starts, and tell a callable which activation the engine fused.
    A callable ``fn(y_pred, y_true) -> Tensor`` becomes a `MeanMetric` named after it.

    Example:
        >>> metric("acc", loss="categorical_crossentropy").name
        'accuracy'
        >>> metric({"name": "top_k_accuracy", "k": 0})
        Traceback (most recent call last):
        ...
        trainlab.errors.InputError: top_k_accuracy: k must be an int >= 1, got 0. k is how many ...
    """
    if num_outputs is not None:
        check.int_at_least("metric: num_outputs", num_outputs, 1)
    if isinstance(spec, (str, Mapping)):
        built = METRICS.build(spec, source=source, loss=loss, num_outputs=num_outputs)
        if not _is_metric(built):  # a factory registered by someone else returned something odd
            raise TypeError(f"metric factory for {spec!r} returned {type(built).__name__}, not a Metric")
        return built  # type: ignore[no-any-return]
    if _is_metric(spec):
        return spec  # type: ignore[return-value]
    if callable(spec):
        return MeanMetric(fn=spec, activation=getattr(loss, "fusable_activation", None))
    where = f" (from {source})" if source else ""
    raise InputTypeError(
        f"a metric{where} must be a name, a table with a 'name' key, a Metric, or a function "
        f"(y_pred, y_true) -> Tensor; got {type(spec).__name__} {spec!r}"
    )


# --------------------------------------------------------------------------- helpers


def _is_metric(obj: Any) -> bool:
    return isinstance(obj, Metric) or all(
        callable(getattr(obj, method, None)) for method in ("reset", "update", "compute")
    ) and isinstance(getattr(obj, "name", None), str)


def _loss_name(loss: Any) -> str | None:
    if loss is None:
        return None
    name = loss if isinstance(loss, str) else getattr(loss, "name", None)
    return name.lower() if isinstance(name, str) else None


def _callable_name(fn: Any) -> str:
    if isinstance(fn, torch.nn.Module):
        return type(fn).__name__
    name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", None)
    return "custom" if not name or name == "<lambda>" else str(name)


def _threshold(name: str, value: Any) -> float:
    return check.in_range(
        f"{name}: threshold", value, 0.0, 1.0, open_low=True, open_high=True,
        hint="It is the probability above which a single output counts as class 1, e.g. 0.5.",
    )


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _binary_average_error(name: str, classes: int) -> InputError:
    return InputError(
        f"{name}: average='binary' scores class 1 of a two-class problem, but the model has {classes} "
        f"outputs (classes). Choose how to average over classes: {{name = \"{name}\", average = "
        "\"macro\"} (each class counts the same), \"weighted\" (by class frequency) or \"micro\" "
        "(each sample counts the same)."
    )


def _columns(y_pred: Tensor) -> int:
    return 1 if y_pred.ndim <= 1 else int(y_pred.shape[-1])


def _like(name: str, y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Targets in the predictions' shape; (N,) against (N, 1) is accepted, as in Keras."""
    if y_true.shape == y_pred.shape:
        return y_true
    if y_true.numel() == y_pred.numel():
        return y_true.reshape(y_pred.shape)
    raise InputError(
        f"{name}: predictions have shape {tuple(y_pred.shape)} but targets {tuple(y_true.shape)}; "
        "they must hold one target per output."
    )


def _keras_accuracy_kind(y_pred: Tensor, y_true: Tensor) -> str:
    if _columns(y_pred) == 1:
        return "binary"
    if y_true.ndim < y_pred.ndim or y_true.shape[-1] == 1:
        return "sparse"
    return "categorical"


def _sparse_labels(name: str, y_pred: Tensor, y_true: Tensor) -> Tensor:
    """Integer labels shaped like y_pred without its class axis ((N, 1) is accepted)."""
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_true.shape != y_pred.shape[:-1]:
        raise InputError(
            f"{name}: predictions have shape {tuple(y_pred.shape)} (samples, classes) but the labels "
            f"{tuple(y_true.shape)}; give one integer label per sample (or one-hot rows to "
            "'categorical_accuracy')."
        )
    return y_true


def _predicted_classes(y_pred: Tensor, columns: int, threshold: float) -> Tensor:
    """Flat long class ids: a single column thresholded, several columns argmax."""
    if columns == 1:
        return (y_pred.reshape(-1) > threshold).long()
    return y_pred.reshape(-1, columns).argmax(-1)


def _class_labels(name: str, y_pred: Tensor, y_true: Tensor, columns: int) -> Tensor:
    """Flat long true class ids from 0/1 targets, integer labels, or one-hot rows."""
    if columns == 1:
        labels = (y_true.reshape(-1) > 0.5).long()
    elif y_true.ndim == y_pred.ndim and y_true.shape[-1] == columns:
        labels = y_true.reshape(-1, columns).argmax(-1)
    else:
        labels = y_true.reshape(-1)
        labels = labels if labels.dtype == torch.long else labels.long()
    rows = y_pred.numel() // columns
    if labels.shape[0] != rows:
        raise InputError(
            f"{name}: predictions have shape {tuple(y_pred.shape)} but targets {tuple(y_true.shape)}; "
            "give one label (or one-hot row) per prediction row."
        )
    return labels


def _ratio(name: str, true_positives: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per-class precision, recall or F1 from counts; 0 where the denominator is 0 (zero_division=0)."""
    if name == "precision":
        numerator, denominator = true_positives, predicted
    elif name == "recall":
        numerator, denominator = true_positives, actual
    else:
        numerator, denominator = 2.0 * true_positives, predicted + actual
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks down each column of `x`, ties given their average rank."""
    n = x.shape[0]
    order = np.argsort(x, axis=0, kind="mergesort")
    ordered = np.take_along_axis(x, order, axis=0)
    position = np.broadcast_to(np.arange(n)[:, None], x.shape)
    starts_group = np.ones(x.shape, dtype=bool)
    starts_group[1:] = ordered[1:] != ordered[:-1]
    ends_group = np.ones(x.shape, dtype=bool)
    ends_group[:-1] = ordered[1:] != ordered[:-1]
    first = np.maximum.accumulate(np.where(starts_group, position, 0), axis=0)
    last = np.minimum.accumulate(np.where(ends_group, position, n - 1)[::-1], axis=0)[::-1]
    ranks = np.empty(x.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=0)
    return ranks


def _ovr_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mean over columns of the Mann-Whitney AUC of scores[:, c] for positive[:, c] vs the rest."""
    ranks = _average_ranks(scores)
    num_positive = positive.sum(0).astype(np.float64)
    num_negative = positive.shape[0] - num_positive
    scorable = (num_positive > 0) & (num_negative > 0)
    if not scorable.any():
        return math.nan
    rank_sum = (ranks * positive).sum(0)
    area = (rank_sum - num_positive * (num_positive + 1) / 2.0)[scorable] / (
        num_positive[scorable] * num_negative[scorable]
    )
    return float(area.mean())
