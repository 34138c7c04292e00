"""The validation split: Keras's last-rows split, or a stratified random one."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from trainlab import check
from trainlab.data.dataset import _check_seed
from trainlab.errors import InputError, InputTypeError

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
