"""THE training loop, for K >= 1 members; a plain run is a stack of one.

Every entry point (trainlab.fit, Sequential.fit, the CLI, studies, stacked
members) drives `drive`. The step executor behind it (`SoloStep` for one
module, `StackedStep` for K members of one architecture) runs forward, loss,
backward, gradient hooks and update; everything else is written once, here.

Hook order, as in Keras, per member:

    on_train_begin
      on_epoch_begin(epoch)
        on_batch_begin(batch) -> [batch transforms] forward, loss, backward,
                                 [gradient hooks], step -> on_batch_end(batch)
        (a stop asked for in on_batch_end ends the epoch after that batch)
      validation (all of it, in eval mode)
      on_epoch_end(epoch, logs)
    on_train_end                        (always, also after a stop or an error)

Data lives on the training device; each epoch every member draws one
permutation of its rows from its own generator and batches are index slices of
it, so there is no per-sample Python work. The loop waits for the device once
per epoch (to read the loss and metrics), not once per batch.

Determinism: for a given seed on the CPU the final weights are identical bit
for bit, and a member's weights do not depend on the executor that trained it:
random layers draw from counter-based streams keyed by (member seed, step,
layer, element) (`trainlab.engine.streams`).

Checkpoints: with a checkpoint file per member, the state that makes the next
step identical (weights, optimizer and schedule state, callback state, RNG
states, epoch, step, history) is saved atomically after every epoch; a resumed
run ends with the same weights bit for bit as a run never interrupted. A member
whose loss turns NaN/inf, or grows past `divergence_factor` times its first
epoch's loss, stops with a diagnosis; it keeps the last good epoch's weights
(the initial ones if the first epoch diverged) and its last good checkpoint is
not overwritten.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from trainlab.callbacks import Callback, CallbackList, History, ProgressBar, RunState
from trainlab.checkpoint import RESUME_KEYS, STATE_FILE, load_state, save_state
from trainlab.engine.config import LoopConfig, Technique, TrainData, check_weights
from trainlab.engine.evaluate import make_metrics, targets
from trainlab.engine.source import StreamData, train_stream
from trainlab.engine.state import MemberState, copy_state, restore, snapshot
from trainlab.engine.step import Step
from trainlab.errors import InputError
from trainlab.losses import Loss
from trainlab.losses import loss as make_loss
from trainlab.optimizers import optimizer as make_optimizer
from trainlab.schedules import schedule as make_schedule

#: Held while a run seeds and uses torch's global random stream (building lazy layers under the
#: run's seed; training a module whose random layers draw from it), so runs in several threads
#: cannot interleave their draws. Runs of trainlab layers only hold it for the build.
GLOBAL_RNG_LOCK = threading.RLock()


def auto_loss(task: str | None, y: Tensor, num_outputs: int) -> str:
    """The usual loss for the task: mse for regression; for classes, the cross-entropy that fits
    the targets (one-hot rows: categorical) and the output layer (one unit: binary)."""
    if task == "regression" or (task is None and y.is_floating_point() and y.dim() == 1):
        return "mse"
    if y.dim() > 1 and y.shape[-1] > 1:
        return "categorical_crossentropy"
    return "binary_crossentropy" if num_outputs == 1 else "sparse_categorical_crossentropy"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' is CUDA when present, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'")
    return resolved


def output_activation(model: nn.Module) -> str | None:
    """The name of the model's final activation, when the model says (trainlab.Sequential does)."""
    getter = getattr(model, "output_activation", None)
    return getter() if callable(getter) else None


