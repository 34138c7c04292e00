"""Streamed batches: training on data that does not fit in memory, with Keras 3's epoch semantics.

In-memory tensors go through the fast path (`trainlab.engine.driver`: batches
are index slices of a permutation on the device). Anything else is a stream of
batches ``(x, y)`` or ``(x, y, sample_weight)``, read one at a time while
training, never gathered:

- a torch `DataLoader` (any Dataset, ``num_workers``, its own sampler and
  shuffling), or any re-iterable of batches (a list): one pass per epoch;
- a Python generator or iterator: read until it ends, or `steps_per_epoch`
  batches per epoch from the same iterator, continued across epochs;
- arrays with `steps_per_epoch` (`TensorBatches`): index slices of a seeded
  permutation per pass, as Keras iterates arrays.

`BatchSource` decides which batches make an epoch, as Keras 3's
``EpochIterator`` does: with `steps_per_epoch`, an epoch draws that many
batches from one iterator continued across epochs; a data set of known length
(a DataLoader) starts a new pass once a pass is used up, and an epoch that
reaches the end of a pass ends there, with Keras's "ran out of data" warning.
Without `steps_per_epoch`, an epoch is one pass: a DataLoader is iterated again
each epoch, a generator until it ends. A generator that runs out ends training
after that epoch, with the reason in ``History.stop_reason``.

`StreamStep` runs the same step body as in-memory training (`SoloStep.train_batch`):
batch transforms, gradient hooks, per-step schedules, callbacks, divergence
detection and checkpoints all apply. The batch after the current one is read
before ``on_batch_begin`` (as Keras reads a batch before calling it), so an
epoch of unknown length ends without a call for a batch that never came.

Resume. A checkpoint records where the stream stands: the states of the random
generators that decide a pass's order (the DataLoader's ``generator``, its
sampler's, and torch's global stream, which the run seeds from its own seed)
as they were when the current pass began, and how many batches of the pass
were read. A resumed run restores them, starts the pass again and skips to
that batch, so it sees the same batches as a run never interrupted (exact for
a DataLoader whose order comes from those generators, a list of batches, and
arrays). A Python generator cannot be rewound: a resumed run restores the
weights, optimizer, schedule, callbacks and epoch exactly, but its batches
are whatever the new generator yields, as after Keras's ``BackupAndRestore``;
trainlab warns when it resumes such a run.

Example:
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> loader = DataLoader(TensorDataset(torch.zeros(10, 2), torch.zeros(10)), batch_size=4)
    >>> source = BatchSource(loader, steps_per_epoch=2)
    >>> [len(list(source.epoch())) for _ in range(3)]   # 3 batches a pass, 2 an epoch
    [2, 1, 2]
"""

from __future__ import annotations

import math
import secrets
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab.callbacks import Callback, CallbackList, History, ProgressBar, RunState
from trainlab.checkpoint import STATE_FILE
from trainlab.engine.config import LoopConfig, Technique, class_weights_to_sample_weights
from trainlab.engine.evaluate import make_metrics, metric_logs, targets
from trainlab.engine.solo import SoloStep
from trainlab.engine.state import MemberState
from trainlab.errors import InputError, InputTypeError
from trainlab.losses import Loss

__all__ = ["BatchSource", "StreamData", "TensorBatches", "evaluate_stream", "predict_stream", "train_stream"]

#: One batch as the engine uses it: inputs, targets (None for inputs only), per-sample weights.
Batch = tuple[Tensor, Tensor | None, Tensor | None]

RAN_OUT = ("Your input ran out of data: an epoch of {steps} steps reached the end of a pass over the data "
           "after {seen} batches, so this epoch ends early (Keras 3 does the same). Make steps_per_epoch "
           "divide the number of batches in a pass, or leave it out to train on whole passes.")


