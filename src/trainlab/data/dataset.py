"""The Dataset: two tensors plus the task facts a trainer needs, checked once when made.

`Dataset` holds `x`, `y`, the task (classification with `num_classes`
classes, or regression) and readable names; `from_arrays` makes one from
arrays, lists or tensors, converting dtypes and inferring the task. Every
maker checks the data here (rows match, nothing empty, no NaN or infinity),
so that the training loop can trust it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from trainlab import check
from trainlab.errors import InputError, InputTypeError

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = ("classification", "regression")

# Seeds reach numpy/scikit-learn, which take 0 .. 2**32 - 1.
_MAX_SEED = 2**32 - 1


# --------------------------------------------------------------------------- Dataset


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs `x`, targets `y`, and what the task is; checked once, when made.

    Why: the training loop, the losses and the metrics all need the same facts
    (is this classification, with how many classes?), and bad data (NaN, rows
    that do not match) should fail here with a clear message, not as a NaN
    loss twenty epochs later.

    Dtypes:
        x: float32 features, shape (num_samples, ...); or int64 token ids
            (>= 0) for models that start with an Embedding layer.
        y: int64 class labels 0..num_classes-1, shape (num_samples,), for
            classification; float32 one-hot or soft labels, shape
            (num_samples, num_classes), for classification; float32 targets,
            shape (num_samples,) or (num_samples, num_outputs), for regression.

    Use `from_arrays` to make one from numpy arrays, lists or tensors of other
    dtypes; it converts and infers the task.

    Raises:
        InputError: rows of x and y differ, no rows, NaN or infinite values,
            labels outside 0..num_classes-1, or a dtype/shape outside the above.

    Example:
        >>> data = Dataset(x=torch.zeros(4, 2), y=torch.tensor([0, 1, 1, 0]),
        ...                task="classification", num_classes=2, name="toy")
        >>> len(data), data.num_features
        (4, 2)
        >>> data.subset([0, 1])
        Dataset('toy': 2 samples x 2 features, classification, 2 classes)
    """

    x: Tensor
    y: Tensor
    task: Task
    num_classes: int | None
    name: str
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _validate_dataset(self)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_features(self) -> int:
        """Values per sample: the product of x's shape after the first axis."""
        return math.prod(self.x.shape[1:])

    def subset(self, indices: Tensor | Sequence[int] | np.ndarray | slice) -> Dataset:
        """The rows at `indices` (integer positions, a boolean mask or a slice), same task and names.

        Example:
            >>> from trainlab.data import load
            >>> load("iris", shuffled=False).subset(slice(0, 10)).y.tolist()[:3]
            [0, 0, 0]
        """
        n = len(self)
        if isinstance(indices, slice):
            index: Tensor | slice = indices
        else:
            index = _as_index(indices, self.name)
            index = index.to(self.x.device)
        try:
            x, y = self.x[index], self.y[index]
        except IndexError as error:
            raise InputError(
                f"dataset '{self.name}': subset indices do not fit its {n} samples ({error}). "
                f"Pass positions in 0..{n - 1}, or a boolean mask of length {n}."
            ) from error
        if len(x) == 0:
            raise InputError(
                f"dataset '{self.name}': the subset selects no rows (indices {indices!r}); "
                "a data set needs at least one sample."
            )
        return dataclasses.replace(self, x=x, y=y)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.x.shape[1:])
        what = f"{shape} features" if self.x.ndim == 2 else f"{shape} values"
        if self.x.dtype == torch.int64:
            what = f"{shape} token ids"
        task = self.task + (f", {self.num_classes} classes" if self.num_classes is not None else "")
        return f"Dataset('{self.name}': {len(self)} samples x {what}, {task})"


def _as_index(indices: Any, name: str) -> Tensor:
    if isinstance(indices, Tensor):
        index = indices
    else:
        array = np.asarray(indices)
        if array.size == 0:
            array = array.astype(np.int64)
        index = torch.as_tensor(array)
    if index.is_floating_point() or index.is_complex():
        raise InputTypeError(
            f"dataset '{name}': subset indices must be integer positions or a boolean mask, "
            f"got dtype {index.dtype}."
        )
    return index if index.dtype == torch.bool else index.long()


