"""Data sets: the bundled real ones, your arrays and files, the validation split, and feature scaling.

A `Dataset` is two tensors plus the facts a trainer needs about them: the task
(classification with `num_classes` classes, or regression) and readable names.
Everything that makes one checks the data once, here, so that the training
loop can trust it: rows match, nothing is empty, nothing is NaN or infinite.

Where data comes from:

- `load(name)` / `DATASETS`: the small real data sets scikit-learn ships
  (digits, iris, wine, breast_cancer, diabetes; offline), plus generated ones
  (`synthetic`, `sequences`) for tests and benchmarks.
- `from_arrays`, `from_csv`, `from_npz`: your own data.
- `as_dataset`: any of the above, from whatever a user wrote in a spec.

`split_validation` holds out a validation part (Keras semantics: the last
rows, unless stratified), and `SCALERS` hold the feature scalings, fitted on
the training part only and stored with the model as JSON.

Example:
    >>> data = load("iris")
    >>> data
    Dataset('iris': 150 samples x 4 features, classification, 3 classes)
    >>> x_train, y_train, x_val, y_val = split_validation(data.x, data.y, fraction=0.2, stratify=True)
    >>> scaling = scaler("standardize").fit(x_train)
    >>> x_train, x_val = scaling.transform(x_train), scaling.transform(x_val)
    >>> len(x_train), len(x_val)
    (120, 30)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from trainlab import check
from trainlab.errors import InputError, InputTypeError, did_you_mean
from trainlab.registry import Registry

__all__ = [
    "DATASETS",
    "SCALERS",
    "Dataset",
    "MinMax",
    "NoScaling",
    "Scaler",
    "Standardize",
    "as_dataset",
    "describe_datasets",
    "from_arrays",
    "from_csv",
    "from_npz",
    "load",
    "scaler",
    "scaler_from_dict",
    "split_validation",
]

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
    if not t.is_floating_point():
        return
    finite = torch.isfinite(t)
    if bool(finite.all()):
        return
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


# --------------------------------------------------------------------------- bundled data sets

DATASETS: Registry[Any] = Registry("dataset")


def _bundled(loader: str, name: str, task: Task, *, shuffled: bool, **kwargs: Any) -> Dataset:
    # Imported here: scikit-learn takes about half a second to import.
    from sklearn import datasets as sk_datasets

    bunch = getattr(sk_datasets, loader)(**kwargs)
    if shuffled:
        # scikit-learn ships iris and wine sorted by class and digits with its hardest writers last,
        # so a Keras-style split (the last rows) would validate on an unrepresentative part. One fixed
        # permutation, the same on every machine, makes the last rows a fair sample.
        order = np.random.default_rng(0).permutation(len(bunch.target))
        bunch.data, bunch.target = bunch.data[order], bunch.target[order]
    x = torch.from_numpy(np.ascontiguousarray(bunch.data, dtype=np.float32))
    feature_names = tuple(str(f) for f in bunch.feature_names)
    if task == "regression":
        y = torch.from_numpy(np.ascontiguousarray(bunch.target, dtype=np.float32))
        return Dataset(x=x, y=y, task=task, num_classes=None, name=name, feature_names=feature_names)
    y = torch.from_numpy(np.ascontiguousarray(bunch.target, dtype=np.int64))
    class_names = tuple(str(c) for c in bunch.target_names)
    return Dataset(x=x, y=y, task=task, num_classes=len(class_names), name=name,
                   feature_names=feature_names, class_names=class_names)


@DATASETS.register(
    "digits",
    summary="Handwritten digits: 1797 samples x 64 features (8x8 pixels, raw values 0..16), "
    "classification, 10 classes.",
    claim="Small enough to train in seconds on a CPU, hard enough that the choice of scaling, "
    "initialization and optimizer shows in the accuracy.",
)
def digits(*, shuffled: bool = True) -> Dataset:
    """The UCI handwritten digits as scikit-learn ships them: 8x8 images flattened row by row.

    Pixel values are the raw counts 0..16, not scaled: scaling is a technique
    you choose (see `SCALERS`).

    Example:
        >>> digits()
        Dataset('digits': 1797 samples x 64 features, classification, 10 classes)
    """
    return _bundled("load_digits", "digits", "classification", shuffled=shuffled)


@DATASETS.register(
    "iris",
    summary="Iris flowers: 150 samples x 4 features, classification, 3 classes.",
    claim="Tiny and almost linearly separable: a smoke test that any sound technique passes with "
    "over 90% accuracy.",
)
def iris(*, shuffled: bool = True) -> Dataset:
    """Fisher's iris measurements (cm).

    scikit-learn ships the rows sorted by class; trainlab returns them in one
    fixed shuffled order (``shuffled=False`` gives the shipped order), so that a
    Keras-style validation split (the last rows) holds every class.

    Example:
        >>> iris().class_names
        ('setosa', 'versicolor', 'virginica')
    """
    return _bundled("load_iris", "iris", "classification", shuffled=shuffled)


@DATASETS.register(
    "wine",
    summary="Wine cultivars: 178 samples x 13 features, classification, 3 classes.",
    claim="Features on very different scales (proline in the hundreds to thousands, hue near 1): "
    "shows why standardizing inputs matters for gradient descent.",
)
def wine(*, shuffled: bool = True) -> Dataset:
    """Chemical analysis of wines from three cultivars (shuffled once, as all bundled sets; see `iris`).

    Example:
        >>> wine().num_features
        13
    """
    return _bundled("load_wine", "wine", "classification", shuffled=shuffled)


@DATASETS.register(
    "breast_cancer",
    summary="Breast cancer diagnosis: 569 samples x 30 features, classification, 2 classes.",
    claim="Binary task with unequal classes (212 malignant, 357 benign) and unscaled features: "
    "shows feature scaling, and why accuracy alone can mislead.",
)
def breast_cancer(*, shuffled: bool = True) -> Dataset:
    """Wisconsin diagnostic breast cancer data; class 0 is malignant, class 1 benign.

    Example:
        >>> breast_cancer().class_names
        ('malignant', 'benign')
    """
    return _bundled("load_breast_cancer", "breast_cancer", "classification", shuffled=shuffled)


@DATASETS.register(
    "diabetes",
    summary="Diabetes progression: 442 samples x 10 features (raw, unscaled), regression, "
    "target 25..346.",
    claim="Small and noisy: a linear model explains only about half the variance, so it shows "
    "overfitting and the value of regularization and early stopping.",
)
def diabetes(*, shuffled: bool = True) -> Dataset:
    """Disease progression one year after baseline, from age, sex, BMI, blood pressure and 6 serum values.

    Features are the raw measurements (scikit-learn's ``scaled=False``), as for
    the other bundled sets; the target is raw too, a float32 vector of shape
    (442,).

    Example:
        >>> diabetes().task
        'regression'
    """
    return _bundled("load_diabetes", "diabetes", "regression", scaled=False, shuffled=shuffled)


@DATASETS.register(
    "synthetic",
    summary="Generated classification (scikit-learn make_classification): num_samples x num_features, "
    "default 1000 x 20, 2 classes.",
    claim="Any size on demand from a seed, with no download: for tests, benchmarks and timing.",
)
def synthetic(
    *, num_samples: int = 1000, num_features: int = 20, num_classes: int = 2, seed: int = 0
) -> Dataset:
    """Gaussian clusters, one or two per class, from `sklearn.datasets.make_classification`.

    Half the features (at least 2) are informative, a quarter are linear
    combinations of those, the rest are noise; 1% of the labels are flipped
    (scikit-learn's default), so 100% accuracy is not expected.

    Example:
        >>> synthetic(num_samples=100, num_features=5, num_classes=3)
        Dataset('synthetic': 100 samples x 5 features, classification, 3 classes)
    """
    check.int_at_least("synthetic: num_classes", num_classes, 2)
    check.int_at_least("synthetic: num_samples", num_samples, num_classes,
                       "Every class needs at least one sample.")
    check.int_at_least("synthetic: num_features", num_features, 1)
    _check_seed("synthetic", seed)
    # scikit-learn draws float64 features; trainlab keeps a float32 copy and int64 labels.
    check_memory("synthetic", num_samples * (num_features * (8 + 4) + 8 + 8),
                 f"num_samples={num_samples} x num_features={num_features}")
    informative = _informative(num_features)
    if num_classes > 2**informative:
        needed = next(f for f in range(num_features, 4 * num_classes + 4)
                      if 2 ** _informative(f) >= num_classes)
        raise InputError(
            f"synthetic: num_classes={num_classes} needs num_features >= {needed}, got {num_features}: "
            f"{informative} informative features can separate at most {2**informative} classes."
        )
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=num_samples,
        n_features=num_features,
        n_informative=informative,
        n_redundant=min(num_features - informative, num_features // 4),
        n_classes=num_classes,
        n_clusters_per_class=2 if 2 * num_classes <= 2**informative else 1,
        random_state=seed,
    )
    return Dataset(x=torch.from_numpy(x.astype(np.float32)), y=torch.from_numpy(y.astype(np.int64)),
                   task="classification", num_classes=num_classes, name="synthetic")


def _informative(num_features: int) -> int:
    return min(num_features, max(2, math.ceil(num_features / 2)))


_FIRST_TOKEN, _SECOND_TOKEN, _FIRST_FILLER = 1, 2, 3


@DATASETS.register(
    "sequences",
    summary="Generated token sequences: num_samples x length int64 token ids (default 2000 x 20, "
    "vocab 50), classification, 2 classes: does token 1 come before token 2?",
    claim="Only the order decides the label and the token counts carry no information, so a "
    "bag-of-words model stays at chance while an LSTM (any order-aware model) learns it.",
)
def sequences(*, num_samples: int = 2000, length: int = 20, vocab_size: int = 50, seed: int = 0) -> Dataset:
    """Token sequences labelled by the order of two marker tokens; x is int64 token ids.

    Every sequence holds token 1 exactly once and token 2 exactly once, at
    random positions; the other positions are filler tokens drawn uniformly
    from 3..vocab_size-1. The label is 1 when token 1 comes first. Token 0 never
    appears: it is left free for padding. Feed x to an Embedding layer with
    ``num_embeddings=vocab_size``; the classes are balanced in expectation.

    Example:
        >>> data = sequences(num_samples=4, length=6, vocab_size=10)
        >>> data.x.dtype, tuple(data.x.shape)
        (torch.int64, (4, 6))
        >>> all(((row == 1).nonzero() < (row == 2).nonzero()).item() == bool(label)
        ...     for row, label in zip(data.x, data.y))
        True
    """
    check.int_at_least("sequences: num_samples", num_samples, 1)
    check.int_at_least("sequences: length", length, 2, "Each sequence holds the two marker tokens.")
    check.int_at_least("sequences: vocab_size", vocab_size, 4,
                       "Token 0 is padding, 1 and 2 are the markers, 3.. are fillers.")
    _check_seed("sequences", seed)
    # int64 tokens, float64 draws for the marker positions and the argsort's int64 result.
    check_memory("sequences", num_samples * length * (8 + 8 + 8), f"num_samples={num_samples} x length={length}")
    rng = np.random.default_rng(seed)
    tokens = rng.integers(_FIRST_FILLER, vocab_size, size=(num_samples, length), dtype=np.int64)
    # The first two entries of a random permutation of the positions: two distinct places.
    order = np.argsort(rng.random((num_samples, length)), axis=1)
    first_at, second_at = order[:, 0], order[:, 1]
    rows = np.arange(num_samples)
    tokens[rows, first_at] = _FIRST_TOKEN
    tokens[rows, second_at] = _SECOND_TOKEN
    labels = (first_at < second_at).astype(np.int64)
    return Dataset(x=torch.from_numpy(tokens), y=torch.from_numpy(labels), task="classification",
                   num_classes=2, name="sequences", class_names=("2 before 1", "1 before 2"))


def memory_limit() -> int:
    """Bytes a generated data set may take: half of this machine's physical memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return int(total // 2)


def check_memory(technique: str, needed: int, shape: str) -> None:
    """Refuse a generated data set that would not fit, with the estimate, before allocating it."""
    limit = memory_limit()
    if needed > limit:
        raise InputError(
            f"{technique}: {shape} needs about {_bytes(needed)} of memory to generate, more than the "
            f"{_bytes(limit)} (half of this machine's memory) trainlab allows for a generated data set. "
            "Ask for fewer samples or features."
        )


def _bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if count < 1024 or unit == "PB":
            return f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} PB"


def _check_seed(technique: str, seed: Any) -> None:
    check.int_at_least(f"{technique}: seed", seed, 0)
    if seed > _MAX_SEED:
        raise InputError(f"{technique}: seed must be <= {_MAX_SEED}, got {seed}.")


def load(name: str, **settings: Any) -> Dataset:
    """The registered data set `name`, made with `settings` (for the generated ones).

    Raises:
        InputError: an unknown name (the message suggests close matches) or setting.

    Example:
        >>> load("synthetic", num_samples=50).x.shape
        torch.Size([50, 20])
        >>> load("irs")
        Traceback (most recent call last):
        ...
        trainlab.errors.InputError: unknown dataset 'irs'. Known: ... Did you mean 'iris'?
    """
    if not isinstance(name, str):
        raise InputTypeError(f"load: name must be a data set name (str), got {type(name).__name__} {name!r}")
    return _expect_dataset(DATASETS.build({"name": name, **settings}))


def describe_datasets() -> list[dict[str, Any]]:
    """One row per registered data set, as loaded with its default settings, for `trainlab datasets`.

    Example:
        >>> row = next(r for r in describe_datasets() if r["name"] == "iris")
        >>> row["samples"], row["features"], row["task"], row["classes"]
        (150, 4, 'classification', 3)
    """
    rows = []
    for entry in DATASETS.describe():
        data = entry.factory()
        rows.append({
            "name": entry.name,
            "samples": len(data),
            "features": data.num_features,
            "task": data.task,
            "classes": data.num_classes,
            "summary": entry.summary,
            "claim": entry.claim,
        })
    return rows


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


def from_csv(
    path: str | Path,
    *,
    target: str | int = -1,
    header: bool | None = None,
    name: str | None = None,
    task: Task | None = None,
) -> Dataset:
    """Read a CSV file of numeric feature columns and one target column.

    The delimiter is the first of ``,``, tab, ``;`` found in the first line.
    With ``header=None`` the first row is a header when some column holds text
    there but a number in the second row; a `target` given by name implies a
    header. Target column rules: text values are class labels, mapped to
    0..k-1 in sorted order and kept in `class_names`; integers ("3") are class
    labels; other numbers ("3.5") are regression targets. Pass `task` to
    overrule this, e.g. ``task="regression"`` for an integer-valued target.

    Args:
        path: the .csv file.
        target: the target column's name (needs a header) or index (-1: the last column).
        header: whether the first row holds column names; None detects it.
        name: the data set's name; default the file name without its suffix.
        task: "classification" or "regression"; None infers it as above.

    Raises:
        InputError: a missing file, rows of different lengths, a feature cell
            that is empty or not a number (the message names the line and
            column), an unknown target column.

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "flowers.csv")
        >>> with open(path, "w") as f:
        ...     _ = f.write("petal,sepal,species\\n1.4,5.1,setosa\\n4.7,7.0,versicolor\\n")
        >>> data = from_csv(path, target="species")
        >>> data.class_names, data.y.tolist(), data.feature_names
        (('setosa', 'versicolor'), [0, 1], ('petal', 'sepal'))
    """
    file = _existing_file(path, "from_csv")
    name = name if name is not None else file.stem
    if header is not None and not isinstance(header, bool):
        raise InputTypeError(f"from_csv: header must be True, False or None, got {header!r}")
    if isinstance(target, bool) or not isinstance(target, (str, int)):
        raise InputTypeError(f"from_csv: target must be a column name or index, got {target!r}")
    if task is not None:
        check.choice("from_csv: task", task, TASKS)
    rows = _read_csv_rows(file)
    if isinstance(target, str):
        if header is False:
            raise InputError(
                f"from_csv: target={target!r} is a column name, but header=False says {file} has no header "
                "row. Give the target as a column index, or set header=True."
            )
        header = True
    if header is None:
        header = _looks_like_header(rows)
    columns: list[str] | None = None
    if header:
        columns = rows[0][1]
        rows = rows[1:]
    if not rows:
        raise InputError(f"from_csv: {file} has no data rows{' after its header' if header else ''}.")
    width = len(columns) if columns is not None else len(rows[0][1])
    for line, row in rows:
        if len(row) != width:
            raise InputError(
                f"from_csv: {file} line {line} has {len(row)} fields, expected {width} as in the "
                f"{'header' if columns is not None else 'first row'}. Check for a missing or extra delimiter."
            )
    if width < 2:
        raise InputError(
            f"from_csv: {file} has {width} column; it needs feature columns and a target column."
        )
    target_at = _target_index(target, columns, width, file)
    labels = [columns[i] if columns is not None else f"column {i}" for i in range(width)]
    feature_at = [i for i in range(width) if i != target_at]

    x = _csv_features(rows, feature_at, file, labels)
    target_cells = [(line, row[target_at]) for line, row in rows]
    y, class_names = _csv_target(target_cells, file, labels[target_at], task)
    return _make(
        x, y, name=name, task=task if task is not None else ("classification" if class_names else None),
        num_classes=len(class_names) if class_names else None,
        feature_names=[labels[i] for i in feature_at] if columns is not None else None,
        class_names=class_names or None,
    )


def _read_csv_rows(file: Path) -> list[tuple[int, list[str]]]:
    """(line number, stripped cells) of every non-blank row."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"from_csv: {file} is not a UTF-8 text file ({error}).") from error
    first_line = text.split("\n", 1)[0]
    delimiter = next((d for d in (",", "\t", ";") if d in first_line), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    for row in reader:
        cells = [cell.strip() for cell in row]
        if any(cells):
            rows.append((reader.line_num, cells))
    if not rows:
        raise InputError(f"from_csv: {file} is empty.")
    return rows


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _looks_like_header(rows: list[tuple[int, list[str]]]) -> bool:
    first = rows[0][1]
    if len(rows) == 1:
        return not all(_is_number(cell) for cell in first)
    second = rows[1][1]
    return any(not _is_number(a) and _is_number(b) for a, b in zip(first, second))


def _target_index(target: str | int, columns: list[str] | None, width: int, file: Path) -> int:
    if isinstance(target, str):
        if columns is None:  # from_csv sets header=True for a named target; kept for direct callers
            raise InputError(f"from_csv: target={target!r} is a column name, but {file} has no header row.")
        if target in columns:
            return columns.index(target)
        raise InputError(
            f"from_csv: {file} has no column {target!r}. Columns: {', '.join(columns)}."
            f"{did_you_mean(target, columns)}"
        )
    index = int(target)
    if not -width <= index < width:
        raise InputError(
            f"from_csv: target={target} is outside the {width} columns of {file}; use 0..{width - 1}, "
            "or -1 for the last column."
        )
    return index % width


def _csv_features(rows: list[tuple[int, list[str]]], feature_at: list[int], file: Path,
                  labels: list[str]) -> np.ndarray:
    """The feature cells as float64; on a bad cell, an error naming its line and column."""
    try:  # fast path: numpy parses the strings in C
        x = np.array([[row[i] for i in feature_at] for _, row in rows], dtype=np.float64)
        if np.isfinite(x).all():
            return x
    except ValueError:
        pass
    x = np.empty((len(rows), len(feature_at)), dtype=np.float64)
    for r, (line, row) in enumerate(rows):
        for c, i in enumerate(feature_at):
            x[r, c] = _csv_number(row[i], file, line, labels[i])
    return x


def _csv_number(cell: str, file: Path, line: int, column: str) -> float:
    if cell == "":
        raise InputError(
            f"from_csv: {file} line {line}, column {column!r} is empty. Fill or drop rows with missing "
            "values before training."
        )
    try:
        value = float(cell)
    except ValueError:
        raise InputError(
            f"from_csv: {file} line {line}, column {column!r} holds {cell!r}, which is not a number. "
            "Feature columns must be numeric: encode text or categories as numbers (e.g. one-hot) first."
        ) from None
    if not math.isfinite(value):
        raise InputError(
            f"from_csv: {file} line {line}, column {column!r} holds {cell!r}. A network cannot learn from "
            "missing or infinite values: fill or drop those rows first."
        )
    return value


def _csv_target(
    cells: list[tuple[int, str]], file: Path, column: str, task: str | None
) -> tuple[np.ndarray, list[str]]:
    """The target column as int64 labels, float64 targets, or text labels mapped to 0..k-1 (with names)."""
    for line, cell in cells:
        if cell == "":
            raise InputError(f"from_csv: {file} line {line}, target column {column!r} is empty.")
    numeric = [_is_number(cell) for _, cell in cells]
    if all(numeric):
        try:
            return np.array([int(cell) for _, cell in cells], dtype=np.int64), []
        except ValueError:
            return np.array([float(cell) for _, cell in cells], dtype=np.float64), []
    if any(numeric):
        line, cell = cells[numeric.index(True)]
        text_line, text = cells[numeric.index(False)]
        raise InputError(
            f"from_csv: target column {column!r} of {file} mixes numbers ({cell!r} on line {line}) and text "
            f"({text!r} on line {text_line}). Fix the odd values (a missing-value marker?) so that the "
            "labels are all text or all numbers."
        )
    if task == "regression":
        raise InputError(
            f"from_csv: task='regression' needs numeric targets, but column {column!r} of {file} holds text "
            f"({cells[0][1]!r} on line {cells[0][0]})."
        )
    class_names = sorted({cell for _, cell in cells})
    index = {label: i for i, label in enumerate(class_names)}
    return np.array([index[cell] for _, cell in cells], dtype=np.int64), class_names


def from_npz(
    path: str | Path,
    *,
    x_key: str = "x",
    y_key: str = "y",
    name: str | None = None,
    task: Task | None = None,
    tokens: bool = False,
) -> Dataset:
    """Read arrays `x_key` and `y_key` from an .npz archive (as written by ``np.savez``).

    The file is opened with ``allow_pickle=False``: a pickle can run code when
    loaded, so trainlab never unpickles a file. Arrays are converted as in
    `from_arrays` (which `task` and `tokens` are passed to).

    Raises:
        InputError: a missing file, a file that is not an .npz archive, a
            missing key (the message lists the keys), or a pickled object array.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "data.npz")
        >>> np.savez(path, x=np.eye(3), y=np.array([0, 1, 1]))
        >>> from_npz(path)
        Dataset('data': 3 samples x 3 features, classification, 2 classes)
    """
    file = _existing_file(path, "from_npz")
    never = ("trainlab reads plain numeric arrays only and never unpickles a file, since loading a "
             "pickle can run arbitrary code")
    try:
        archive = np.load(file, allow_pickle=False)
    except ValueError as error:
        raise InputError(
            f"from_npz: {file} is not an .npz archive of arrays; it may be a pickle ({never}). "
            "Save the data with np.savez(path, x=x, y=y)."
        ) from error
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"from_npz: {file} could not be read as an .npz archive ({error}).") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(
            f"from_npz: {file} holds a single array (an .npy file), not an .npz archive with "
            f"'{x_key}' and '{y_key}'. Save both with np.savez(path, {x_key}=x, {y_key}=y)."
        )
    with archive:
        arrays = {}
        for key in (x_key, y_key):
            if key not in archive.files:
                raise InputError(
                    f"from_npz: {file} has no array '{key}'. "
                    f"Arrays in it: {', '.join(archive.files) or '(none)'}."
                    f"{did_you_mean(key, archive.files)} Choose them with x_key= and y_key=."
                )
            try:
                arrays[key] = archive[key]
            except ValueError as error:
                raise InputError(
                    f"from_npz: array '{key}' in {file} is an object array, stored as a pickle; {never}. "
                    f"Save it as numbers, e.g. np.savez(path, {key}=np.asarray({key}, dtype=np.float32))."
                ) from error
    return _make(arrays[x_key], arrays[y_key], name=name if name is not None else file.stem,
                 task=task, num_classes=None, tokens=tokens)


def _existing_file(path: Any, caller: str) -> Path:
    if not isinstance(path, (str, Path)):
        raise InputTypeError(f"{caller}: path must be a str or Path, got {type(path).__name__} {path!r}")
    file = Path(path)
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise InputError(f"{caller}: file '{file}' {what} (looked in {Path.cwd()} for relative paths).")
    return file


_FILE_SETTINGS = {
    ".csv": ("target", "header", "name", "task"),
    ".npz": ("x_key", "y_key", "name", "task", "tokens"),
}


def as_dataset(obj: Any, *, source: str | None = None) -> Dataset:
    """The Dataset a user described, in any of the forms a spec or a caller may use.

    Accepted: a Dataset (returned as is); a registered name (``"iris"``); a
    path (str or Path) ending in .csv or .npz; a mapping with a ``name`` and
    settings (``{"name": "synthetic", "num_samples": 500}``) or with a ``path``
    and reader settings (``{"path": "data.csv", "target": "label"}``); a tuple
    ``(x, y)`` of arrays (see `from_arrays`).

    Args:
        obj: the description.
        source: where it came from (e.g. ``"--data"``), named in error messages.

    Example:
        >>> as_dataset({"name": "synthetic", "num_samples": 500}).x.shape
        torch.Size([500, 20])
        >>> as_dataset(([[0.0], [1.0]], [0, 1])).task
        'classification'
    """
    origin = f" (from {source})" if source else ""
    if isinstance(obj, Dataset):
        return obj
    if isinstance(obj, Path) or (isinstance(obj, str) and Path(obj).suffix):
        return _read_file(obj, {}, origin)
    if isinstance(obj, str):
        return _expect_dataset(DATASETS.build(obj, source=source))
    if isinstance(obj, Mapping):
        if "path" in obj:
            settings = {k: v for k, v in obj.items() if k != "path"}
            return _read_file(obj["path"], settings, origin)
        return _expect_dataset(DATASETS.build(obj, source=source))
    if isinstance(obj, tuple):
        if len(obj) != 2:
            raise InputError(f"a data set given as a tuple must be (x, y){origin}, got {len(obj)} items.")
        return from_arrays(obj[0], obj[1])
    raise InputTypeError(
        f"cannot make a data set from {type(obj).__name__}{origin}. Pass a data set name "
        f"({', '.join(DATASETS.names())}), a .csv or .npz path, a mapping such as "
        "{'name': 'synthetic', 'num_samples': 500}, a tuple (x, y), or a Dataset."
    )


def _expect_dataset(data: Any) -> Dataset:
    if not isinstance(data, Dataset):  # a loader registered by someone else returned something else
        raise TypeError(f"a dataset loader returned {type(data).__name__}, expected a Dataset")
    return data


def _read_file(path: Any, settings: Mapping[str, Any], origin: str) -> Dataset:
    if not isinstance(path, (str, Path)):
        raise InputTypeError(f"a data file path must be a string{origin}, got {type(path).__name__} {path!r}")
    suffix = Path(path).suffix.lower()
    if suffix not in _FILE_SETTINGS:
        raise InputError(
            f"cannot read '{path}'{origin}: trainlab reads .csv and .npz files, or a bundled data set by "
            f"name ({', '.join(DATASETS.names())})."
        )
    allowed = _FILE_SETTINGS[suffix]
    for key in settings:
        if key not in allowed:
            raise InputError(
                f"a {suffix} data file has no setting '{key}'{origin}. Settings: {', '.join(allowed)}."
                f"{did_you_mean(key, allowed)}"
            )
    if not Path(path).is_file():
        stem = Path(path).stem
        hint = (f" To use the bundled data set, write its name alone: '{stem}'." if stem in DATASETS
                else " Check the path.")
        raise InputError(
            f"data file '{path}'{origin} does not exist; relative paths start in {Path.cwd()}.{hint}"
        )
    reader = from_csv if suffix == ".csv" else from_npz
    return reader(path, **settings)


# --------------------------------------------------------------------------- validation split


def split_validation(
    x: Tensor, y: Tensor, *, fraction: float, stratify: bool = False, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Hold out a validation part: returns (x_train, y_train, x_val, y_val).

    Without `stratify` this is Keras's ``fit(validation_split=fraction)``: the
    LAST part of the rows, in order, with nothing shuffled;
    ``split_at = floor(n * (1 - fraction))`` rows train. It is deterministic and
    `seed` is unused, but data sorted by label gives a validation part of one
    class (a warning says so). With ``stratify=True`` it is scikit-learn's
    ``train_test_split(test_size=fraction, stratify=labels, random_state=seed)``:
    SHUFFLED, and every class keeps its proportion in both parts (the validation
    part has ``ceil(n * fraction)`` rows, scikit-learn's rounding).

    The non-stratified parts are views of x and y (no copy).

    Args:
        x: inputs, one row per sample.
        y: labels or targets, one per row. For stratify: int labels, or one-hot rows.
        fraction: the validation share, in (0, 1).
        stratify: keep class proportions (classification only); shuffles.
        seed: random_state for the stratified shuffle.

    Raises:
        InputError: fraction outside (0, 1); a part would be empty; stratify
            with regression targets or with too few samples of a class.

    Example:
        >>> x, y = torch.arange(10.0).reshape(5, 2), torch.tensor([0, 1, 0, 1, 0])
        >>> x_train, y_train, x_val, y_val = split_validation(x, y, fraction=0.4)
        >>> y_train.tolist(), y_val.tolist()
        ([0, 1, 0], [1, 0])
    """
    check.in_range("validation_split", fraction, 0, 1, open_low=True, open_high=True,
                   hint="It is the share of the samples held out for validation, e.g. 0.2.")
    for which, value in (("x", x), ("y", y)):
        if not isinstance(value, Tensor):
            raise InputTypeError(
                f"split_validation: {which} must be a torch.Tensor, got {type(value).__name__}. "
                "Use from_arrays(x, y) to convert arrays."
            )
    n = int(x.shape[0]) if x.ndim else 0
    if y.ndim == 0 or y.shape[0] != n:
        raise InputError(
            f"split_validation: x has {n} rows but y has {y.shape[0] if y.ndim else 'none'}; they must match."
        )
    if stratify:
        return _stratified_split(x, y, fraction, seed)
    split_at = int(math.floor(n * (1.0 - fraction)))
    if split_at == 0 or split_at == n:
        raise InputError(_empty_part_message(n, fraction, split_at))
    x_train, y_train, x_val, y_val = x[:split_at], y[:split_at], x[split_at:], y[split_at:]
    _warn_if_sorted(y_train, y_val, fraction)
    return x_train, y_train, x_val, y_val