class TensorBatches:
    """Batches of in-memory tensors, one pass per iteration: index slices of a permutation drawn from
    `generator` (in order without shuffling). How arrays are read with `steps_per_epoch` (Keras)."""

    def __init__(self, x: Tensor, y: Tensor, *, batch_size: int, shuffle: bool, seed: int,
                 sample_weight: Tensor | None = None) -> None:
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = torch.Generator(device=x.device).manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(self.x.shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = self.x.shape[0]
        order = (torch.randperm(n, generator=self.generator, device=self.x.device) if self.shuffle
                 else torch.arange(n, device=self.x.device))
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            yield (self.x[index], self.y[index],
                   self.sample_weight[index] if self.sample_weight is not None else None)


class BatchSource:
    """The batches of each epoch, from a DataLoader, a re-iterable, a generator or `TensorBatches`
    (Keras 3 semantics; see the module docstring).

    Args:
        data: what gives the batches: ``(x, y)``, ``(x, y, sample_weight)``, or ``x`` alone (predict).
        steps_per_epoch: batches per epoch, drawn from one iterator continued across epochs;
            None for one pass per epoch.
        where: the argument the data came from, for messages (``"fit"``, ``"validation_data"``).
        tokens: keep integer inputs as token ids (models that start with an Embedding).
    """

    def __init__(self, data: Iterable[Any], *, steps_per_epoch: int | None = None, where: str = "fit",
                 tokens: bool = False) -> None:
        if isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
            raise InputTypeError(f"{where}: batches come from a DataLoader, a generator or a list of (x, y) "
                                 f"batches; got {type(data).__name__}")
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int)
                                            or steps_per_epoch < 1):
            raise InputError(f"{where}: steps_per_epoch must be an int >= 1, got {steps_per_epoch!r}. It is how "
                             "many batches make an epoch; leave it out to use one pass over the data per epoch.")
        self.data, self.steps_per_epoch, self.where, self.tokens = data, steps_per_epoch, where, tokens
        self.one_shot = isinstance(data, Iterator)
        self.num_batches = None if self.one_shot else _length(data)
        self.current: Iterator[Any] | None = None
        self.seen = 0  # batches handed out from the current pass
        self.stash: list[Any] = []  # batches read ahead (to probe the model, or to see if a generator ended)
        self.exhausted = False  # a generator ended: no epoch after this one can have data
        self.pass_rng: list[Tensor] = []  # generator states just before the current pass began
        self.reposition: tuple[list[Tensor], int] | None = None  # (pass_rng, seen) to go back to on resume

    @property
    def planned_steps(self) -> int | None:
        """Batches per epoch when known before reading: steps_per_epoch, or the length of a pass."""
        return self.steps_per_epoch or self.num_batches

    def generators(self) -> list[torch.Generator]:
        """The generators whose draws decide a pass's order (besides torch's global stream)."""
        found: list[torch.Generator] = []
        sampler = getattr(self.data, "sampler", None)
        batch_sampler = getattr(self.data, "batch_sampler", None)
        for owner in (self.data, sampler, batch_sampler, getattr(batch_sampler, "sampler", None)):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
                found.append(generator)
        return found

    def _rng_states(self) -> list[Tensor]:
        return [torch.get_rng_state(), *(g.get_state() for g in self.generators())]

    def _start_pass(self) -> None:
        self.pass_rng = self._rng_states()
        self.current = iter(self.data)
        if not self.one_shot:
            self.stash.clear()
        self.seen = 0

    def _next(self) -> Any:
        if self.stash:
            return self.stash.pop(0)
        if self.current is None:
            raise StopIteration
        return next(self.current)

    def peek(self) -> Batch:
        """The next batch, without using it up: the probe that builds the model reads it."""
        if not self.stash:
            if self.current is None or self.reposition is not None:
                self._start_pass()
            try:
                self.stash.append(next(self.current))  # type: ignore[arg-type]
            except StopIteration:
                raise InputError(f"{self.where}: the data gave no batches") from None
        return as_batch(self.stash[0], self.where, 0, tokens=self.tokens)

    def look_ahead(self) -> bool:
        """Whether a generator continued across epochs has another batch (read now, kept for the next epoch)."""
        if not self.one_shot or self.exhausted or self.stash:
            return not self.exhausted
        try:
            self.stash.append(self._next())
        except StopIteration:
            self.exhausted = True
        return not self.exhausted

    def epoch(self) -> Iterator[Batch]:
        """The batches of the next epoch, read lazily (Keras 3's ``EpochIterator``)."""
        budget = self.planned_steps
        if self.reposition is not None:
            self._go_back()
        elif self.current is None or (self.steps_per_epoch is None and self.seen > 0):
            self._start_pass()
        step, retried = 0, False
        while budget is None or step < budget:
            if self.num_batches and self.seen >= self.num_batches:
                if self.steps_per_epoch:
                    warnings.warn(RAN_OUT.format(steps=self.steps_per_epoch, seen=step), stacklevel=2)
                break
            try:
                raw = self._next()
            except StopIteration:
                if self.num_batches is None and not self.one_shot:
                    self.num_batches = self.seen  # running out is how an unknown length is learned
                if self.one_shot:
                    self.exhausted = True
                elif step == 0 and not retried:
                    retried = True  # the pass ended exactly at the last epoch's end: begin the next one
                    self._start_pass()
                    continue
                elif self.steps_per_epoch:
                    warnings.warn(RAN_OUT.format(steps=self.steps_per_epoch, seen=step), stacklevel=2)
                self.current = None
                break
            self.seen += 1
            step += 1
            yield as_batch(raw, self.where, step - 1, tokens=self.tokens)
        if self.num_batches and self.seen >= self.num_batches and not self.one_shot:
            self.current = None  # the pass is used up: the next epoch starts another (reshuffled) one

    def _go_back(self) -> None:
        """Start the pass the checkpoint was taken in again, and skip the batches it had read."""
        assert self.reposition is not None
        pass_rng, seen = self.reposition
        self.reposition = None
        now = self._rng_states()
        generators = self.generators()
        torch.set_rng_state(pass_rng[0])
        for generator, state in zip(generators, pass_rng[1:]):
            generator.set_state(state)
        self._start_pass()
        self.pass_rng = pass_rng
        for _ in range(seen):
            next(self.current)  # type: ignore[arg-type]
        self.seen = seen
        torch.set_rng_state(now[0])
        for generator, state in zip(generators, now[1:]):
            generator.set_state(state)

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands (saved with the checkpoint after each epoch)."""
        return {"mid_pass": self.current is not None and self.seen > 0, "seen": self.seen,
                "num_batches": -1 if self.num_batches is None else self.num_batches,
                "pass_rng": list(self.pass_rng), "rng_now": [g.get_state() for g in self.generators()],
                "one_shot": self.one_shot}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`: the next epoch starts where the checkpointed run's next epoch started."""
        if self.one_shot:
            warnings.warn(f"{self.where}: resuming a run fed by a Python generator. Weights, optimizer, schedule, "
                          "callbacks and epoch are restored exactly, but a generator cannot be rewound: training "
                          "continues on the batches the new generator yields. Use a DataLoader (or a list of "
                          "batches) for an exact resume.", stacklevel=2)
            return
        if state["num_batches"] >= 0:
            self.num_batches = int(state["num_batches"])
        for generator, saved in zip(self.generators(), state["rng_now"]):
            generator.set_state(saved)
        self.current, self.seen = None, 0
        self.stash.clear()
        self.reposition = (list(state["pass_rng"]), int(state["seen"])) if state["mid_pass"] else None


