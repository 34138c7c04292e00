"""Data given in batches: torch Datasets and DataLoaders, Python generators, iterables of ``(x, y)``.

Which way the engine reads them:

- a `torch.utils.data.TensorDataset`, or a DataLoader over one, is its tensors:
  they go onto the device and through the fast in-memory path (batches are
  index slices). The DataLoader's `batch_size` and shuffling are kept (a
  shuffling loader is shuffled by trainlab's seeded permutation instead of
  torch's sampler);
- anything else is streamed (`trainlab.engine.source`): a DataLoader over any
  other Dataset (its workers, sampler and collate function as given), a bare
  torch Dataset (read through ``DataLoader(dataset, batch_size, shuffle)``), a
  generator or an iterable of ``(x, y)`` or ``(x, y, sample_weight)`` batches.
  Nothing is gathered into memory. Keras 3's semantics: with
  `steps_per_epoch` an epoch draws that many batches from one iterator that
  continues across epochs; without it an epoch is one pass (a DataLoader is
  iterated again each epoch, a generator until it ends).

Keras does not shuffle generators; neither does trainlab.

Example:
    >>> import numpy as np
    >>> x = np.arange(12, dtype="float32").reshape(6, 2); y = np.arange(6) % 2
    >>> def batches():
    ...     while True:
    ...         for i in range(0, 6, 4):
    ...             yield x[i:i + 4], y[i:i + 4]
    >>> source = as_source(batches(), steps_per_epoch=2, num_epochs=3, where="fit")
    >>> [tuple(b[0].shape) for b in source.epoch()]
    [(4, 2), (2, 2)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, TensorDataset

from trainlab.engine.source import BatchSource
from trainlab.errors import InputError

__all__ = ["Gathered", "as_source", "from_torch", "is_batch_stream"]


@dataclass(frozen=True)
class Gathered:
    """Tensors of an in-memory torch data set, with the batch size and shuffling its DataLoader implies."""

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
    """Whether `data` gives batches: a generator, an iterator, a DataLoader, a torch Dataset other
    than a TensorDataset, or a list of ``(x, y)`` pairs."""
    if isinstance(data, (DataLoader, Iterator)):
        return True
    if isinstance(data, (Dataset, IterableDataset)) and not isinstance(data, TensorDataset):
        return True
    if isinstance(data, list) and data and all(isinstance(b, tuple) and len(b) in (2, 3) for b in data):
        return all(np.ndim(part) >= 1 for part in data[0])
    return False


def as_source(data: Any, *, steps_per_epoch: int | None, num_epochs: int, where: str,
              batch_size: int | None = None, shuffle: bool = False, tokens: bool = False) -> BatchSource:
    """The batch source that streams `data` (see the module docstring).

    A bare torch Dataset is read through ``DataLoader(dataset, batch_size or 32, shuffle)``;
    a DataLoader keeps its own batch size (`batch_size`, when given, must agree).

    Raises:
        InputError: a generator that ends is asked for more than one epoch without
            `steps_per_epoch`, or `batch_size` contradicts the DataLoader's.
    """
    if isinstance(data, DataLoader):
        if batch_size is not None and data.batch_size is not None and batch_size != data.batch_size:
            raise InputError(f"{where}: batch_size={batch_size} but the DataLoader gives batches of "
                             f"{data.batch_size}; leave batch_size out when the data gives batches")
    elif isinstance(data, (Dataset, IterableDataset)) and not isinstance(data, Iterator):
        data = DataLoader(data, batch_size=batch_size or 32,
                          shuffle=shuffle and not isinstance(data, IterableDataset))
    elif batch_size is not None and where == "fit":
        raise InputError(f"{where}: batch_size={batch_size} was given, but a generator or a list of batches "
                         "gives its own batches; leave batch_size out")
    source = BatchSource(data, steps_per_epoch=steps_per_epoch, where=where, tokens=tokens)
    if source.one_shot and steps_per_epoch is None and num_epochs > 1:
        raise InputError(
            f"{where}: a generator that ends gives one epoch of data, but {num_epochs} epochs were asked "
            "for. Pass steps_per_epoch= with a generator that repeats (`while True: ...`), or a list of "
            "batches or a DataLoader, which are read again each epoch."
        )
    return source
