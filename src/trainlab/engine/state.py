"""Per-member run state, and the checkpoint snapshot that makes the next step identical."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.callbacks import CallbackList, History, RunState
from trainlab.errors import InputError
from trainlab.losses import Loss
from trainlab.metrics import Metric


@dataclass
class MemberState:
    """One member of a run: what it trains, its data rows, its progress and its record."""

    index: int
    seed: int
    module: nn.Module
    loss: Loss
    optimizer: torch.optim.Optimizer
    params: list[Tensor]
    schedule: Any
    base_lrs: list[float]
    history: History
    callbacks: CallbackList
    run: RunState
    generator: torch.Generator
    n: int
    batch_size: int
    rows: Tensor | None = None  # training rows of the shared x (None: all of them, in order)
    sample_weight: Tensor | None = None  # one weight per row of the shared x
    train_metrics: list[Metric] = field(default_factory=list)
    val_metrics: list[Metric] = field(default_factory=list)
    has_penalty: bool = False
    state_file: Path | None = None
    start_epoch: int = 0
    step: int = 0
    first_loss: float | None = None
    first_batch_loss: float | None = None  # the reference a batch's loss is held against (divergence)
    divergence_bound: tuple[float, float] | None = None  # (first_batch_loss, the bound it gives), cached
    blowup: Tensor | None = None  # on CUDA: whether a batch of this epoch blew up, read at the epoch's end
    diverged_at: dict[str, Any] | None = None  # the batch that blew up mid-epoch: loss, batch, epoch, lr
    last_good: dict[str, Tensor] | None = None
    stopped: bool = False
    ended: bool = False
    steps_record: dict[str, list[float]] | None = None
    pending_losses: list[Tensor] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def size_at(self, batch: int) -> int:
        """The member's batch size at `batch` of its pass (0 once the pass is over)."""
        if batch >= self.steps:
            return 0
        return self.batch_size if batch < self.steps - 1 else self.n - (self.steps - 1) * self.batch_size


def copy_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fingerprint(member: MemberState) -> tuple[int, ...]:
    """What must match for a checkpoint to continue this run: what changes training, nothing else."""
    return (member.batch_size, member.n, member.steps, member.seed)


def kept_callbacks(callbacks: CallbackList) -> list[Any]:
    """The callbacks whose state is checkpointed: all but display-only ones (progress bars)."""
    return [cb for cb in callbacks.callbacks if not getattr(cb, "display_only", False)]


def snapshot(member: MemberState, epoch: int, optimizer_state: dict[str, Any], device: torch.device,
             stopped: bool) -> dict[str, Any]:
    """Everything that makes the member's next step identical to an uninterrupted run's."""
    rng = {"cpu": torch.get_rng_state(), "generator": member.generator.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return {
        "epoch": epoch, "step": member.step, "fingerprint": list(fingerprint(member)),
        "first_loss": member.first_loss, "first_batch_loss": member.first_batch_loss, "model": dict(member.module.state_dict()), "optimizer": optimizer_state,
        "schedule": member.schedule.state_dict() if member.schedule is not None else None,
        "callbacks": [cb.state_dict() for cb in kept_callbacks(member.callbacks)],
        "history": {"history": member.history.history, "epoch": member.history.epoch},
        "rng": rng, "stopped": stopped, "stop_reason": member.run.stop_reason,
    }


def restore(member: MemberState, saved: dict[str, Any], device: torch.device) -> None:
    """Put the member back where `saved` was taken (weights, optimizer, schedule, callbacks, RNG, history)."""
    here = fingerprint(member)
    if tuple(saved["fingerprint"]) != here:
        raise InputError(
            f"the checkpoint was made by a different run (batch size, sample count, steps per epoch, seed "
            f"{tuple(saved['fingerprint'])}; this run has {here}). Resume with the same spec and data, "
            "or start a new run without resume."
        )
    member.module.load_state_dict(saved["model"])
    member.optimizer.load_state_dict(saved["optimizer"])
    if member.schedule is not None and saved["schedule"] is not None:
        member.schedule.load_state_dict(saved["schedule"])
    callbacks = kept_callbacks(member.callbacks)
    if len(saved["callbacks"]) != len(callbacks):
        raise InputError("the checkpoint was made with a different set of callbacks; resume with the same ones")
    for cb, state in zip(callbacks, saved["callbacks"]):
        if state:
            cb.load_state_dict(state)
    history = member.history
    history.history.clear()
    history.history.update({k: list(v) for k, v in saved["history"]["history"].items()})
    history.epoch[:] = saved["history"]["epoch"]
    torch.set_rng_state(saved["rng"]["cpu"])
    member.generator.set_state(saved["rng"]["generator"])
    if device.type == "cuda" and "cuda" in saved["rng"]:
        torch.cuda.set_rng_state(saved["rng"]["cuda"], device)
    member.step = saved["step"]
    member.first_loss = saved.get("first_loss")
    member.first_batch_loss = saved.get("first_batch_loss")
    member.start_epoch = saved["epoch"] + 1
    member.run.epoch = member.start_epoch
    member.run.step = member.step
    member.run.lr = float(member.optimizer.param_groups[0]["lr"])
    if saved.get("stopped"):
        member.run.stop_requested = True
        member.run.stop_reason = saved.get("stop_reason")