def _validate_dataset(data: Dataset) -> None:
    name = data.name
    if not isinstance(name, str):
        raise InputTypeError(f"Dataset.name must be a string, got {type(name).__name__} {name!r}")
    where = f"dataset '{name}'"
    for which in ("x", "y"):
        value = getattr(data, which)
        if not isinstance(value, Tensor):
            raise InputTypeError(
                f"{where}: {which} must be a torch.Tensor, got {type(value).__name__}. "
                "Use from_arrays(x, y) to make a Dataset from numpy arrays, lists or tensors of any dtype."
            )
    x, y = data.x, data.y
    if x.dtype not in (torch.float32, torch.int64):
        raise InputTypeError(
            f"{where}: x must be float32 (features) or int64 (token ids), got {x.dtype}. "
            "from_arrays(x, y) converts other dtypes."
        )
    if x.ndim < 2:
        raise InputError(
            f"{where}: x must have one row per sample, shape (num_samples, num_features, ...), "
            f"got shape {tuple(x.shape)}. For a single feature use x.reshape(-1, 1)."
        )
    if x.shape[0] == 0:
        raise InputError(f"{where}: x has 0 rows; a data set needs at least one sample.")
    if y.dtype not in (torch.int64, torch.float32):
        raise InputTypeError(
            f"{where}: y must be int64 (class labels) or float32 (targets or one-hot labels), "
            f"got {y.dtype}. from_arrays(x, y) converts other dtypes."
        )
    if y.ndim not in (1, 2):
        raise InputError(
            f"{where}: y must have shape (num_samples,) or (num_samples, num_outputs), got {tuple(y.shape)}."
        )
    if y.shape[0] != x.shape[0]:
        raise InputError(
            f"{where}: x has {x.shape[0]} rows but y has {y.shape[0]}; every sample needs exactly one "
            "target. Check that x and y come from the same rows, in the same order."
        )
    check.choice(f"{where}: task", data.task, TASKS)
    num_classes = data.num_classes
    if isinstance(num_classes, np.integer):
        num_classes = int(num_classes)
        object.__setattr__(data, "num_classes", num_classes)
    if data.task == "classification":
        num_classes = check.int_at_least(f"{where}: num_classes", num_classes, 2,
                                         "Classification needs at least 2 classes.")
        if y.dtype == torch.int64:
            if y.ndim != 1:
                raise InputError(
                    f"{where}: class labels must have shape (num_samples,), got {tuple(y.shape)}. "
                    "Use y.reshape(-1) for a column of labels, or float32 one-hot rows."
                )
            low, high = int(y.min()), int(y.max())
            if low < 0 or high >= num_classes:
                bad = int(((y < 0) | (y >= num_classes)).nonzero()[0])
                raise InputError(
                    f"{where}: class labels must be in 0..{num_classes - 1} (num_classes={num_classes}), "
                    f"got {int(y[bad])} in row {bad}."
                )
        elif y.ndim != 2 or y.shape[1] != num_classes:
            raise InputError(
                f"{where}: float32 labels for classification must be one-hot or soft labels of shape "
                f"(num_samples, {num_classes}), got {tuple(y.shape)}. For class indices use int64."
            )
    else:
        if num_classes is not None:
            raise InputError(
                f"{where}: num_classes is for classification, got num_classes={num_classes} with "
                "task='regression'. Leave it None, or set task='classification'."
            )
        if y.dtype != torch.float32:
            raise InputTypeError(
                f"{where}: regression targets must be float32, got {y.dtype}. "
                "from_arrays(x, y, task='regression') converts them."
            )
    _check_finite(x, "x", where)
    _check_finite(y, "y", where)
    if x.dtype == torch.int64 and int(x.min()) < 0:
        row = int((x < 0).reshape(len(x), -1).any(1).nonzero()[0])
        raise InputError(
            f"{where}: int64 x holds token ids, which must be >= 0, got {int(x.min())} (first in row {row}). "
            "For numeric features use float32 x."
        )
    for field, size in (("feature_names", data.num_features), ("class_names", num_classes)):
        names = getattr(data, field)
        if names is None:
            continue
        if isinstance(names, str) or not isinstance(names, Sequence) or not all(
            isinstance(n, str) for n in names
        ):
            raise InputTypeError(f"{where}: {field} must be a sequence of strings, got {names!r}")
        if field == "class_names" and data.task != "classification":
            raise InputError(f"{where}: class_names is for classification, got it with task='regression'.")
        if len(names) != size:
            raise InputError(f"{where}: {field} has {len(names)} names, expected {size}.")
        object.__setattr__(data, field, tuple(names))


