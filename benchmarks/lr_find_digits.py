"""Does `trainlab.lr_find` pick a good learning rate? The digits MLP with sgd, momentum and adam.

For each optimizer: the range test (3 seeds, 200 steps, lr 1e-6 to 10) gives a
suggestion; then the MLP of examples/digits_mlp.toml trains 10 epochs at each
lr of a grid of 7 (10^-3.5 to 10^-0.5, half a decade apart) and at the
suggestion, `--seeds` seeds each (stacked members, one pass per optimizer). The
claim: the suggestion's validation accuracy is within 2 points of the best
grid lr's.

    PYTHONPATH=src python benchmarks/lr_find_digits.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import trainlab
from trainlab.api import prepare
from trainlab.datasets import as_dataset
from trainlab.diagnose import lr_find
from trainlab.spec import load_spec
from trainlab.stacked import MemberConfig, fit_members

GRID = [round(10 ** e, 6) for e in np.arange(-3.5, -0.4, 0.5)]
OPTIMIZERS = {"sgd": "sgd", "momentum": "momentum", "adam": "adam"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    spec = load_spec("examples/digits_mlp.toml")
    prepared = prepare(as_dataset("digits"), validation_split=spec.data.validation_split, seed=0)
    train_part = prepared.data
    rows = []
    for label, name in OPTIMIZERS.items():
        started = time.perf_counter()
        found = lr_find(trainlab.Sequential(spec.model.layers), train_part.__class__(train_part.x, train_part.y),
                        name, num_seeds=3, num_steps=200, batch_size=spec.recipe.batch_size)
        find_seconds = time.perf_counter() - started
        lrs = [*GRID, found.suggestion]
        members = [MemberConfig(seed=s, optimizer={"name": name, "lr": lr}) for lr in lrs for s in range(args.seeds)]
        histories = fit_members(trainlab.Sequential(spec.model.layers), members, train_part, metrics=["accuracy"],
                                batch_size=spec.recipe.batch_size, num_epochs=args.epochs)
        accuracy = np.array([h.history["val_accuracy"][-1] for h in histories]).reshape(len(lrs), args.seeds)
        means = accuracy.mean(axis=1) * 100
        best = int(np.argmax(means[:-1]))
        rows.append((label, found, means, best, find_seconds))
        print(f"\n{label}: lr_find suggests {found.suggestion:.3g}{' (weak)' if found.weak else ''} "
              f"in {find_seconds:.0f} s; zones " +
              ", ".join(f"{k} {a:.2g}-{b:.2g}" for k, (a, b) in found.zones.items()))
        print(f"  {found.reasoning}")
        print("  lr        " + "  ".join(f"{lr:>8.3g}" for lr in lrs[:-1]) + "  | suggested")
        print("  val acc % " + "  ".join(f"{m:>8.2f}" for m in means[:-1]) + f"  | {means[-1]:.2f}")
        gap = means[best] - means[-1]
        print(f"  best grid lr {lrs[best]:.3g} ({means[best]:.2f}%); suggestion {found.suggestion:.3g} "
              f"({means[-1]:.2f}%): {gap:+.2f} points behind -> {'PASS' if gap <= 2.0 else 'FAIL'} (goal <= 2)")
    print(f"\n{args.seeds} seeds per lr, {args.epochs} epochs, validation accuracy (mean over seeds).")


if __name__ == "__main__":
    main()
