"""Data given in batches: Python generators, iterables of ``(x, y)``, torch Datasets and DataLoaders.

The engine trains on tensors held on the device (batches are index slices),
so data given in batches is gathered into two tensors when that trains on
exactly the batches the user's own loop would see:

- a `torch.utils.data.TensorDataset`, or a DataLoader over one, is its tensors
  (the fast path); the DataLoader's `batch_size` and shuffling are kept (a
  shuffling loader is shuffled by trainlab's seeded permutation instead of
  torch's sampler);
- a re-iterable (a list of batches, a DataLoader over another Dataset) is read
  once per epoch in Keras: its batches are read once and kept;
- a generator with `steps_per_epoch` gives epoch e the batches
  ``e * steps_per_epoch ...`` as Keras reads them; they are drawn for every
  epoch and kept when each epoch gets the same batches (a generator that loops
  over its data). A generator whose batches change from epoch to epoch
  (augmentation, reshuffling) is refused with an error rather than trained on
  other data than it gives.

Batches must all have the size of the first except the last of an epoch, so
that slicing the gathered rows reproduces them. Keras does not shuffle
generators; neither does trainlab. Validation batches (`validation_steps` of
them, or all) are read once and used at the end of every epoch.

Example:
    >>> import numpy as np
    >>> x = np.arange(12, dtype="float32").reshape(6, 2); y = np.arange(6) % 2
    >>> def batches():
    ...     while True:
    ...         for i in range(0, 6, 4):
    ...             yield x[i:i + 4], y[i:i + 4]
    >>> gathered = gather(batches(), steps_per_epoch=2, num_epochs=3, where="fit")
    >>> tuple(gathered.x.shape), gathered.batch_size
    ((6, 2), 4)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

from trainlab.errors import InputError, InputTypeError

__all__ = ["Gathered", "from_torch", "gather", "is_batch_stream"]


@dataclass(frozen=True)
class Gathered:
    """Tensors gathered from batched data, with the batch size and shuffling they imply."""

    x: Tensor
    y: Tensor | None
    batch_size: int | None = None
    shuffle: bool | None = None


def from_torch(data: Any, *, where: str) -> Gathered | None:
    """A TensorDataset or a DataLoader over one as its tensors; None for anything else."""
    loader = data if isinstance(data, DataLoader) else None
    dataset = loader.dataset if loader is not None else data
    if not isinstance(dataset, TensorDataset):
        return None
    tensors = dataset.tensors
    if len(tensors) not in (1, 2):
        raise InputError(f"{where}: a TensorDataset must hold (x,) or (x, y), got {len(tensors)} tensors")
    x, y = tensors[0], tensors[1] if len(tensors) == 2 else None
    if loader is None:
        return Gathered(x, y)
    if loader.batch_size is None:
        raise InputError(f"{where}: a DataLoader with batch_size=None (a custom batch_sampler) cannot be "
                         "sliced; give it a batch_size")
    if loader.drop_last and x.shape[0] % loader.batch_size:
        raise InputError(
            f"{where}: drop_last=True would leave out {x.shape[0] % loader.batch_size} samples each epoch; "
            "trainlab trains on every sample. Use drop_last=False, or trim the data to whole batches."
        )
    return Gathered(x, y, loader.batch_size, isinstance(loader.sampler, RandomSampler))


def is_batch_stream(data: Any) -> bool:
    """Whether `data` gives batches ``(x, y)``: a generator, an iterator, a DataLoader, or a list of pairs."""
    if isinstance(data, (DataLoader, Iterator)):
        return True
    if isinstance(data, Dataset) and not isinstance(data, TensorDataset):
        return True
    if isinstance(data, list) and data and all(isinstance(b, tuple) and len(b) == 2 for b in data):
        return all(np.ndim(part) >= 1 for part in data[0])
    return False


def gather(data: Any, *, steps_per_epoch: int | None, num_epochs: int, where: str) -> Gathered:
    """The rows of `data` (batches of (x, y)) that training reads, as two tensors (see the module doc)."""
    if isinstance(data, Dataset) and not isinstance(data, (DataLoader, TensorDataset)):
        raise InputTypeError(
            f"{where}: a torch Dataset is read in batches through a DataLoader; pass "
            "`DataLoader(dataset, batch_size=...)`, or a TensorDataset for data in memory"
        )
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise InputError(f"{where}: steps_per_epoch must be an int >= 1, got {steps_per_epoch!r}")
    one_shot = isinstance(data, Iterator)
    shuffle = isinstance(data, DataLoader) and isinstance(data.sampler, RandomSampler)
    if steps_per_epoch is None:
        first = _pairs(iter(data), None, where)
        if one_shot and num_epochs > 1:
            raise InputError(
                f"{where}: a generator that ends gives one epoch of data, but {num_epochs} epochs were asked "
                "for. Pass steps_per_epoch= with a generator that repeats (`while True: ...`), or a list of "
                "batches or a DataLoader, which are read again each epoch."
            )
        return _stack(first, where, shuffle)
    stream = _Stream(data, one_shot, where)
    first = _pairs(stream, steps_per_epoch, where)
    for epoch in range(1, num_epochs):
        again = _pairs(stream, steps_per_epoch, where)
        if not _same(first, again):
            raise InputError(
                f"{where}: the generator gives epoch {epoch + 1} other batches than epoch 1 (it shuffles, "
                "augments, or steps_per_epoch is not its length). trainlab trains on tensors in memory and "
                "would not see those batches: pass the arrays with shuffle=True (and augmentation in the "
                "recipe), or make steps_per_epoch the number of batches of one pass."
            )
    return _stack(first, where, shuffle)


class _Stream:
    """Keras's epoch iterator with steps_per_epoch: one iterator across epochs, restarted when exhausted."""

    def __init__(self, data: Iterable[Any], one_shot: bool, where: str) -> None:
        self.data, self.one_shot, self.where = data, one_shot, where
        self.iterator = iter(data)

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        try:
            return next(self.iterator)
        except StopIteration:
            if self.one_shot:
                raise InputError(
                    f"{self.where}: the generator ran out of data before steps_per_epoch * epochs batches; "
                    "make it repeat (`while True: ...`) or lower steps_per_epoch"
                ) from None
            self.iterator = iter(self.data)
            return next(self.iterator)