def _check_finite(t: Tensor, which: str, where: str) -> None:
    """Raise InputError naming the array, how many NaN/inf values and the first bad row."""
    if check.all_finite(t):
        return
    finite = torch.isfinite(t)
    num_nan = int(torch.isnan(t).sum())
    num_inf = int(torch.isinf(t).sum())
    rows = (~finite).reshape(len(t), -1).any(1)
    first = int(rows.nonzero()[0])
    parts = [f"{num_nan} NaN" if num_nan else "", f"{num_inf} infinite" if num_inf else ""]
    counted = " and ".join(p for p in parts if p)
    plural = "s" if num_nan + num_inf > 1 else ""
    raise InputError(
        f"{where}: {which} has {counted} value{plural} in {int(rows.sum())} of {len(t)} rows "
        f"(first in row {first}). A network cannot learn from missing or infinite values: drop those "
        "rows, or fill them (e.g. with the training part's column mean) before making the data set."
    )


# --------------------------------------------------------------------------- your own data


def from_arrays(
    x: Any,
    y: Any,
    *,
    name: str = "arrays",
    task: Task | None = None,
    num_classes: int | None = None,
    tokens: bool = False,
) -> Dataset:
    """Make a Dataset from numpy arrays, torch tensors or nested lists, inferring the task.

    Task inference is by y's dtype only, never by its values: integer or bool y
    is classification (labels must be >= 0; num_classes = largest label + 1);
    float y is regression, even when every value is a whole number. Pass `task`
    to decide yourself: ``task="classification"`` accepts float y that holds
    whole numbers (converted to int64 labels) or 2-D one-hot/soft labels whose
    rows sum to 1; ``task="regression"`` accepts integer y (converted to float32).

    x becomes float32. With ``tokens=True`` integer x is kept as int64 token ids
    (for Embedding layers) instead.

    Args:
        x: inputs, one row per sample, at least 2-D.
        y: labels or targets, one per row of x.
        name: shown in messages and reports.
        task: "classification" or "regression"; None infers it from y's dtype.
        num_classes: for classification, at least largest label + 1; None infers it.
        tokens: keep integer x as int64 token ids instead of float32 features.

    Raises:
        InputError: strings or objects, no rows, rows of x and y differ, NaN or
            infinite values, negative labels, or settings that contradict y.

    Example:
        >>> from_arrays([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [0, 2, 1])
        Dataset('arrays': 3 samples x 2 features, classification, 3 classes)
        >>> from_arrays([[0.0], [1.0]], [0.0, 1.0]).task
        'regression'
    """
    return _make(x, y, name=name, task=task, num_classes=num_classes, tokens=tokens)


