"""Callbacks that record a run as it goes, or end it when it breaks: CSVLogger, TensorBoard, TerminateOnNaN.

Keras 3's names, arguments and file layouts, so that logs written by a trainlab
run read like a Keras run's: one CSV row per epoch; TensorBoard event files
under ``log_dir/train`` and ``log_dir/validation`` with ``epoch_<key>`` scalars.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor, nn

from trainlab import check
from trainlab.callbacks import Callback
from trainlab.errors import InputError, InputTypeError


class TerminateOnNaN(Callback):
    """Ask training to stop at the first batch whose loss is NaN or infinite (Keras 3).

    The loop itself already stops after an epoch whose mean loss is not finite;
    this callback finds the first bad batch, and names it in the stop reason
    (``history.stop_reason``). Asked for from a batch hook, the stop takes
    effect after that batch, as in Keras 3.

    Its price: reading each batch's loss makes the loop wait for the device at
    every batch, where it otherwise waits once per epoch. On a GPU that can
    cost a good part of the speed; on the CPU it costs little. After the first
    bad batch it reads no more values.

    Example:
        >>> import torch
        >>> from trainlab.callbacks import CallbackList, RunState
        >>> model = torch.nn.Linear(1, 1)
        >>> run = RunState(model=model, num_epochs=1, steps_per_epoch=3)
        >>> callbacks = CallbackList([TerminateOnNaN()], model=model, run=run, params={})
        >>> for batch, loss in enumerate([0.5, float("nan"), 0.4]):
        ...     callbacks.on_batch_end(batch, {"loss": torch.tensor(loss)})
        >>> run.stop_reason
        'the loss became nan at batch 2/3 of epoch 1 (step 2); training stops after this batch'
    """

    def __init__(self) -> None:
        self._stopped = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._stopped = False

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._stopped:
            return
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        value = float(loss)  # the one wait for the device, per batch
        if math.isfinite(value):
            return
        self._stopped = True
        epoch, step = self.run.epoch, self.run.step + batch + 1
        self.run.request_stop(f"the loss became {value} at batch {batch + 1}/{self.run.steps_per_epoch} "
                              f"of epoch {epoch + 1} (step {step}); training stops after this batch")


def _csv_value(value: Any) -> Any:
    """A log value as Keras writes it to CSV: scalars as they are, sequences as "[a, b]"."""
    if isinstance(value, Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return f"[{', '.join(map(str, value))}]"
    return value


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` first, then every log key in sorted order (Keras 3).

    The header comes from the first epoch's logs and is written once. With
    ``append=True`` an existing file is continued: its header is kept (and not
    written again), and rows follow its columns, so a resumed run adds its
    epochs under the ones already there. The file is flushed after each row,
    so a killed run keeps every finished epoch. Epochs are numbered from 0, as
    in Keras. Floats are written with full precision (``repr``), so the values
    read back equal the history's.

    Args:
        filename: path of the CSV file; its folder is created if missing.
        separator: the column separator, one character.
        append: continue an existing file instead of overwriting it.

    Example:
        >>> import tempfile, pathlib
        >>> from trainlab.callbacks import drive_epochs
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
        >>> drive_epochs(CSVLogger(path), {"loss": [0.5, 0.25], "lr": [0.1, 0.1]})
        >>> print(path.read_text(), end="")
        epoch,loss,lr
        0,0.5,0.1
        1,0.25,0.1
    """

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        if not isinstance(filename, (str, os.PathLike)):
            raise InputTypeError(
                f"CSVLogger.filename must be a path, got {type(filename).__name__} {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise InputError(
                f"CSVLogger.separator must be one character such as ',' or ';', got {separator!r}")
        if not isinstance(append, bool):
            raise InputTypeError(f"CSVLogger.append must be True or False, got {append!r}")
        self.filename = Path(filename)
        self.sep, self.append = separator, append
        self.keys: list[str] | None = None
        self._file: TextIO | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._existing: list[str] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._close()
        self.keys, self._writer, self._existing = None, None, None
        if self.append and self.filename.exists():
            with self.filename.open(newline="") as f:
                header = next(csv.reader(f, delimiter=self.sep), None)
            self._existing = header or None
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.filename.open("a" if self.append else "w", newline="")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self._file is None:
            raise InputError("CSVLogger received an epoch before training began; its file is not open. "
                             "Pass it in callbacks= to fit, which calls on_train_begin first.")
        if self._writer is None:
            self.keys = sorted(logs)
            fieldnames = ["epoch", *self.keys]
            if self._existing is not None:
                if self._existing != fieldnames:
                    warnings.warn(
                        f"CSVLogger is appending to {self.filename}, whose columns "
                        f"({', '.join(self._existing)}) differ from this run's ({', '.join(fieldnames)}); "
                        "rows follow the file's columns: missing values are written as NA and "
                        "other keys are left out.", stacklevel=2)
                fieldnames = self._existing
                self.keys = [k for k in fieldnames if k != "epoch"]
            self._writer = csv.DictWriter(self._file, fieldnames=fieldnames, delimiter=self.sep,
                                          extrasaction="ignore", lineterminator="\n")
            if self._existing is None:
                self._writer.writeheader()
        row = {"epoch": epoch, **{k: _csv_value(logs.get(k, "NA")) for k in self.keys or []}}
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._close()
        self._writer = None

    def _close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._file = None