def probe_outputs(model: nn.Module, x: Tensor) -> Tensor:
    """Run the model once on two samples (eval mode, no grad): builds lazy layers, checks shapes."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:2])
    except InputError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        raise InputError(
            f"the model cannot run on inputs of shape {tuple(x.shape[1:])} (batch dimension left out): "
            f"{str(error).splitlines()[0]}. Check that the data's shape matches the model's first layer."
        ) from error
    finally:
        model.train(was_training)
    if not isinstance(out, Tensor):
        raise InputError(f"the model must return a single tensor, got {type(out).__name__}")
    return out


def resolve_loss(model: nn.Module, technique: Technique, y: Tensor,
                 num_outputs: int) -> tuple[Loss, Callable[[Tensor], Tensor], bool]:
    """The loss, the forward function to train with, and whether outputs fed to them are logits.

    A trainlab model whose last activation is the one the cross-entropy can fuse
    (softmax, sigmoid) is run without it and the loss computed from logits, as
    Keras does: stable for any logit. A plain torch module says nothing of its
    output activation; by PyTorch convention it returns logits.
    """
    spec = auto_loss(technique.task, y, num_outputs) if technique.loss == "auto" else technique.loss
    loss_fn: Loss = make_loss(spec, source="loss")
    forward: Callable[[Tensor], Tensor] = model
    if loss_fn.fusable_activation is not None and not loss_fn.from_logits:
        declares = callable(getattr(model, "output_activation", None))
        if declares and output_activation(model) == loss_fn.fusable_activation:
            forward = cast(Callable[[Tensor], Tensor], model.forward_logits)
            loss_fn = loss_fn.with_logits()
        elif not declares:
            loss_fn = loss_fn.with_logits()
    return loss_fn, forward, loss_fn.from_logits


def check_data(data: TrainData) -> None:
    """Clear errors for empty or mismatched training and validation tensors."""
    n = data.x.shape[0]
    if n == 0:
        raise InputError("the training set is empty: there are no samples to train on")
    if data.x_val is not None and data.x_val.shape[0] == 0:
        raise InputError("the validation set is empty; give more samples or a larger validation_split")
    if data.x.shape[0] != data.y.shape[0]:
        raise InputError(f"x has {data.x.shape[0]} samples but y has {data.y.shape[0]}; they must match row for row")
    if (data.x_val is None) != (data.y_val is None) or (
            data.x_val is not None and data.y_val is not None and data.x_val.shape[0] != data.y_val.shape[0]):
        raise InputError("validation x and y must both be given and have the same number of samples, got "
                         f"{None if data.x_val is None else data.x_val.shape[0]} and "
                         f"{None if data.y_val is None else data.y_val.shape[0]}")


def uses_global_rng(model: nn.Module) -> bool:
    """Whether training `model` may draw from torch's global random stream.

    trainlab's layers draw from counter-based streams and torch's standard layers
    draw nothing, except its dropout family; any other module class may draw.
    """
    for module in model.modules():
        where = type(module).__module__
        if where.startswith("trainlab."):
            continue
        if where.startswith("torch.nn.modules.") and not where.endswith(".dropout") \
                and not isinstance(module, nn.RReLU):
            continue
        return True
    return False


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's global stream seeded with `seed` inside the block, the caller's restored after it."""
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        # Library code never leaves torch.manual_seed behind: fork_rng restores the caller's stream.
        torch.manual_seed(seed)
        yield


def train(model: nn.Module, data: TrainData | StreamData, technique: Technique, config: LoopConfig, *,
          callbacks: Sequence[Callback] = ()) -> History:
    """Train `model` in place on `data`; return the History (per-epoch logs, seed, stop reason).

    `StreamData` (batches read while training) goes through `trainlab.engine.source`.
    """
    if isinstance(data, StreamData):
        return train_stream(model, data, technique, config, callbacks=callbacks)
    device = resolve_device(config.device)
    seed = config.seed if config.seed is not None else secrets.randbits(31)
    check_data(data)
    weights = check_weights(data.sample_weight, data.x.shape[0], "sample_weight")
    val_weights = (check_weights(data.val_sample_weight, data.x_val.shape[0], "val_sample_weight")
                   if data.x_val is not None else None)
    if uses_global_rng(model):
        with seeded(seed, device):
            return _train(model, data, technique, config, callbacks, device, seed, weights, val_weights)
    with seeded(seed, device):
        model.to(device)
        probe_outputs(model, data.x.to(device))
    return _train(model, data, technique, config, callbacks, device, seed, weights, val_weights)


