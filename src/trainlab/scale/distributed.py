"""One model trained by several processes with torch.distributed (data parallel).

    torchrun --nproc_per_node 2 -m trainlab fit SPEC      # one host, two processes
    trainlab fit SPEC --nproc 2                            # the same; trainlab starts torchrun

How a run is shared, with no loop of its own (every process trains through `trainlab.engine`):

- Every process loads the same data and draws the same permutation of the
  training rows each epoch (the engine's per-run generator, seeded from the
  recipe). `recipe.batch_size` is the *global* batch: each batch of that
  permutation is split into contiguous parts, one per process, as evenly as
  possible (`ShardBatch`, a batch transform applied after the recipe's own
  augmentation, so augmentation draws the same numbers as in one process).
- After backward, the gradients are averaged over the processes, each weighted
  by its share of the batch's rows, in one all-reduce (`AllReduceGradients`, a
  gradient hook placed before gradient clipping). Every process then takes the
  same optimizer step, so the weights stay equal on every process and equal
  those of a one-process run with the same batch size, to float rounding.
  A batch size that the processes do not divide is fine: the uneven parts
  are weighted by their rows.
- Each epoch's training loss and metrics are reduced over the processes
  (row-weighted means of each process's values; exact for the loss, accuracy,
  mae, mse and other means) before any callback sees them, so early stopping
  decides the same on every process. Validation runs on every process on the
  whole validation set; rank 0's values are the ones kept.
- Rank 0 writes the run folder, its history and its checkpoints; the others
  keep theirs in a temporary folder. ``--resume`` continues the newest
  unfinished run: rank 0 sends its checkpoint to the other processes, so no
  shared file system is needed.

A spec cannot be split when some process would get no row of some batch: a
batch size smaller than the number of processes, or a last batch of the epoch
with fewer rows than processes (including fewer training rows than processes).
That is refused before training, with the batch sizes that work.

BatchNormalization normalizes over each process's part of the batch (no
SyncBatchNorm), and dropout masks are drawn per process; the one-process
equality holds for models without them.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from trainlab.callbacks import Callback
from trainlab.errors import InputError

if TYPE_CHECKING:
    from trainlab.callbacks import RunState
    from trainlab.engine import LoopConfig
    from trainlab.runs import RunResult
    from trainlab.spec import FitSpec

__all__ = ["AllReduceGradients", "ReduceLogs", "Shard", "ShardBatch", "check_shardable", "distributed_env",
           "launch", "run_spec_distributed"]

#: How long a process waits for the others at a collective before the run fails with an error.
TIMEOUT = datetime.timedelta(minutes=10)


def distributed_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when this process was started by torchrun with more than one
    process; None otherwise."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return None
    return (rank, world, local) if world > 1 else None


def _parts(total: int, world: int) -> list[int]:
    """Rows of each process in a batch of `total` rows: as even as possible, the first ones larger."""
    return [total // world + (1 if r < total % world else 0) for r in range(world)]


def check_shardable(num_rows: int, batch_size: int, world: int) -> None:
    """Refuse a run whose batches cannot give every process at least one row.

    Example:
        >>> check_shardable(1437, 32, 2)  # 44 batches of 32 rows, then 29: each process gets 16 and 14 or 15
        >>> check_shardable(1441, 32, 2)  # the last batch has 1 row: one process would get none
        Traceback (most recent call last):
        ...
        trainlab.errors.InputError: recipe.batch_size: with 2 processes each batch is split ...
    """
    last = num_rows % batch_size or batch_size
    if num_rows >= world and batch_size >= world and last >= world:
        return
    if num_rows < world:
        raise InputError(
            f"the training set has {num_rows} row{'s' * (num_rows != 1)} but the run is split between {world} "
            f"processes; each process needs at least one row of every batch. Use at most {num_rows} "
            f"process{'es' * (num_rows != 1)} (--nproc, "
            "torchrun --nproc_per_node), or more data.")
    good = [b for b in range(max(world, batch_size - 8), batch_size + 9)
            if b >= world and (num_rows % b == 0 or num_rows % b >= world)]
    closest = sorted(good, key=lambda b: (abs(b - batch_size), b))[:3]
    what = (f"batch_size = {batch_size} is smaller than the number of processes" if batch_size < world else
            f"the last batch of each epoch has {last} row{'s' * (last != 1)} ({num_rows} training rows, "
            f"batch size {batch_size})")
    raise InputError(
        f"recipe.batch_size: with {world} processes each batch is split between them and every process needs "
        f"at least one row of every batch, but {what}. Use a batch size that leaves 0 or at least {world} rows "
        f"in the last batch (for example {', '.join(map(str, sorted(closest)))}), or fewer processes. "
        "batch_size is the global batch: the processes share it, and it need not be a multiple of their number.")


@dataclass
class ShardBatch:
    """Batch transform: this process's contiguous part of the global batch (see the module docstring).

    It counts the rows it passes on, for `ReduceLogs`' row-weighted means and
    `AllReduceGradients`' weights.
    """

    rank: int
    world: int
    local_rows: int = 0  # rows of the current batch on this process
    batch_rows: int = 0  # rows of the current global batch
    epoch_rows: int = 0  # rows this process trained on since the epoch began

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        parts = _parts(x.shape[0], self.world)
        start = sum(parts[:self.rank])
        self.batch_rows, self.local_rows = x.shape[0], parts[self.rank]
        self.epoch_rows += self.local_rows
        return x[start:start + self.local_rows], y[start:start + self.local_rows]


@dataclass
class AllReduceGradients:
    """Gradient hook: the row-weighted mean of every process's gradients, in one all-reduce.

    Each process's loss is the mean over its part of the batch, so weighting by
    ``rows / batch_rows`` and summing gives the gradient of the mean over the
    whole batch: the gradient one process would compute. Parameters without a
    gradient (unused in this step; the same on every process) are left alone.
    """

    shard: ShardBatch

    def __call__(self, params: Sequence[Tensor], run: RunState) -> None:
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        flat.mul_(self.shard.local_rows / max(self.shard.batch_rows, 1))
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


class ReduceLogs(Callback):
    """First callback of each process: the epoch's training loss and metrics reduced over the processes
    (row-weighted means), validation values from rank 0, before any other callback reads them."""

    #: It holds no state of its own, so checkpoints leave it out (as they leave out progress bars):
    #: a checkpoint made by one process resumes on several, and the other way round.
    display_only = True

    def __init__(self, shard: ShardBatch) -> None:
        self.shard = shard

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.shard.epoch_rows = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        import torch.distributed as dist

        if logs is None:
            return
        numbers = sorted(k for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                         and k != "lr")
        train = [k for k in numbers if not k.startswith("val_")]
        val = [k for k in numbers if k.startswith("val_")]
        device = _collective_device()
        rows = float(self.shard.epoch_rows)
        summed = torch.tensor([float(logs[k]) * rows for k in train] + [rows], dtype=torch.float64, device=device)
        dist.all_reduce(summed)
        total = max(float(summed[-1]), 1.0)
        for i, key in enumerate(train):
            logs[key] = float(summed[i]) / total
        if val:
            kept = torch.tensor([float(logs[k]) for k in val], dtype=torch.float64, device=device)
            dist.broadcast(kept, src=0)
            for i, key in enumerate(val):
                logs[key] = float(kept[i])


def _collective_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@dataclass
class Shard:
    """This process's part of a run shared by `world` processes: what `trainlab.fit` adds to its loop."""

    rank: int
    world: int
    batch: ShardBatch = field(init=False)

    def __post_init__(self) -> None:
        self.batch = ShardBatch(self.rank, self.world)

    def adapt(self, config: LoopConfig, callbacks: list[Callback]) -> tuple[LoopConfig, list[Callback]]:
        """The loop settings and callbacks of this process: the batch split after the recipe's own
        transforms, the gradient all-reduce before clipping, the log reduction before every callback."""
        hooks = (AllReduceGradients(self.batch), *config.all_gradient_hooks())
        config = replace(config, batch_transforms=(*config.batch_transforms, self.batch), gradient_hooks=hooks,
                         clip_grad_norm=None, clip_grad_value=None, verbose=config.verbose if self.rank == 0 else 0)
        return config, [ReduceLogs(self.batch), *callbacks]