def _length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:  # an IterableDataset's DataLoader, a generator-like object without a length
        return None


def as_batch(raw: Any, where: str, index: int, *, tokens: bool = False) -> Batch:
    """One batch as tensors: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``; x as float32
    (or int64 token ids), y as given (the loss converts it), weights as float32."""
    if isinstance(raw, (Tensor, np.ndarray)):
        parts: Sequence[Any] = (raw,)
    elif isinstance(raw, (list, tuple)) and 1 <= len(raw) <= 3:
        parts = raw
    else:
        raise InputError(f"{where}: each batch must be (x, y) or (x, y, sample_weight), got "
                         f"{type(raw).__name__} for batch {index}")
    x = _tensor(parts[0])
    x = x.long() if tokens and not x.is_floating_point() else x.float()
    y = _tensor(parts[1]) if len(parts) > 1 and parts[1] is not None else None
    if y is not None and y.dtype == torch.bool:
        y = y.long()
    w = _tensor(parts[2]).float().reshape(-1) if len(parts) > 2 and parts[2] is not None else None
    if y is not None and y.shape[0] != x.shape[0]:
        raise InputError(f"{where}: batch {index} has {x.shape[0]} inputs but {y.shape[0]} targets; "
                         "they must match row for row")
    if w is not None and w.shape[0] != x.shape[0]:
        raise InputError(f"{where}: batch {index} has {x.shape[0]} inputs but {w.shape[0]} sample weights; "
                         "give one weight per sample")
    return x, y, w