def _train(model: nn.Module, data: TrainData, technique: Technique, config: LoopConfig,
           callbacks: Sequence[Callback], device: torch.device, seed: int, weights: Tensor | None,
           val_weights: Tensor | None) -> History:
    from trainlab.engine.solo import SoloStep

    model.to(device)
    x = data.x.to(device)
    n = x.shape[0]
    out = probe_outputs(model, x)
    model.to(device)  # layers built by the probe already sit on `device`; this is a no-op then
    num_outputs = out.shape[-1] if out.dim() > 1 else 1

    loss_fn, forward, from_logits = resolve_loss(model, technique, data.y, num_outputs)
    fuse = forward is not model
    y = targets(data.y, loss_fn, num_outputs, "training", device)
    x_val = data.x_val.to(device) if data.x_val is not None else None
    y_val = (targets(data.y_val, loss_fn, num_outputs, "validation", device)
             if data.y_val is not None else None)
    params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError("the model has no trainable parameters")
    optimizer = make_optimizer(technique.optimizer, params, source="optimizer")
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    batch_size = config.batch_size
    steps_per_epoch = math.ceil(n / batch_size)
    schedule = (make_schedule(technique.schedule, steps_per_epoch=steps_per_epoch,
                              num_epochs=config.num_epochs, base_lr=base_lrs[0], source="schedule",
                              optimizer=optimizer)
                if technique.schedule is not None else None)

    history = History()
    history.seed = seed
    run = RunState(model=model, num_epochs=config.num_epochs, steps_per_epoch=steps_per_epoch,
                   lr=base_lrs[0], history=history.history, optimizer=optimizer)
    extra: list[Callback] = [ProgressBar(config.verbose)] if config.verbose else []
    cbs = CallbackList([*callbacks, *extra, history], model=model, run=run,
                       params={"epochs": config.num_epochs, "steps": steps_per_epoch,
                               "batch_size": batch_size, "seed": seed})
    member = MemberState(
        index=0, seed=seed, module=model, loss=loss_fn, optimizer=optimizer, params=params, schedule=schedule,
        base_lrs=base_lrs, history=history, callbacks=cbs, run=run,
        generator=torch.Generator(device=device).manual_seed(seed), n=n, batch_size=batch_size,
        sample_weight=weights.to(device) if weights is not None else None,
        train_metrics=make_metrics(technique.metrics, loss_fn, num_outputs),
        val_metrics=make_metrics(technique.metrics, loss_fn, num_outputs),
        state_file=Path(config.checkpoint_dir) / STATE_FILE if config.checkpoint_dir is not None else None,
        start_epoch=config.initial_epoch, step=config.initial_epoch * steps_per_epoch,
    )
    saved = resume_state(member, config.resume, device)
    step = SoloStep(member, x=x, y=y, forward=forward, from_logits=from_logits, x_val=x_val, y_val=y_val,
                    val_weight=val_weights.to(device) if val_weights is not None else None,
                    val_batch=config.validation_batch_size or max(batch_size, 1024),
                    transforms=config.batch_transforms, hooks=config.all_gradient_hooks())
    drive([member], step, Loop.of(config, device), saved={0: saved} if saved is not None else {})
    history.params = {"epochs": config.num_epochs, "steps": steps_per_epoch, "batch_size": batch_size,
                      "seed": seed, "device": str(device), "fused_loss": fuse, "from_logits": from_logits,
                      "resumed_from_epoch": member.start_epoch if saved is not None else None,
                      "executor": "solo", "plan_reason": "one member: a plain run"}
    return history


