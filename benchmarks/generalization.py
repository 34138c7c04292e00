"""The generalization tools against the plain fits they replace, measured in one run.

Rows (each a `Row`: what trainlab does, what it is compared with, and the
ratio it must reach), timed interleaved round by round (A, B, B, A, ...) in
this one process and reported as the median over rounds of the per-round
ratio reference / trainlab, so that the noise of a shared machine hits both
sides alike:

1. 5-fold cross-validation of the digits MLP 64-256-256-10
   (`trainlab.cross_validate`, the folds as stacked members) against 5
   sequential `trainlab.fit` calls on the same folds (each with its held-out
   fold as validation data): target >= 2x.
2. Bagging of 10 digits MLPs (`trainlab.generalize.bagging`, the members as
   stacked members on their bootstrap samples) against 10 sequential
   `trainlab.fit` calls on the same bootstrap samples: target >= 2x.

Adding a row: write a function ``args -> Row`` and append it to `ROWS`; a row
whose ``target`` is None is reported without a pass/fail verdict (for figures
such as "the time of X against one training epoch").

    PYTHONPATH=src python benchmarks/generalization.py [--rounds 3] [--epochs 5] [--threads N] [--only NAME]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import trainlab
from trainlab.generalize import bagging, cross_validate
from trainlab.generalize.bagging import bootstrap_rows
from trainlab.layers import Dense


@dataclass
class Row:
    """One figure: trainlab's way (`ours`) against the reference, both timed in this process."""

    name: str
    ours: Callable[[], object]
    reference: Callable[[], object]
    ours_label: str = "trainlab"
    reference_label: str = "reference"
    target: float | None = None  # reference time / our time must reach this; None: report only


def digits_model() -> trainlab.Sequential:
    return trainlab.Sequential([Dense(256, activation="relu"), Dense(256, activation="relu"),
                                Dense(10, activation="softmax")])


def recipe(args: argparse.Namespace) -> dict[str, object]:
    return {"optimizer": {"name": "adam", "lr": 0.001}, "batch_size": 32, "num_epochs": args.epochs, "seed": 0,
            "metrics": ["accuracy"]}


def cv_row(args: argparse.Namespace) -> Row:
    digits = trainlab.datasets.load("digits")
    x, y = digits.x.numpy(), digits.y.numpy()
    folds = cross_validate(digits_model(), digits, {**recipe(args), "num_epochs": 1}, folds=5).folds

    def ours() -> object:
        return cross_validate(digits_model(), digits, recipe(args), folds=5)

    def reference() -> object:
        return [trainlab.fit(digits_model(), (x[f.train_rows], y[f.train_rows]), recipe(args),
                             validation_data=(x[f.test_rows], y[f.test_rows])) for f in folds]

    return Row("5-fold CV of the digits MLP", ours, reference, "stacked CV", "5 sequential fits", target=2.0)


def bagging_row(args: argparse.Namespace) -> Row:
    digits = trainlab.datasets.load("digits")
    x, y = digits.x.numpy(), digits.y.numpy()
    n_train = len(y) - int(round(len(y) * 0.2))  # bagging holds out the last 20% as trainlab.fit does
    samples = bootstrap_rows(n_train, 10, seed=0)

    def ours() -> object:
        return bagging(digits_model(), digits, recipe(args), members=10)

    def reference() -> object:
        return [trainlab.fit(digits_model(), (x[drawn], y[drawn]), recipe(args),
                             validation_data=(x[n_train:], y[n_train:])) for drawn, _ in samples]

    return Row("bagging of 10 digits MLPs", ours, reference, "stacked bagging", "10 sequential fits", target=2.0)


#: The rows, in the order they are printed; append a function ``args -> Row`` to add one.
ROWS: list[Callable[[argparse.Namespace], Row]] = [cv_row, bagging_row]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(row: Row, rounds: int) -> tuple[float, float, list[float]]:
    """Median times of both sides and the per-round ratios, alternating which side goes first."""
    ours_times, reference_times, ratios = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            a = timed(row.ours)
            b = timed(row.reference)
        else:
            b = timed(row.reference)
            a = timed(row.ours)
        ours_times.append(a)
        reference_times.append(b)
        ratios.append(b / a)
    return statistics.median(ours_times), statistics.median(reference_times), ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="Epochs of every fit.")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for both sides.")
    parser.add_argument("--only", default=None, help="Run the rows whose name contains this text.")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds, "
          f"{args.epochs} epochs per fit")
    verdicts = []
    for make in ROWS:
        row = make(args)
        if args.only and args.only not in row.name:
            continue
        row.ours()  # warm-up: first-call costs (imports, allocator) are not the tool's
        ours, reference, ratios = measure(row, args.rounds)
        ratio = statistics.median(ratios)
        shown = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"{row.name:<32} {row.ours_label} {ours:8.3f} s   {row.reference_label} {reference:8.3f} s   "
              f"ratio {ratio:5.2f}  (rounds: {shown})")
        if row.target is not None:
            verdicts.append(f"{row.name}: {ratio:.2f}x (target >= {row.target:g}x, "
                            f"{'met' if ratio >= row.target else 'NOT met'})")
    if not args.only or args.only in "top Hessian eigenvalue":
        from sharpness import format_row, hessian_row  # benchmarks/sharpness.py, beside this script

        print(format_row(hessian_row(rounds=args.rounds)))
    if verdicts:
        print("summary: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