def _training_rows(spec: FitSpec, dataset: Any) -> int:
    from trainlab.api import prepare

    prepared = prepare(dataset, validation_split=spec.data.validation_split, stratify=spec.data.stratify,
                       scaling=None, seed=spec.recipe.seed)
    return int(prepared.data.x.shape[0])


def check_spec(spec: FitSpec, world: int) -> Any:
    """Everything `trainlab fit` checks before training, plus whether the run can be split between
    `world` processes; returns the loaded data set."""
    from trainlab.api import check_before_training, dataset_from_spec

    dataset = dataset_from_spec(spec.data)
    check_before_training(spec, dataset)
    check_shardable(_training_rows(spec, dataset), spec.recipe.batch_size, world)
    return dataset


def _send_bytes(payload: bytes | None, device: torch.device) -> bytes | None:
    """Rank 0's `payload` (or None) on every process, as a byte tensor (no pickle)."""
    import torch.distributed as dist

    size = torch.tensor([-1 if payload is None else len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(size, src=0)
    n = int(size.item())
    if n < 0:
        return None
    data = (torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device) if payload
            else torch.empty(n, dtype=torch.uint8, device=device))
    if n:
        dist.broadcast(data, src=0)
    return bytes(data.cpu().numpy().tobytes())


def run_spec_distributed(spec: FitSpec, *, runs_dir: str | Path = "runs", verbose: int = 1, resume: bool = False,
                         keep_checkpoint: bool = False) -> RunResult | None:
    """`trainlab.run_spec` in one process of a torchrun job; rank 0 returns the RunResult, the others None.

    Every process checks the spec and the data first (each raises the same
    InputError), then joins the process group (gloo on the CPU, NCCL on CUDA).
    """
    import torch.distributed as dist

    from trainlab.api import fit
    from trainlab.checkpoint import STATE_FILE
    from trainlab.engine import resolve_device
    from trainlab.models import Sequential
    from trainlab.runs import CHECKPOINT_DIR, HistoryFile, run_folder, write_run
    from trainlab.spec import spec_to_dict

    found = distributed_env()
    if found is None:
        raise InputError("run_spec_distributed runs inside a torchrun job (WORLD_SIZE > 1); use "
                         "`trainlab fit SPEC --nproc N` or `torchrun --nproc_per_node N -m trainlab fit SPEC`")
    rank, world, local_rank = found
    run_folder(runs_dir, spec.name)
    dataset = check_spec(spec, world)
    device = resolve_device(spec.recipe.device)
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    collective = _collective_device()
    shard = Shard(rank, world)

    def train_here(checkpoint_dir: Path, resuming: bool, callbacks: list[Callback]) -> tuple[Any, Any]:
        model = Sequential(spec.model.layers, name=spec.name)
        history = fit(model, dataset, spec.recipe, validation_split=spec.data.validation_split,
                      stratify=spec.data.stratify, scaling=spec.data.scaling, callbacks=callbacks,
                      verbose=verbose if rank == 0 else 0, checkpoint_dir=checkpoint_dir, resume=resuming,
                      distributed=shard)
        history.params["processes"] = world
        return history, model

    try:
        if rank == 0:
            def train(staging: Path, resuming: bool, history_file: Callback) -> tuple[Any, Any]:
                state = staging / CHECKPOINT_DIR / STATE_FILE
                _send_bytes(state.read_bytes() if resuming and state.is_file() else None, collective)
                return train_here(staging / CHECKPOINT_DIR, resuming, [history_file])

            return write_run(Path(runs_dir), spec.name, spec_to_dict(spec), train, resume=resume,
                             keep_checkpoint=keep_checkpoint, recipe=spec.recipe)
        scratch = Path(tempfile.mkdtemp(prefix="trainlab-rank"))
        try:
            state = _send_bytes(None, collective)
            (scratch / CHECKPOINT_DIR).mkdir()
            if state is not None:
                (scratch / CHECKPOINT_DIR / STATE_FILE).write_bytes(state)
            # The same callbacks as rank 0 (its history file among them), so that checkpoints fit both.
            train_here(scratch / CHECKPOINT_DIR, state is not None, [HistoryFile(scratch / "history.jsonl")])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return None
    finally:
        if started:
            dist.destroy_process_group()


def launch(spec_file: Path, nproc: int, args: Sequence[str]) -> int:
    """Check the spec, then run ``torchrun --standalone --nproc_per_node N -m trainlab fit SPEC ARGS`` on
    this host; return its exit status. Bad input is refused here, before any process starts."""
    from trainlab.spec import load_spec

    spec = load_spec(spec_file)
    check_spec(spec, nproc)
    env = dict(os.environ)
    # torchrun sets one thread per process when none is set, and says so; share the cores instead.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "trainlab", "fit", str(spec_file), *args]
    return subprocess.call(command, env=env)