def _empty_part_message(n: int, fraction: float, split_at: int) -> str:
    empty = "training" if split_at == 0 else "validation"
    said = f"validation_split={fraction} leaves the {empty} part empty: {n} sample{'s' if n != 1 else ''}"
    if n < 2:
        return f"{said} cannot be split; a validation split needs at least 2 samples."
    # Rounded inwards so that the suggested bounds themselves give non-empty parts.
    low = math.ceil(1000 / n) / 1000
    high = math.floor(1000 * (n - 1) / n) / 1000
    return (f"{said} split at row {split_at} (floor({n} * (1 - {fraction}))). To keep at least one sample "
            f"in each part use a validation_split between {low:g} and {high:g}, or more data.")


def _stratified_split(
    x: Tensor, y: Tensor, fraction: float, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    _check_seed("split_validation", seed)
    if y.is_floating_point() and y.ndim == 2:
        labels = y.argmax(1)
    elif not y.is_floating_point() and y.ndim == 1:
        labels = y
    else:
        raise InputError(
            f"split_validation: stratify=True needs class labels (int, shape (n,)) or one-hot rows, got y "
            f"of dtype {y.dtype} and shape {tuple(y.shape)}; regression targets have no classes to "
            "stratify. Use stratify=False."
        )
    from sklearn.model_selection import train_test_split

    n = len(labels)
    try:
        train_at, val_at = train_test_split(
            np.arange(n), test_size=fraction, stratify=labels.cpu().numpy(), random_state=seed
        )
    except ValueError as error:
        num_classes = len(torch.unique(labels))
        raise InputError(
            f"split_validation: a stratified validation_split={fraction} of {n} samples in {num_classes} "
            f"classes is not possible: {error} Each class needs at least 2 samples, and the validation "
            "part at least one sample per class; use more data, a larger validation_split, or stratify=False."
        ) from error
    train_index = torch.as_tensor(train_at, device=x.device)
    val_index = torch.as_tensor(val_at, device=x.device)
    return x[train_index], y[train_index.to(y.device)], x[val_index], y[val_index.to(y.device)]


def _warn_if_sorted(y_train: Tensor, y_val: Tensor, fraction: float) -> None:
    """Warn when the last-rows split seems to cut data sorted by label (valid, but probably a mistake)."""
    if y_train.is_floating_point() or y_train.ndim != 1:
        return
    train_classes = set(torch.unique(y_train).tolist())
    val_classes = set(torch.unique(y_val).tolist())
    unseen = sorted(val_classes - train_classes)
    if unseen:
        problem = f"holds class(es) {unseen} that never occur in the training part"
    elif len(val_classes) == 1 and len(train_classes) > 1 and len(y_val) >= 10:
        problem = f"holds only class {next(iter(val_classes))}"
    else:
        return
    warnings.warn(
        f"split_validation: the validation part (the last {fraction:g} of the rows) {problem}; the rows "
        "look sorted by label. Shuffle the data first, or pass stratify=True.",
        UserWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------- scaling

_S = TypeVar("_S", bound="_AffineScaler")


@runtime_checkable
class Scaler(Protocol):
    """Anything that learns a feature scaling from training inputs and applies it."""

    name: str

    def fit(self, x: Tensor) -> Any: ...

    def transform(self, x: Tensor) -> Tensor: ...

    def to_dict(self) -> dict[str, Any]: ...


SCALERS: Registry[Any] = Registry("scaler")


class _AffineScaler:
    """Per-feature ``(x - shift) / scale``, with shift and scale learned by `_stats`.

    Stats are computed in float64 on the CPU (exact in JSON, and fine on devices
    without float64) and cached per device and dtype for `transform`.
    """

    name = ""
    shift_key = "shift"
    scale_key = "scale"

    def __init__(self) -> None:
        self.shift: Tensor | None = None
        self.scale: Tensor | None = None
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    @property
    def fitted(self) -> bool:
        return self.shift is not None

    def fit(self: _S, x: Tensor) -> _S:
        """Learn the per-feature statistics from `x` (the training part only), and return self."""
        self._check_input(x, "fit")
        if x.shape[0] == 0:
            raise InputError(f"{self.name}: cannot fit on 0 rows.")
        _check_finite(x, "x", f"{self.name}: fit")
        values = x.detach().to("cpu", torch.float64)
        low, high = values.amin(0), values.amax(0)
        shift, scale = self._stats(values, low, high)
        self._set(shift, torch.where(low == high, torch.ones_like(scale), scale))
        return self

    def transform(self, x: Tensor) -> Tensor:
        """``(x - shift) / scale`` per feature, in x's dtype and on x's device."""
        self._check_input(x, "transform")
        if self.shift is None or self.scale is None:
            raise InputError(
                f"{self.name}: transform called before fit; fit it on the training inputs first."
            )
        if tuple(x.shape[1:]) != tuple(self.shift.shape):
            raise InputError(
                f"{self.name}: fitted on samples of shape {tuple(self.shift.shape)}, got x of shape "
                f"{tuple(x.shape)}. Scale data with the same features as the training data."
            )
        key = (x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = (self.shift.to(x.device, x.dtype), self.scale.to(x.device, x.dtype))
        shift, scale = self._cache[key]
        return (x - shift) / scale

    def fit_transform(self, x: Tensor) -> Tensor:
        """`fit` on x, then `transform` x."""
        return self.fit(x).transform(x)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: the name, and the statistics as (nested) lists of floats once fitted."""
        state: dict[str, Any] = {"name": self.name}
        if self.shift is not None and self.scale is not None:
            state[self.shift_key] = self.shift.tolist()
            state[self.scale_key] = self.scale.tolist()
        return state

    def load_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `to_dict` wrote."""
        keys = {self.shift_key, self.scale_key}
        present = keys & set(state)
        extra = set(state) - keys - {"name"}
        if extra or len(present) == 1:
            raise InputError(
                f"scaler '{self.name}' state must hold 'name' and either no statistics or both "
                f"'{self.shift_key}' and '{self.scale_key}', got keys {sorted(state)}."
            )
        if not present:
            return
        try:
            shift = torch.tensor(state[self.shift_key], dtype=torch.float64)
            scale = torch.tensor(state[self.scale_key], dtype=torch.float64)
        except (TypeError, ValueError) as error:
            raise InputError(
                f"scaler '{self.name}' state: statistics must be lists of numbers ({error})."
            ) from error
        if shift.shape != scale.shape or shift.ndim == 0:
            raise InputError(
                f"scaler '{self.name}' state: '{self.shift_key}' and '{self.scale_key}' must be lists of the "
                f"same shape, got {tuple(shift.shape)} and {tuple(scale.shape)}."
            )
        finite = bool(torch.isfinite(shift).all()) and bool(torch.isfinite(scale).all())
        if not (finite and bool((scale > 0).all())):
            raise InputError(
                f"scaler '{self.name}' state: statistics must be finite and '{self.scale_key}' > 0."
            )
        self._set(shift, scale)

    def _set(self, shift: Tensor, scale: Tensor) -> None:
        self.shift, self.scale, self._cache = shift, scale, {}

    def _check_input(self, x: Any, step: str) -> None:
        if not isinstance(x, Tensor):
            raise InputTypeError(f"{self.name}: {step} needs a torch.Tensor, got {type(x).__name__}.")
        if not x.is_floating_point():
            raise InputTypeError(
                f"{self.name}: cannot scale {x.dtype} input; only float features are scaled. Integer inputs "
                "are token ids for Embedding layers: use scaler 'none' (or no scaler) for them."
            )
        if x.ndim < 2:
            raise InputError(
                f"{self.name}: x must have one row per sample, shape (num_samples, num_features, ...), "
                f"got {tuple(x.shape)}."
            )

    def _stats(self, values: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        state = f"{tuple(self.shift.shape)} features" if self.shift is not None else "not fitted"
        return f"{type(self).__name__}({state})"


class Standardize(_AffineScaler):
    """Per feature: subtract the training mean, divide by the training standard deviation.

    Gradient descent converges faster when inputs are centred and on one scale
    (LeCun et al., "Efficient BackProp", 1998). The standard deviation is the
    population one (ddof=0), as in scikit-learn's StandardScaler. A feature that
    is constant in the training part is centred and left with scale 1, so it
    becomes exactly 0 there instead of 0/0.

    Example:
        >>> x = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
        >>> Standardize().fit_transform(x).tolist()
        [[-1.0, 0.0], [1.0, 0.0]]
    """

    name = "standardize"
    shift_key = "mean"
    scale_key = "std"

    def _stats(self, values: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        # In float64 the mean of a constant float32 feature is its value exactly, so it centres to 0.
        return values.mean(0), values.std(0, correction=0)


class MinMax(_AffineScaler):
    """Per feature: map the training minimum to 0 and the training maximum to 1.

    Puts every feature in the same bounded range whatever its units, e.g. for
    pixel intensities; one outlier squeezes the other values of its feature
    together. Values outside the training range map outside [0, 1]. A feature
    that is constant in the training part maps to 0.

    Example:
        >>> MinMax().fit_transform(torch.tensor([[0.0, 7.0], [4.0, 7.0], [2.0, 7.0]])).tolist()
        [[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]]
    """

    name = "minmax"
    shift_key = "min"
    scale_key = "range"

    def _stats(self, values: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        return low, high - low


class NoScaling:
    """The identity: inputs are used as they are (e.g. already scaled, or int64 token ids).

    Example:
        >>> x = torch.tensor([[1, 2]])
        >>> NoScaling().fit(x).transform(x) is x
        True
    """

    name = "none"
    fitted = True

    def fit(self, x: Tensor) -> NoScaling:
        return self

    def transform(self, x: Tensor) -> Tensor:
        return x

    def fit_transform(self, x: Tensor) -> Tensor:
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def load_dict(self, state: Mapping[str, Any]) -> None:
        extra = set(state) - {"name"}
        if extra:
            raise InputError(f"scaler 'none' state holds only 'name', got extra keys {sorted(extra)}.")

    def __repr__(self) -> str:
        return "NoScaling()"


@SCALERS.register(
    "standardize",
    summary="Per feature: subtract the training mean, divide by the training std "
    "(constant features: scale 1).",
    claim="Centred, unit-variance inputs make the loss surface better conditioned, so gradient descent "
    "converges faster than on raw features of mixed scales.",
)
def standardize() -> Standardize:
    """An unfitted `Standardize` scaler."""
    return Standardize()


@SCALERS.register(
    "minmax",
    summary="Per feature: map the training range to [0, 1] (constant features map to 0).",
    claim="Bounded inputs in [0, 1] on the training data, whatever the units of each feature.",
)
def minmax() -> MinMax:
    """An unfitted `MinMax` scaler."""
    return MinMax()


@SCALERS.register(
    "none",
    summary="No scaling: inputs are used as they are.",
    claim="The baseline: what the network sees is exactly the data given.",
)
def none() -> NoScaling:
    """The identity scaler."""
    return NoScaling()


def scaler(spec: Any, *, source: str | None = None) -> Any:
    """Build an (unfitted) scaler from a name, ``{"name": ...}``, or a scaler object; None gives None.

    Example:
        >>> scaler("minmax")
        MinMax(not fitted)
        >>> scaler(None) is None
        True
    """
    if spec is None:
        return None
    built = SCALERS.build(spec, source=source)
    if not isinstance(built, Scaler) or isinstance(built, type):
        origin = f" (from {source})" if source else ""
        raise InputTypeError(
            f"a scaler must be a name ({', '.join(SCALERS.names())}), a mapping with a 'name', or an object "
            f"with fit, transform and to_dict{origin}; got {type(spec).__name__} {spec!r}."
        )
    return built


def scaler_from_dict(state: Mapping[str, Any]) -> Any:
    """Rebuild a (fitted) scaler from `to_dict` output, e.g. read back from model.json.

    Example:
        >>> fitted = scaler("standardize").fit(torch.tensor([[0.0], [2.0]]))
        >>> scaler_from_dict(fitted.to_dict()).transform(torch.tensor([[4.0]])).tolist()
        [[3.0]]
    """
    if not isinstance(state, Mapping):
        raise InputTypeError(f"scaler state must be a mapping (from to_dict), got {type(state).__name__}")
    if "name" not in state:
        raise InputError(f"scaler state needs a 'name' key, got keys {sorted(state)}.")
    built = SCALERS.get(state["name"], source="scaler state")()
    built.load_dict(state)
    return built
