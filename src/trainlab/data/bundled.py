"""The bundled data sets: scikit-learn's small real ones (offline) and generated ones.

`DATASETS` is the registry of data sets by name; `load(name)` makes one and
`describe_datasets` lists them for `trainlab datasets`. Another module adds
names by registering into `DATASETS` (``@DATASETS.register("name", summary=...,
claim=...)``) and being imported from `trainlab.data`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from trainlab import check
from trainlab.data.dataset import Dataset, Task, _check_seed, _expect_dataset
from trainlab.errors import InputError, InputTypeError
from trainlab.registry import Registry

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
        known = entry.capabilities.get("describe")
        if known is None:
            data = entry.factory()
            known = {"samples": len(data), "features": data.num_features, "task": data.task,
                     "classes": data.num_classes}
        rows.append({"name": entry.name, **known, "summary": entry.summary, "claim": entry.claim})
    return rows