def _tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))


@dataclass(frozen=True)
class StreamData:
    """Training batches, and optional validation batches, read while training (not held in memory).

    `class_weight` (Keras's ``{class: weight}``) multiplies each training batch's sample weights.
    """

    train: BatchSource
    validation: BatchSource | None = None
    class_weight: dict[int, float] | None = None


@dataclass
class StreamMember(MemberState):
    """A member trained on a stream: its steps are known only as the epoch's batches arrive."""

    planned: int = 0  # batches per epoch when known beforehand, else 0 (checkpoint fingerprint)
    live_steps: int | None = None  # during an epoch: batches so far, or sys.maxsize while more may come
    next_size: int = 0

    @property
    def steps(self) -> int:
        return self.live_steps if self.live_steps is not None else self.planned

    def size_at(self, batch: int) -> int:
        return self.next_size if batch < self.steps else 0


class SourcePosition(Callback):
    """Keeps the stream's position in the run's checkpoint (through the callbacks' saved state)."""

    def __init__(self, source: BatchSource) -> None:
        self.source = source

    def state_dict(self) -> dict[str, Any]:
        return {"source": self.source.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "source" in state:
            self.source.load_state_dict(state["source"])


class StreamStep(SoloStep):
    """`SoloStep` fed by a `BatchSource`: each batch is moved to the device as it arrives."""

    def __init__(self, member: StreamMember, *, source: BatchSource, first: Batch, forward: Callable[[Tensor], Tensor],
                 from_logits: bool, validation: BatchSource | None, val_batch: int, num_outputs: int,
                 class_weight: dict[int, float] | None, last_epoch: int, config: LoopConfig,
                 device: torch.device) -> None:
        super().__init__(member, x=first[0].to(device), y=torch.zeros(0, device=device), forward=forward,
                         from_logits=from_logits, x_val=None, y_val=None, val_weight=None, val_batch=val_batch,
                         transforms=config.batch_transforms, hooks=config.all_gradient_hooks())
        self.stream_member = member
        self.source, self.validation = source, validation
        self.num_outputs, self.class_weight, self.last_epoch = num_outputs, class_weight, last_epoch
        self.device = device
        self.batches: Iterator[Batch] = iter(())
        self.pending: Batch | None = None

    def _fetch(self) -> Batch | None:
        batch = next(self.batches, None)
        if batch is not None:
            self.stream_member.next_size = batch[0].shape[0]
        return batch

    def begin_epoch(self, live: Sequence[MemberState], orders: dict[int, Tensor | None]) -> None:
        super().begin_epoch(live, orders)
        self.batches = self.source.epoch()
        self.pending = self._fetch()
        if self.pending is None:
            raise InputError(f"{self.source.where}: the data gave no batches for epoch {self.member.run.epoch + 1}")
        self.stream_member.live_steps = sys.maxsize

    def run(self, batch: int, active: Sequence[MemberState]) -> dict[int, tuple[Tensor, int]]:
        assert self.pending is not None
        x, y, w = self.pending
        member = self.member
        if y is None:
            raise InputError(f"{self.source.where}: training batches must hold targets, (x, y) or "
                             "(x, y, sample_weight); got inputs only")
        xb = x.to(self.device, non_blocking=True)
        yb = targets(y, member.loss, self.num_outputs, "training", self.device)
        if self.class_weight is not None:
            w = class_weights_to_sample_weights(y, self.class_weight, w)
        wb = w.to(self.device) if w is not None else None
        result = self.train_batch(xb, yb, wb)
        self.pending = self._fetch()
        if self.pending is None:
            self.stream_member.live_steps = batch + 1  # the epoch ends after this batch
        return result

    def epoch_logs(self, live: Sequence[MemberState]) -> dict[int, dict[str, Any]]:
        member = self.stream_member
        member.live_steps = None
        if member.run.epoch < self.last_epoch and (self.source.exhausted or (
                self.source.steps_per_epoch is not None and not self.source.look_ahead())):
            member.run.request_stop(
                f"the data ran out after {member.step} batches, in epoch {member.run.epoch + 1}: a generator "
                f"that ends gives no more batches. Make it repeat (`while True: ...`) and pass steps_per_epoch, "
                "or pass a DataLoader or a list of batches, which are read again each epoch.")
        if member.run.steps_per_epoch == 0 and self.source.num_batches:
            member.run.steps_per_epoch = self.source.num_batches  # learned from the first pass
        return super().epoch_logs(live)

    def validate(self, live: Sequence[MemberState], logs: dict[int, dict[str, Any]]) -> None:
        if self.validation is None or not live:
            return
        member = self.member
        logs[member.index].update(evaluate_stream(
            member.module, self.forward, member.loss, member.val_metrics, self.validation.epoch(),
            num_outputs=self.num_outputs, from_logits=self.from_logits, prefix="val_", device=self.device))


def evaluate_stream(model: nn.Module, forward: Callable[[Tensor], Tensor], loss_fn: Loss, metrics: list[Any],
                    batches: Iterable[Batch], *, num_outputs: int, from_logits: bool, device: torch.device,
                    prefix: str = "") -> dict[str, float]:
    """Loss and metrics over every batch of `batches`, in eval mode: exact over the samples, as
    `evaluate_tensors` is over tensors (per-sample weights: sum_i w_i * loss_i / N, Keras)."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device)
    count = 0
    for m in metrics:
        m.reset()
    try:
        with torch.no_grad():
            for x, y, w in batches:
                if y is None:
                    raise InputError("evaluation batches must hold targets, (x, y) or (x, y, sample_weight)")
                xb = x.to(device, non_blocking=True)
                yb = targets(y, loss_fn, num_outputs, "evaluation", device)
                out = forward(xb)
                loss = loss_fn(out, yb) if w is None else loss_fn.weighted(out, yb, w.to(device))
                total.add_(loss, alpha=xb.shape[0])
                count += xb.shape[0]
                for m in metrics:
                    m.update(out, yb, from_logits=from_logits)
    finally:
        model.train(was_training)
    if count == 0:
        raise InputError("the evaluation data gave no batches")
    logs = {f"{prefix}loss": total.item() / count}
    logs.update(metric_logs(metrics, prefix))
    return logs


def predict_stream(model: nn.Module, batches: Iterable[Batch], *, device: torch.device,
                   transform: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """The model's outputs on every batch's inputs, in eval mode, concatenated on the CPU."""
    was_training = model.training
    model.eval()
    parts: list[Tensor] = []
    try:
        with torch.no_grad():
            for x, _, _ in batches:
                xb = x.to(device, non_blocking=True)
                parts.append(model(transform(xb) if transform is not None else xb).cpu())
    finally:
        model.train(was_training)
    if not parts:
        raise InputError("predict: the data gave no batches")
    return torch.cat(parts)


def train_stream(model: nn.Module, data: StreamData, technique: Technique, config: LoopConfig, *,
                 callbacks: Sequence[Callback] = ()) -> History:
    """Train `model` in place on streamed batches (`StreamData`); return the History.

    The whole run draws from torch's global stream seeded with the run's seed, so
    a DataLoader that shuffles without a generator of its own, and workers' seeds,
    follow the seed too. Called by `trainlab.engine.train` for `StreamData`.
    """
    from trainlab.engine.driver import resolve_device, seeded

    device = resolve_device(config.device)
    seed = config.seed if config.seed is not None else secrets.randbits(31)
    with seeded(seed, device):
        return _train_stream(model, data, technique, config, callbacks, device, seed)


def _train_stream(model: nn.Module, data: StreamData, technique: Technique, config: LoopConfig,
                  callbacks: Sequence[Callback], device: torch.device, seed: int) -> History:
    from trainlab.engine.driver import Loop, drive, probe_outputs, resolve_loss, resume_state
    from trainlab.optimizers import optimizer as make_optimizer
    from trainlab.schedules import schedule as make_schedule

    source = data.train
    with torch.random.fork_rng(devices=[]):
        # Lazy layers are built from the run's seed whatever reading the first batch draws (a DataLoader
        # draws its workers' base seed), so a model starts from the same weights as on the in-memory path.
        first = source.peek()
    if first[1] is None:
        raise InputError(f"{source.where}: training batches must hold targets, (x, y) or (x, y, sample_weight)")
    model.to(device)
    out = probe_outputs(model, first[0].to(device))
    model.to(device)
    num_outputs = out.shape[-1] if out.dim() > 1 else 1
    loss_fn, forward, from_logits = resolve_loss(model, technique, first[1], num_outputs)
    params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError("the model has no trainable parameters")
    optimizer = make_optimizer(technique.optimizer, params, source="optimizer")
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    batch_size = int(getattr(source.data, "batch_size", None) or first[0].shape[0])
    planned = source.planned_steps
    schedule = None
    if technique.schedule is not None:
        if planned is None:
            raise InputError(f"{source.where}: a schedule counts steps per epoch, and this data's length is not "
                             "known before it ends (a generator, an IterableDataset). Pass steps_per_epoch.")
        schedule = make_schedule(technique.schedule, steps_per_epoch=planned, num_epochs=config.num_epochs,
                                 base_lr=base_lrs[0], source="schedule", optimizer=optimizer)
    history = History()
    history.seed = seed
    run = RunState(model=model, num_epochs=config.num_epochs, steps_per_epoch=planned or 0,
                   lr=base_lrs[0], history=history.history, optimizer=optimizer)
    extra: list[Callback] = [ProgressBar(config.verbose)] if config.verbose else []
    params_log = {"epochs": config.num_epochs, "steps": planned, "batch_size": batch_size, "seed": seed}
    cbs = CallbackList([SourcePosition(source), *callbacks, *extra, history], model=model, run=run,
                       params=params_log)
    n = _length(getattr(source.data, "dataset", None)) or 0
    member = StreamMember(
        index=0, seed=seed, module=model, loss=loss_fn, optimizer=optimizer, params=params, schedule=schedule,
        base_lrs=base_lrs, history=history, callbacks=cbs, run=run,
        generator=torch.Generator(device=device).manual_seed(seed), n=n, batch_size=batch_size,
        train_metrics=make_metrics(technique.metrics, loss_fn, num_outputs),
        val_metrics=make_metrics(technique.metrics, loss_fn, num_outputs),
        state_file=Path(config.checkpoint_dir) / STATE_FILE if config.checkpoint_dir is not None else None,
        start_epoch=config.initial_epoch, step=config.initial_epoch * (planned or 0), planned=planned or 0,
    )
    saved = resume_state(member, config.resume, device)
    step = StreamStep(member, source=source, first=first, forward=forward, from_logits=from_logits,
                      validation=data.validation, val_batch=config.validation_batch_size or batch_size,
                      num_outputs=num_outputs, class_weight=data.class_weight, last_epoch=config.num_epochs - 1,
                      config=config, device=device)
    loop = replace(Loop.of(config, device), shuffle=False)  # the source decides the order
    drive([member], step, loop, saved={0: saved} if saved is not None else {})
    history.params = {**params_log, "steps": run.steps_per_epoch or None, "device": str(device),
                      "fused_loss": forward is not model, "from_logits": from_logits,
                      "resumed_from_epoch": member.start_epoch if saved is not None else None,
                      "executor": "stream", "plan_reason": "batches read while training (a DataLoader or a generator)"}
    return history

