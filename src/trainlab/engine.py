"""THE training loop. Every entry point (trainlab.fit, Sequential.fit, the CLI) drives `train`.

Data lives on the training device; each epoch draws one permutation from the
run's own generator and batches are index slices of it, so there is no
per-sample Python work. The loop waits for the device once per epoch (to read
the loss and metrics), not once per batch.

Hook order, as in Keras:

    on_train_begin
      on_epoch_begin(epoch)
        on_batch_begin(batch) -> forward, loss, backward, step -> on_batch_end(batch)
      validation (all of it, in eval mode)
      on_epoch_end(epoch, logs)
    on_train_end                        (always, also after a stop or an error)

Determinism: for a given seed on the CPU the final weights are identical bit
for bit. The global torch RNG (used by dropout and by any nn.Module the user
brings) is seeded inside `torch.random.fork_rng`, so the caller's own random
state is restored afterwards.

Checkpoints: with `checkpoint_dir`, the state that makes the next step
identical (weights, optimizer and schedule state, callback state, RNG states,
epoch, step, history) is saved atomically after every epoch; `resume=True`
continues from it, ending with the same weights bit for bit as a run never
interrupted. A run whose loss turns NaN/inf, or grows past `divergence_factor`
times its first epoch's loss, stops with a diagnosis; the model keeps the last
good epoch's weights and the last good checkpoint is not overwritten.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from trainlab import check
from trainlab.callbacks import Callback, CallbackList, History, ProgressBar, RunState
from trainlab.checkpoint import STATE_FILE, load_state, save_state
from trainlab.errors import InputError
from trainlab.losses import Loss
from trainlab.losses import loss as make_loss
from trainlab.metrics import Metric
from trainlab.metrics import metric as make_metric
from trainlab.optimizers import optimizer as make_optimizer
from trainlab.schedules import schedule as make_schedule


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """How the loop runs, apart from what is trained: batch size, epochs, order, seed, device."""

    batch_size: int = 32
    num_epochs: int = 1
    shuffle: bool = True
    seed: int | None = None
    device: str = "auto"
    validation_batch_size: int | None = None
    verbose: int = 0
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    divergence_factor: float | None = 100.0
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    initial_epoch: int = 0

    def __post_init__(self) -> None:
        check.int_at_least("batch_size", self.batch_size, 1)
        check.int_at_least("num_epochs", self.num_epochs, 1)
        if self.clip_grad_norm is not None:
            check.positive("clip_grad_norm", self.clip_grad_norm)
        if self.clip_grad_value is not None:
            check.positive("clip_grad_value", self.clip_grad_value)
        if self.divergence_factor is not None:
            check.positive("divergence_factor", self.divergence_factor,
                           "It is how many times the first epoch's loss counts as diverged; None disables it.")
        if self.resume and self.checkpoint_dir is None:
            raise InputError("resume=True needs a checkpoint_dir to resume from")
        if self.seed is not None:
            check.int_at_least("seed", self.seed, 0)


@dataclass(frozen=True)
class TrainData:
    """Training tensors and optional validation tensors (already scaled)."""

    x: Tensor
    y: Tensor
    x_val: Tensor | None = None
    y_val: Tensor | None = None


@dataclass
class Technique:
    """What is trained with: loss, metrics, optimizer, schedule (names, tables or objects).

    `loss="auto"` picks the loss from `task` and the model's output width (see `auto_loss`).
    """

    loss: Any
    optimizer: Any = "adam"
    metrics: Sequence[Any] = field(default_factory=list)
    schedule: Any = None
    task: str | None = None


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


def _penalty_fn(model: nn.Module) -> Callable[[], Tensor | None] | None:
    has = getattr(model, "has_penalties", None)
    penalty = getattr(model, "penalty", None)
    if callable(has) and has() and callable(penalty):
        return penalty  # type: ignore[no-any-return]
    return None


def train(model: nn.Module, data: TrainData, technique: Technique, config: LoopConfig, *,
          callbacks: Sequence[Callback] = ()) -> History:
    """Train `model` in place on `data`; return the History (per-epoch logs, seed, stop reason)."""
    device = resolve_device(config.device)
    seed = config.seed if config.seed is not None else secrets.randbits(31)
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
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        # Seeds the stream that dropout and user modules draw from; fork_rng restores the caller's.
        torch.manual_seed(seed)
        return _train(model, data, technique, config, callbacks, device, seed)


def _train(model: nn.Module, data: TrainData, technique: Technique, config: LoopConfig,
           callbacks: Sequence[Callback], device: torch.device, seed: int) -> History:
    model.to(device)
    x = data.x.to(device)
    n = x.shape[0]
    out = probe_outputs(model, x)
    model.to(device)  # layers built by the probe already sit on `device`; this is a no-op then
    num_outputs = out.shape[-1] if out.dim() > 1 else 1

    loss_fn, forward, from_logits = resolve_loss(model, technique, data.y, num_outputs)
    fuse = forward is not model
    y = _targets(data.y, loss_fn, num_outputs, "training", device)
    x_val = data.x_val.to(device) if data.x_val is not None else None
    y_val = (_targets(data.y_val, loss_fn, num_outputs, "validation", device)
             if data.y_val is not None else None)

    train_metrics = _metrics(technique.metrics, loss_fn, num_outputs)
    val_metrics = _metrics(technique.metrics, loss_fn, num_outputs)
    params = [p for p in model.parameters() if p.requires_grad]
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
    penalty = _penalty_fn(model)

    history = History()
    history.seed = seed
    run = RunState(model=model, num_epochs=config.num_epochs, steps_per_epoch=steps_per_epoch,
                   lr=base_lrs[0], history=history.history, optimizer=optimizer)
    extra: list[Callback] = [ProgressBar(config.verbose)] if config.verbose else []
    cbs = CallbackList([*callbacks, *extra, history], model=model, run=run,
                       params={"epochs": config.num_epochs, "steps": steps_per_epoch,
                               "batch_size": batch_size, "seed": seed})
    generator = torch.Generator(device=device).manual_seed(seed)
    val_batch = config.validation_batch_size or max(batch_size, 1024)
    model.stop_training = False  # type: ignore[assignment]
    state_file = Path(config.checkpoint_dir) / STATE_FILE if config.checkpoint_dir is not None else None
    saved = load_state(state_file) if (config.resume and state_file is not None
                                       and state_file.is_file()) else None
    start_epoch, step = ((saved["epoch"] + 1, saved["step"]) if saved is not None
                         else (config.initial_epoch, config.initial_epoch * steps_per_epoch))
    run.epoch = start_epoch
    last_good = _copy_state(model)
    first_loss: float | None = saved.get("first_loss") if saved is not None else None
    fingerprint = (config.batch_size, n, steps_per_epoch, seed)

    cbs.on_train_begin({})
    try:
        if saved is not None:
            _restore(saved, fingerprint, model, optimizer, schedule, cbs, history, generator, device)
            run.lr = float(optimizer.param_groups[0]["lr"])
            last_good = _copy_state(model)
            if saved.get("stopped"):
                model.stop_training = True  # type: ignore[assignment]
                run.stop_reason = saved.get("stop_reason")
        for epoch in range(start_epoch, config.num_epochs):
            if getattr(model, "stop_training", False):
                break
            run.epoch = epoch
            cbs.on_epoch_begin(epoch, {})
            model.train()
            order = torch.randperm(n, generator=generator, device=device) if config.shuffle else None
            loss_sum = torch.zeros((), device=device)
            penalty_sum = torch.zeros((), device=device)
            for m in train_metrics:
                m.reset()
            for batch in range(steps_per_epoch):
                start = batch * batch_size
                if order is not None:
                    index = order[start:start + batch_size]
                    xb, yb = x[index], y[index]
                else:
                    xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                if cbs.has_batch_hooks:
                    cbs.on_batch_begin(batch, {"size": xb.shape[0]})
                if schedule is not None:
                    factor = schedule(step)
                    for group, base in zip(optimizer.param_groups, base_lrs):
                        group["lr"] = base * factor
                output = forward(xb)
                batch_loss = loss_fn(output, yb)
                objective = batch_loss
                if penalty is not None:
                    extra_loss = penalty()
                    if extra_loss is not None:
                        objective = batch_loss + extra_loss
                        penalty_sum.add_(extra_loss.detach(), alpha=xb.shape[0])
                optimizer.zero_grad(set_to_none=True)
                objective.backward()  # type: ignore[no-untyped-call]
                if config.clip_grad_value is not None:
                    torch.nn.utils.clip_grad_value_(params, config.clip_grad_value, foreach=True)
                if config.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, config.clip_grad_norm, foreach=True)
                optimizer.step()
                step += 1
                loss_sum.add_(batch_loss.detach(), alpha=xb.shape[0])
                if train_metrics:
                    detached = output.detach()
                    for m in train_metrics:
                        m.update(detached, yb, from_logits=from_logits)
                if cbs.has_batch_hooks:
                    cbs.on_batch_end(batch, {"loss": batch_loss.detach(), "size": xb.shape[0]})
            run.step = step
            logs = _epoch_logs(loss_sum, penalty_sum if penalty is not None else None, n, train_metrics)
            if x_val is not None and y_val is not None:
                logs.update(evaluate_tensors(model, forward, loss_fn, val_metrics, x_val, y_val,
                                             batch_size=val_batch, from_logits=from_logits, prefix="val_"))
            run.lr = float(optimizer.param_groups[0]["lr"])
            logs["lr"] = run.lr
            if schedule is not None:
                getattr(schedule, "on_epoch_end", _ignore)(epoch, logs)
            if first_loss is None:
                first_loss = logs["loss"]
            diverged = _diverged(logs["loss"], first_loss, config.divergence_factor)
            if diverged:
                run.request_stop(_divergence_reason(logs, run.lr, history.history.get("loss"), params,
                                                    restored=epoch > 0))
            cbs.on_epoch_end(epoch, logs)
            stopping = bool(getattr(model, "stop_training", False))
            if diverged:
                # Keep what was learned before it went wrong: the last good epoch's weights.
                model.load_state_dict(last_good)
                break
            last_good = _copy_state(model)
            if state_file is not None:
                save_state(state_file, _snapshot(epoch, step, fingerprint, first_loss, model, optimizer,
                                                 schedule, cbs, history, generator, device, stopping,
                                                 run.stop_reason))
            if stopping:
                run.stopped_epoch = epoch
                break
    finally:
        cbs.on_train_end({})
    history.stop_reason = run.stop_reason
    history.params = {"epochs": config.num_epochs, "steps": steps_per_epoch, "batch_size": batch_size,
                      "seed": seed, "device": str(device), "fused_loss": fuse, "from_logits": from_logits,
                      "resumed_from_epoch": start_epoch if saved is not None else None}
    history.model = model
    return history


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


def _ignore(*args: Any) -> None:
    pass


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
            + (" The weights of the last good epoch were kept." if restored else ""))


def _copy_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _snapshot(epoch: int, step: int, fingerprint: tuple[int, ...], first_loss: float | None,
              model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Any, cbs: CallbackList,
              history: History, generator: torch.Generator, device: torch.device, stopped: bool,
              stop_reason: str | None) -> dict[str, Any]:
    """Everything that makes the next step identical to an uninterrupted run's."""
    rng = {"cpu": torch.get_rng_state(), "generator": generator.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return {
        "epoch": epoch, "step": step, "fingerprint": list(fingerprint), "first_loss": first_loss,
        "model": dict(model.state_dict()), "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict() if schedule is not None else None,
        "callbacks": [cb.state_dict() for cb in cbs.callbacks],
        "history": {"history": history.history, "epoch": history.epoch},
        "rng": rng, "stopped": stopped, "stop_reason": stop_reason,
    }


def _restore(saved: dict[str, Any], fingerprint: tuple[int, ...], model: nn.Module,
             optimizer: torch.optim.Optimizer, schedule: Any, cbs: CallbackList, history: History,
             generator: torch.Generator, device: torch.device) -> None:
    if tuple(saved["fingerprint"]) != fingerprint:
        raise InputError(
            f"the checkpoint was made by a different run (batch size, sample count, steps per epoch, seed "
            f"{tuple(saved['fingerprint'])}; this run has {fingerprint}). Resume with the same spec and data, "
            "or start a new run without resume."
        )
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if schedule is not None and saved["schedule"] is not None:
        schedule.load_state_dict(saved["schedule"])
    if len(saved["callbacks"]) != len(cbs.callbacks):
        raise InputError("the checkpoint was made with a different set of callbacks; resume with the same ones")
    for cb, state in zip(cbs.callbacks, saved["callbacks"]):
        if state:
            cb.load_state_dict(state)
    history.history.clear()
    history.history.update({k: list(v) for k, v in saved["history"]["history"].items()})
    history.epoch[:] = saved["history"]["epoch"]
    torch.set_rng_state(saved["rng"]["cpu"])
    generator.set_state(saved["rng"]["generator"])
    if device.type == "cuda" and "cuda" in saved["rng"]:
        torch.cuda.set_rng_state(saved["rng"]["cuda"], device)


def _targets(y: Tensor, loss_fn: Loss, num_outputs: int, part: str, device: torch.device) -> Tensor:
    y = y.to(device)
    try:
        loss_fn.check_target(y, num_outputs)
    except InputError as error:
        raise InputError(f"{part} targets: {error}") from error
    return y.to(loss_fn.target_dtype)


def _metrics(specs: Sequence[Any], loss_fn: Loss, num_outputs: int) -> list[Metric]:
    return [make_metric(s, loss=loss_fn, num_outputs=num_outputs, source="metrics") for s in specs]


def _epoch_logs(loss_sum: Tensor, penalty_sum: Tensor | None, n: int, metrics: list[Metric]) -> dict[str, Any]:
    data_loss = loss_sum.item() / n
    logs: dict[str, Any] = {}
    if penalty_sum is not None:
        pen = penalty_sum.item() / n
        # As in Keras, the training loss includes the regularization penalty; it is also shown apart.
        logs["loss"] = data_loss + pen
        logs["penalty"] = pen
    else:
        logs["loss"] = data_loss
    for m in metrics:
        if getattr(m, "scalar", True):
            logs[m.name] = float(cast(float, m.compute()))
    return logs


def evaluate_tensors(model: nn.Module, forward: Callable[[Tensor], Tensor], loss_fn: Loss,
                     metrics: list[Metric], x: Tensor, y: Tensor, *, batch_size: int,
                     from_logits: bool, prefix: str = "") -> dict[str, float]:
    """Loss and metrics over all of (x, y) in eval mode, batch by batch, exact over the set."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=x.device)
    for m in metrics:
        m.reset()
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                out = forward(xb)
                total.add_(loss_fn(out, yb), alpha=xb.shape[0])
                for m in metrics:
                    m.update(out, yb, from_logits=from_logits)
    finally:
        model.train(was_training)
    logs = {f"{prefix}loss": total.item() / x.shape[0]}
    for m in metrics:
        if getattr(m, "scalar", True):
            logs[f"{prefix}{m.name}"] = float(cast(float, m.compute()))
    return logs


def predict_tensors(model: nn.Module, x: Tensor, *, batch_size: int = 1024) -> Tensor:
    """The model's outputs on x, in eval mode, concatenated (on the device of x)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [model(x[s:s + batch_size]) for s in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else x.new_empty((0,))