@dataclass(frozen=True)
class Loop:
    """The driver's settings, shared by every member."""

    num_epochs: int
    shuffle: bool
    device: torch.device
    divergence_factor: float | None
    record_steps: bool

    @classmethod
    def of(cls, config: LoopConfig, device: torch.device) -> Loop:
        return cls(num_epochs=config.num_epochs, shuffle=config.shuffle, device=device,
                   divergence_factor=config.divergence_factor, record_steps=config.record_steps)


def resume_state(member: MemberState, resume: bool, device: torch.device) -> dict[str, Any] | None:
    """Load and apply the member's checkpoint when resuming and one exists (its callbacks' state is
    applied by the driver, after their on_train_begin)."""
    file = member.state_file
    if not resume or file is None or not file.is_file():
        return None
    saved = load_state(file, require=RESUME_KEYS)
    try:
        restore(member, saved, device)
    except InputError:
        raise
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as error:
        raise InputError(
            f"the checkpoint in '{file.parent}' does not fit this run: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}. It was made for "
            "another model or by another program; resume with the spec that made it, or start a new "
            "run without resume.") from None
    return saved


def _order(member: MemberState, shuffle: bool, device: torch.device) -> Tensor | None:
    if not shuffle:
        return member.rows
    order = torch.randperm(member.n, generator=member.generator, device=device)
    return order if member.rows is None else member.rows[order]


def _reset_keras_flag(model: nn.Module) -> bool:
    """trainlab's own Sequential resets its Keras ``stop_training`` flag at the start of a run, as
    Keras does; any other module is left alone. Returns whether the flag is set now."""
    from trainlab.models import Sequential

    if isinstance(model, Sequential):
        model.stop_training = False
    return getattr(model, "stop_training", False) is True


def drive(members: Sequence[MemberState], step: Step, loop: Loop, *,
          saved: dict[int, dict[str, Any]] | None = None) -> None:
    """Train `members` through `step` for up to `loop.num_epochs` epochs (see the module docstring).

    Fills each member's History (logs, stop reason, model) and leaves its final
    weights in its own module.
    """
    saved = saved or {}
    device = loop.device
    for member in members:
        member.run.model_flag_at_start = _reset_keras_flag(member.module)
        member.last_good = copy_state(member.module)
        if loop.record_steps:
            member.steps_record = {"loss": [], "lr": []}
            member.history.steps = member.steps_record
    try:
        for member in members:
            member.callbacks.on_train_begin({})
            state = saved.get(member.index)
            if state is not None:
                _restore_callbacks(member, state)
            if member.run.should_stop():
                _stop(step, member)
        first_epoch = min((m.start_epoch for m in members), default=0)
        for epoch in range(first_epoch, loop.num_epochs):
            live = [m for m in members if not m.stopped and m.start_epoch <= epoch]
            if not any(not m.stopped for m in members):
                break
            if not live:
                continue
            for member in live:
                member.run.epoch = epoch
                member.callbacks.on_epoch_begin(epoch, {})
            step.begin_epoch(live, {m.index: _order(m, loop.shuffle, device) for m in live})
            running = list(live)
            for batch in range(max(m.steps for m in live)):
                active = [m for m in running if batch < m.steps]
                if not active:
                    break
                for member in active:
                    if member.callbacks.has_batch_hooks:
                        member.callbacks.on_batch_begin(batch, {"size": member.size_at(batch)})
                    if member.schedule is not None:
                        factor = member.schedule(member.step)
                        for group, base in zip(member.optimizer.param_groups, member.base_lrs):
                            group["lr"] = base * factor
                results = step.run(batch, active)
                for member in active:
                    member.step += 1
                    batch_loss, size = results[member.index]
                    if member.steps_record is not None:
                        member.pending_losses.append(batch_loss)
                        member.steps_record["lr"].append(float(member.optimizer.param_groups[0]["lr"]))
                    if member.callbacks.has_batch_hooks:
                        member.callbacks.on_batch_end(batch, {"loss": batch_loss, "size": size})
                    if _blew_up(member, batch_loss, loop, epoch, batch, step):
                        running.remove(member)  # its epoch ends here; its last good weights come back
                    elif member.run.stop_requested or (member.callbacks.has_batch_hooks and member.run.should_stop()):
                        running.remove(member)  # Keras 3: a stop asked for in a batch ends the epoch there
            logs = step.epoch_logs(live)
            step.validate(live, logs)
            for member in live:
                _epoch_end(step, member, epoch, logs[member.index], loop)
            step.remember(live)
    finally:
        step.finish()
        for member in members:
            if not member.ended:
                _end(member)


