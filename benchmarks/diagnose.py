"""The doctor's two numbers: what the statistics cost, and how often a healthy run gets a false alarm.

1. Cost: the digits MLP of examples/digits_mlp.toml trains 5 epochs with
   `TrainingStatistics` recording once per epoch (its defaults: a probe batch
   of 128, 4 measured batches per epoch) and 5 epochs without, interleaved, `--repeats`
   times; the extra time over the plain epoch time. Goal: <= 10%.
2. False alarms: `trainlab diagnose examples/digits_mlp.toml` (the short probe
   training, at most 20 epochs, early stopping as the spec says) on seeds
   0..`--seeds`-1; a false alarm is any verdict other than "healthy". Goal: 0.

    PYTHONPATH=src python benchmarks/diagnose.py [--repeats 5] [--seeds 10] [--skip-alarms] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import trainlab
from trainlab.api import prepare
from trainlab.callbacks import Callback
from trainlab.datasets import as_dataset
from trainlab.diagnose import TrainingStatistics, diagnose_spec
from trainlab.spec import load_spec, read_toml

SPEC = "examples/digits_mlp.toml"


def cost(repeats: int, epochs: int, probe_size: int, grad_batches: int) -> None:
    spec = load_spec(SPEC)
    data = prepare(as_dataset("digits"), validation_split=0.2, seed=0).data
    recipe = {"optimizer": spec.recipe.optimizer, "num_epochs": epochs, "seed": 0,
              "batch_size": spec.recipe.batch_size}

    def one(with_statistics: bool) -> float:
        callbacks = ([TrainingStatistics(probe=data.x, probe_size=probe_size, grad_batches=grad_batches)]
                     if with_statistics else [])
        model = trainlab.Sequential(spec.model.layers)
        started = time.perf_counter()
        trainlab.fit(model, (data.x, data.y), recipe, validation_data=(data.x_val, data.y_val), scaling=None,
                     callbacks=callbacks)
        return time.perf_counter() - started

    one(False)
    one(True)  # warm-up
    plain, measured = [], []
    for _ in range(repeats):
        plain.append(one(False))
        measured.append(one(True))
    ratios = [m / p - 1 for m, p in zip(measured, plain)]
    print(f"statistics cost: plain {statistics.median(plain) / epochs * 1e3:.0f} ms/epoch, with statistics "
          f"{statistics.median(measured) / epochs * 1e3:.0f} ms/epoch (probe {probe_size} rows, {grad_batches} "
          f"measured batches); extra {statistics.median(ratios):+.1%} "
          f"(median of {repeats} interleaved pairs of {epochs}-epoch runs; per pair: "
          + ", ".join(f"{r:+.1%}" for r in ratios) + "); goal <= +10%")


class EpochTimer(Callback):
    """The wall time of each epoch, from on_epoch_begin to the end of on_epoch_end of the callbacks before it."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def cost_within_runs(runs: int, epochs: int, probe_size: int, grad_batches: int) -> None:
    """Recorded and unrecorded epochs alternate in one run: neighbours in time see the same machine load."""
    spec = load_spec(SPEC)
    data = prepare(as_dataset("digits"), validation_split=0.2, seed=0).data
    recipe = {"optimizer": spec.recipe.optimizer, "num_epochs": epochs, "seed": 0,
              "batch_size": spec.recipe.batch_size}
    ratios = []
    for run in range(runs):
        stats = TrainingStatistics(probe=data.x, probe_size=probe_size, grad_batches=grad_batches,
                                   epochs=range(run % 2, epochs, 2))
        timer = EpochTimer()
        trainlab.fit(trainlab.Sequential(spec.model.layers), (data.x, data.y), recipe,
                     validation_data=(data.x_val, data.y_val), scaling=None, callbacks=[stats, timer])
        recorded = [t for e, t in enumerate(timer.seconds) if stats.records_epoch(e)]
        plain = [t for e, t in enumerate(timer.seconds) if not stats.records_epoch(e)]
        ratios.append(statistics.median(recorded) / statistics.median(plain) - 1)
    print(f"statistics cost within runs: recorded epochs take {statistics.median(ratios):+.1%} longer than the "
          f"unrecorded epochs between them (median of {runs} runs of {epochs} epochs, every other epoch recorded; "
          "per run: " + ", ".join(f"{r:+.1%}" for r in ratios) + "); goal <= +10%")


def false_alarms(seeds: int, first_seed: int = 0) -> None:
    raw = read_toml(SPEC)
    alarms = []
    with tempfile.TemporaryDirectory() as runs:
        for seed in range(first_seed, first_seed + seeds):
            raw["recipe"]["seed"] = seed
            started = time.perf_counter()
            diagnosis = diagnose_spec(raw, runs_dir=runs, report=False)
            names = [v.name for v in diagnosis.verdicts]
            if names != ["healthy"]:
                alarms.append((seed, names))
            print(f"  seed {seed}: {', '.join(names)} ({len(diagnosis.history['loss'])} epochs, "
                  f"final val_accuracy {diagnosis.history['val_accuracy'][-1]:.4f}, "
                  f"{time.perf_counter() - started:.0f} s)")
    print(f"false alarms on {seeds} healthy seeds of {SPEC}: {len(alarms)} ({len(alarms) / seeds:.0%}); goal 0"
          + (f": {alarms}" if alarms else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--probe-size", type=int, default=128)
    parser.add_argument("--grad-batches", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--skip-alarms", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if not args.skip_cost:
        cost(args.repeats, args.epochs, args.probe_size, args.grad_batches)
        cost_within_runs(args.repeats, 4 * args.epochs, args.probe_size, args.grad_batches)
    if not args.skip_alarms:
        false_alarms(args.seeds, args.first_seed)


if __name__ == "__main__":
    main()