def _make(
    x: Any,
    y: Any,
    *,
    name: str,
    task: str | None,
    num_classes: int | None,
    tokens: bool = False,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> Dataset:
    where = f"dataset '{name}'"
    if task is not None:
        check.choice(f"{where}: task", task, TASKS)
    xt = _to_tensor(x, "x", name)
    yt = _to_tensor(y, "y", name)
    if xt.ndim < 2:
        raise InputError(
            f"{where}: x must have one row per sample, shape (num_samples, num_features, ...), "
            f"got shape {tuple(xt.shape)}. For a single feature use x.reshape(-1, 1)."
        )
    if xt.shape[0] == 0:
        raise InputError(f"{where}: x has 0 rows; a data set needs at least one sample.")
    if yt.ndim == 0 or yt.shape[0] != xt.shape[0]:
        rows_y = "a single value" if yt.ndim == 0 else f"{yt.shape[0]} rows"
        raise InputError(
            f"{where}: x has {xt.shape[0]} rows but y has {rows_y}; every sample needs exactly one "
            "target. Check that x and y come from the same rows, in the same order."
        )
    _check_finite(xt, "x", where)
    _check_finite(yt, "y", where)

    if tokens:
        if xt.is_floating_point() or xt.dtype == torch.bool:
            raise InputTypeError(
                f"{where}: tokens=True needs integer token ids in x, got {xt.dtype}. "
                "Leave tokens=False for numeric features."
            )
        xt = xt.long()
    else:
        xt = xt.float()

    if task is None:
        task = "regression" if yt.is_floating_point() else "classification"
    if task == "regression":
        if num_classes is not None:
            raise InputError(
                f"{where}: num_classes is for classification, got num_classes={num_classes} with "
                "regression (float y, or task='regression'). Pass task='classification' for class labels."
            )
        yt = yt.float()
    else:
        yt, num_classes = _class_labels(yt, num_classes, where)
    return Dataset(
        x=xt, y=yt, task=task,  # type: ignore[arg-type]  # checked by check.choice above
        num_classes=num_classes, name=name,
        feature_names=tuple(feature_names) if feature_names is not None else None,
        class_names=tuple(class_names) if class_names is not None else None,
    )


def _class_labels(y: Tensor, num_classes: int | None, where: str) -> tuple[Tensor, int]:
    """Labels as int64 class indices or float32 one-hot rows, and the number of classes."""
    if num_classes is not None:
        check.int_at_least(f"{where}: num_classes", num_classes, 2,
                           "Classification needs at least 2 classes.")
    if y.is_floating_point() and y.ndim == 2:
        low, high = float(y.min()), float(y.max())
        sums = y.double().sum(1)
        worst = int((sums - 1).abs().argmax())
        if low < 0 or high > 1 or abs(float(sums[worst]) - 1) > 1e-4:
            raise InputError(
                f"{where}: 2-D float labels must be one-hot or probability rows (values in [0, 1], each row "
                f"summing to 1); row {worst} sums to {float(sums[worst]):.6g}, values range "
                f"{low:.6g}..{high:.6g}. "
                "For regression with several outputs pass task='regression'."
            )
        if num_classes is not None and num_classes != y.shape[1]:
            raise InputError(
                f"{where}: one-hot labels have {y.shape[1]} columns but num_classes={num_classes}; "
                "they must match (or leave num_classes=None)."
            )
        if y.shape[1] < 2:
            raise InputError(f"{where}: one-hot labels need at least 2 columns, got {y.shape[1]}.")
        return y.float(), int(y.shape[1])
    if y.ndim != 1:
        raise InputError(
            f"{where}: class labels must have shape (num_samples,), got {tuple(y.shape)} ({y.dtype}). "
            "Use y.reshape(-1) for a column of labels, or pass one-hot labels as floats."
        )
    if y.is_floating_point():
        whole = y == y.round()
        if not bool(whole.all()):
            row = int((~whole).nonzero()[0])
            raise InputError(
                f"{where}: task='classification' needs whole-number class labels, got {float(y[row])} "
                f"in row {row}. For continuous targets use task='regression'."
            )
    is_bool = y.dtype == torch.bool
    labels = y.long()
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        row = int((labels < 0).nonzero()[0])
        raise InputError(
            f"{where}: class labels must be >= 0 (they index the classes 0..num_classes-1), got {low} in "
            f"row {row}. Map labels to 0..k-1 first, e.g. `classes, y = np.unique(y, return_inverse=True)`."
        )
    inferred = 2 if is_bool else high + 1
    if num_classes is None:
        if inferred < 2:
            raise InputError(
                f"{where}: every label is 0, so only 1 class can be inferred; classification needs at "
                "least 2. Pass num_classes if the data set has more classes than these rows show."
            )
        return labels, inferred
    if num_classes <= high:
        raise InputError(
            f"{where}: num_classes={num_classes} but y holds label {high}; num_classes must be larger "
            f"than every label (at least {high + 1}), or leave it None to infer it."
        )
    return labels, num_classes


_TEXT_KINDS = {"U": "strings", "S": "byte strings", "O": "Python objects", "V": "records",
               "M": "dates", "m": "time spans", "c": "complex numbers"}


def _to_tensor(value: Any, which: str, name: str) -> Tensor:
    """`value` as a tensor with a numeric or bool dtype, or an InputError saying what it holds."""
    where = f"dataset '{name}'"
    fix = (
        "Map class labels to integers first, e.g. `classes, y = np.unique(y, return_inverse=True)`."
        if which == "y" else "Encode text or categories as numbers first (e.g. one-hot columns)."
    )
    if isinstance(value, Tensor):
        if value.is_complex():
            raise InputTypeError(
                f"{where}: {which} holds complex numbers ({value.dtype}); expected real numbers."
            )
        return value.detach()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise InputError(
            f"{where}: {which} could not be read as one numeric array ({error}). Rows of different "
            "lengths are the usual cause: every sample must have the same shape."
        ) from error
    if array.dtype.kind in _TEXT_KINDS:
        raise InputTypeError(
            f"{where}: {which} holds {_TEXT_KINDS[array.dtype.kind]} (dtype {array.dtype}), expected "
            f"numbers. {fix}"
        )
    if array.dtype.kind == "f" and array.dtype != np.float64:
        array = array.astype(np.float64)
    elif array.dtype.kind in "iu":
        if array.dtype.kind == "u" and array.size and int(array.max()) > np.iinfo(np.int64).max:
            raise InputError(f"{where}: {which} holds integers too large for int64.")
        array = array.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(array))


def _check_seed(technique: str, seed: Any) -> None:
    check.int_at_least(f"{technique}: seed", seed, 0)
    if seed > _MAX_SEED:
        raise InputError(f"{technique}: seed must be <= {_MAX_SEED}, got {seed}.")


def _expect_dataset(data: Any) -> Dataset:
    if not isinstance(data, Dataset):  # a loader registered by someone else returned something else
        raise TypeError(f"a dataset loader returned {type(data).__name__}, expected a Dataset")
    return data