def _restore_callbacks(member: MemberState, saved: dict[str, Any]) -> None:
    from trainlab.engine.state import kept_callbacks

    for cb, state in zip(kept_callbacks(member.callbacks), saved["callbacks"]):
        if state:
            cb.load_state_dict(state)


def _epoch_end(step: Step, member: MemberState, epoch: int, logs: dict[str, Any], loop: Loop) -> None:
    """The end of one member's epoch: lr, schedule, divergence, callbacks, checkpoint, stop."""
    run = member.run
    run.step = member.step
    if member.steps_record is not None and member.pending_losses:
        member.steps_record["loss"].extend(torch.stack(member.pending_losses).tolist())
        member.pending_losses.clear()
    run.lr = float(member.optimizer.param_groups[0]["lr"])
    logs["lr"] = run.lr
    if member.schedule is not None:
        on_epoch_end = getattr(member.schedule, "on_epoch_end", None)
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)
    if member.first_loss is None:
        member.first_loss = logs["loss"]
    if member.blowup is not None and member.diverged_at is None and bool(member.blowup):
        member.diverged_at = {"loss": logs["loss"], "batch": None, "epoch": epoch, "lr": run.lr}
    member.blowup = None
    diverged = member.diverged_at is not None or _diverged(logs["loss"], member.first_loss,
                                                           loop.divergence_factor)
    if member.diverged_at is not None:
        run.request_stop(_blow_up_reason(member, loop.divergence_factor, step.grads(member)))
    elif diverged:
        run.request_stop(_divergence_reason(logs, run.lr, member.history.history.get("loss"),
                                            step.grads(member), restored=epoch > 0))
    member.callbacks.on_epoch_end(epoch, logs)
    stopping = run.should_stop()
    if diverged:
        # Keep what was learned before it went wrong: the last good epoch's weights.
        step.leave(member)
        member.stopped = True
        step.restore_good(member)
        _end(member)
        return
    if member.state_file is not None:
        step.sync()
        save_state(member.state_file, snapshot(member, epoch, step.optimizer_state(member), loop.device, stopping))
    if stopping:
        run.stopped_epoch = epoch
        _stop(step, member)


def _stop(step: Step, member: MemberState) -> None:
    member.stopped = True
    step.leave(member)
    _end(member)


def _end(member: MemberState) -> None:
    member.ended = True
    member.stopped = True
    try:
        member.callbacks.on_train_end({})
    finally:
        member.history.stop_reason = member.run.stop_reason
        member.history.model = member.module