def _summary_writer_class() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise InputError(
            "the TensorBoard callback needs the tensorboard package, which is not installed "
            f"({error}). Install it with: pip install 'trainlab[tensorboard]' (or pip install tensorboard)."
        ) from None
    return SummaryWriter


def _scalar(value: Any) -> float | None:
    if isinstance(value, Tensor):
        return float(value.item()) if value.numel() == 1 else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class TensorBoard(Callback):
    """Write the run's logs as TensorBoard event files (Keras 3 layout).

    Each epoch, every log key becomes a scalar at ``step = epoch``: training
    keys (loss, metrics, lr, ...) as ``epoch_<key>`` in ``log_dir/train``,
    validation keys as ``epoch_<key without val_>`` in ``log_dir/validation``,
    so TensorBoard draws the two curves of a metric on one chart. Event files
    are flushed each epoch, so a running or killed run can be watched with
    ``tensorboard --logdir <log_dir>``.

    With ``histogram_freq=N``, at the end of epochs 0, N, 2N, ... it writes a
    histogram of every parameter (``<name>/histogram``) and of its gradient on
    the epoch's last batch (``<name>/gradient``); the gradients are the ones
    the loop leaves on the parameters, so this costs no extra pass. With
    ``update_freq=K`` (or "batch" for 1) it also writes ``batch_loss`` every K
    optimizer steps, at ``step`` = steps done; each such point makes the loop
    wait for the device once. ``write_graph=True`` writes the model's graph
    (traced once, in eval mode, on one sample of the first batch, without
    touching the run's random state).

    Needs the ``tensorboard`` package (``pip install 'trainlab[tensorboard]'``).

    Args:
        log_dir: folder of the event files; ``train`` and ``validation`` go under it.
        histogram_freq: write weight and gradient histograms every this many epochs; 0 for never.
        write_graph: write the model graph once.
        update_freq: "epoch" for epoch scalars only, "batch" or an int K to also write the
            batch loss every K steps.

    Raises:
        InputError: if tensorboard is not installed, or for a negative histogram_freq or an
            update_freq other than "epoch", "batch" or an int >= 1.

    Example:
        >>> import tempfile
        >>> import trainlab
        >>> from trainlab.layers import Dense
        >>> log_dir = tempfile.mkdtemp()
        >>> model = trainlab.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
        >>> history = trainlab.fit(model, "iris", {"num_epochs": 2, "seed": 0},
        ...                        callbacks=[TensorBoard(log_dir, histogram_freq=1)])
        >>> sorted(p.name for p in Path(log_dir).iterdir())
        ['train', 'validation']
    """

    def __init__(self, log_dir: str | os.PathLike[str] = "logs", histogram_freq: int = 0,
                 write_graph: bool = False, update_freq: str | int = "epoch") -> None:
        self._writer_class = _summary_writer_class()
        if not isinstance(log_dir, (str, os.PathLike)):
            raise InputTypeError(
                f"TensorBoard.log_dir must be a path, got {type(log_dir).__name__} {log_dir!r}")
        check.int_at_least("TensorBoard.histogram_freq", histogram_freq, 0,
                           "It counts epochs between histograms; use 0 for none.")
        if not isinstance(write_graph, bool):
            raise InputTypeError(f"TensorBoard.write_graph must be True or False, got {write_graph!r}")
        if isinstance(update_freq, str):
            check.choice("TensorBoard.update_freq", update_freq, ("epoch", "batch"),
                         "Or give an int K to write the batch loss every K steps.")
        else:
            check.int_at_least("TensorBoard.update_freq", update_freq, 1,
                               "Or give 'epoch' for epoch scalars only.")
        self.log_dir = Path(log_dir)
        self.histogram_freq, self.write_graph = histogram_freq, write_graph
        self.update_freq: str | int = 1 if update_freq == "batch" else update_freq
        self._writers: dict[str, Any] = {}
        self._graph_input: Tensor | None = None
        self._graph_hooks: list[Any] = []

    def _writer(self, part: str) -> Any:
        if part not in self._writers:
            self._writers[part] = self._writer_class(log_dir=str(self.log_dir / part))
        return self._writers[part]

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._close()
        self._writer("train")
        self._graph_input = None
        if self.write_graph:
            self._capture_graph_input()

    def _capture_graph_input(self) -> None:
        # The loop may call the model's forward_logits instead of the model, so the first layer of a
        # trainlab Sequential is hooked too; whichever runs first keeps the input.
        def keep(module: nn.Module, args: tuple[Any, ...]) -> None:
            if self._graph_input is None and args and isinstance(args[0], Tensor):
                self._graph_input = args[0][:1].detach().clone()
            self._remove_graph_hooks()

        targets: list[nn.Module] = [self.model]
        layers = getattr(self.model, "layers", None)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            targets.append(layers[0])
        self._graph_hooks = [m.register_forward_pre_hook(keep) for m in targets]

    def _remove_graph_hooks(self) -> None:
        for handle in self._graph_hooks:
            handle.remove()
        self._graph_hooks = []

    def _write_graph(self) -> None:
        example, self._graph_input = self._graph_input, None
        if example is None:
            return
        was_training = self.model.training
        devices = [example.device] if example.device.type == "cuda" else []
        # Tracing runs the model once: in eval mode, no dropout draws or batch-norm updates, and in a
        # forked RNG, so the run stays bit-identical to one without the graph.
        with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.eval()
            try:
                self._writer("train").add_graph(self.model, example)
            except Exception as error:  # noqa: BLE001 - a model that cannot be traced still trains
                warnings.warn(f"TensorBoard could not trace the model's graph ({error}); "
                              "the graph is left out, scalars and histograms are written.", stacklevel=3)
            finally:
                self.model.train(was_training)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.update_freq == "epoch" or not logs:
            return
        step = self.run.step + batch + 1
        if step % int(self.update_freq) != 0:
            return
        writer = self._writer("train")
        for key, value in logs.items():
            if key == "size":
                continue
            scalar = _scalar(value)
            if scalar is not None:
                writer.add_scalar(f"batch_{key}", scalar, step)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.write_graph and self._graph_input is not None:
            self._write_graph()
        for key, value in (logs or {}).items():
            scalar = _scalar(value)
            if scalar is None:
                continue
            if key.startswith("val_"):
                self._writer("validation").add_scalar(f"epoch_{key[4:]}", scalar, epoch)
            else:
                self._writer("train").add_scalar(f"epoch_{key}", scalar, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._write_histograms(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _write_histograms(self, epoch: int) -> None:
        writer = self._writer("train")
        for name, param in self.model.named_parameters():
            writer.add_histogram(f"{name}/histogram", param.detach(), epoch)
            if param.grad is not None:
                writer.add_histogram(f"{name}/gradient", param.grad.detach(), epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._remove_graph_hooks()
        self._close()

    def _close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