def _pairs(iterator: Iterable[Any], count: int | None, where: str) -> list[tuple[Tensor, Tensor | None]]:
    out: list[tuple[Tensor, Tensor | None]] = []
    for batch in iterator:
        out.append(_pair(batch, where, len(out)))
        if count is not None and len(out) == count:
            break
    if not out:
        raise InputError(f"{where}: the data gave no batches")
    return out


def _pair(batch: Any, where: str, index: int) -> tuple[Tensor, Tensor | None]:
    if isinstance(batch, (Tensor, np.ndarray)):
        return _tensor(batch), None  # inputs only (predict)
    if isinstance(batch, (list, tuple)) and len(batch) in (1, 2):
        x = _tensor(batch[0])
        y = _tensor(batch[1]) if len(batch) == 2 else None
        return x, y
    if isinstance(batch, (list, tuple)) and len(batch) == 3:
        raise InputError(f"{where}: batch {index} is (x, y, sample_weight); sample weights from batches are not "
                         "supported, pass sample_weight= with arrays")
    raise InputError(f"{where}: each batch must be a pair (x, y), got {type(batch).__name__} for batch {index}")


def _tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))


def _same(a: list[tuple[Tensor, Tensor | None]], b: list[tuple[Tensor, Tensor | None]]) -> bool:
    def equal(s: Tensor | None, t: Tensor | None) -> bool:
        if s is None or t is None:
            return s is t
        return s.shape == t.shape and bool(torch.equal(s, t))

    return all(equal(xa, xb) and equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def _stack(batches: list[tuple[Tensor, Tensor | None]], where: str, shuffle: bool) -> Gathered:
    size = batches[0][0].shape[0]
    for i, (x, _) in enumerate(batches[:-1]):
        if x.shape[0] != size:
            raise InputError(
                f"{where}: batch {i} has {x.shape[0]} samples but batch 0 has {size}; every batch but the last "
                "of an epoch must have the same size"
            )
    if batches[-1][0].shape[0] > size:
        raise InputError(f"{where}: the last batch has more samples ({batches[-1][0].shape[0]}) than the first "
                         f"({size})")
    x = torch.cat([b[0] for b in batches])
    ys = [b[1] for b in batches]
    y = None if any(t is None for t in ys) else torch.cat([t for t in ys if t is not None])
    return Gathered(x, y, size, shuffle)