def _blew_up(member: MemberState, batch_loss: Tensor, loop: Loop, epoch: int, batch: int, step: Step) -> bool:
    """Whether this batch's loss shows the run diverging: not finite, or more than `divergence_factor`
    times the run's first batch loss (a run's first loss is about chance level; a blow-up passes it by
    orders of magnitude within a few steps, often inside the first epoch).

    On the CPU it is read at once, so the epoch ends at that batch; on CUDA the check stays on the
    device and is read at the epoch's end (one wait per epoch). Either way the member keeps the
    weights from before the blow-up: the last good epoch's, or the initial ones.
    """
    if loop.device.type == "cuda":
        loss = batch_loss.detach()
        if member.first_batch_loss is None:
            first = float(loss)
            member.first_batch_loss = first if math.isfinite(first) else None
            if member.first_batch_loss is not None:
                return False
        bad = ~torch.isfinite(loss)
        if loop.divergence_factor is not None and member.first_batch_loss is not None:
            bad = bad | (loss > loop.divergence_factor * max(member.first_batch_loss, 1e-12))
        member.blowup = bad if member.blowup is None else member.blowup | bad
        return False
    # On the CPU the loss is already computed: reading it is cheaper than any tensor operation.
    value = batch_loss.item()
    if member.first_batch_loss is None and math.isfinite(value):
        member.first_batch_loss = value
        return False
    if math.isfinite(value):
        bound = _bound(member, loop.divergence_factor, batch_loss.dtype)
        if bound is None or not value > bound:
            return False
    member.diverged_at = {"loss": value, "batch": batch, "epoch": epoch,
                          "lr": float(member.optimizer.param_groups[0]["lr"]),
                          "grad_norm": _grad_norm(step.grads(member))}
    return True


def _bound(member: MemberState, factor: float | None, dtype: torch.dtype) -> float | None:
    """`factor` times the first batch's loss, rounded to the loss's dtype as a tensor comparison rounds it."""
    if factor is None or member.first_batch_loss is None:
        return None
    if member.divergence_bound is None or member.divergence_bound[0] != member.first_batch_loss:
        bound = torch.tensor(factor * max(member.first_batch_loss, 1e-12), dtype=dtype).item()
        member.divergence_bound = (member.first_batch_loss, bound)
    return member.divergence_bound[1]


def _blow_up_reason(member: MemberState, factor: float | None, params: Sequence[Tensor]) -> str:
    at = member.diverged_at or {}
    loss, epoch = float(at["loss"]), int(at["epoch"])
    where = (f"at batch {at['batch'] + 1} of epoch {epoch + 1}" if at.get("batch") is not None
             else f"in a batch of epoch {epoch + 1}")
    bound = ("" if not math.isfinite(loss) or factor is None or member.first_batch_loss is None
             else f", more than {factor:g}x the first batch's {member.first_batch_loss:.4g}")
    losses = member.history.history.get("loss")
    before = f"{losses[-1]:.4g}" if losses else "none (first epoch)"
    return (f"training diverged: the loss became {loss:.4g} {where}{bound} (previous epoch {before}) at lr "
            f"{at['lr']:.3g}, gradient norm {at.get('grad_norm', _grad_norm(params)):.4g} at the last step. The usual causes: a "
            "learning rate too high for this optimizer (try a 10x smaller lr or a warmup), exploding gradients "
            "(set clip_grad_norm), or unnormalized inputs or activations (scaling = 'standardize', "
            "BatchNormalization)." + _kept(epoch))


def _kept(epoch: int) -> str:
    return (f" The weights of the last good epoch (epoch {epoch}) were kept." if epoch > 0
            else " The initial weights were kept: the first epoch had not ended.")


def _diverged(loss: float, first_loss: float, factor: float | None) -> bool:
    if not math.isfinite(loss):
        return True
    return factor is not None and math.isfinite(first_loss) and loss > factor * max(first_loss, 1e-12)


def _grad_norm(params: Sequence[Tensor]) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return float("nan")
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).item())


def _divergence_reason(logs: dict[str, Any], lr: float, losses: Sequence[float] | None,
                       params: Sequence[Tensor], *, restored: bool) -> str:
    before = f"{losses[-1]:.4g}" if losses else "none (first epoch)"
    return (f"training diverged: the loss became {logs['loss']:.4g} (previous epoch {before}) at lr {lr:.3g}, "
            f"gradient norm {_grad_norm(params):.4g} at the last step. The usual causes: a learning rate "
            "too high for this optimizer (try a 10x smaller lr or a warmup), exploding gradients (set "
            "clip_grad_norm), or unnormalized inputs or activations (scaling = 'standardize', "
            "BatchNormalization)."
            + (" The weights of the last good epoch were kept." if restored
               else " The initial weights were kept."))
