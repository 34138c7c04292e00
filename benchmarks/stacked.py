"""Stacked members against the same runs one after another with trainlab's single-run engine.

Four figures, each measured in this one process, stacked and one-at-a-time
interleaved round by round (A, B, A, B, ...), reported as the median over
rounds of the per-round ratio, so that machine noise hits both sides alike:

1. A 32-member learning-rate sweep of the iris MLP 4-16-3 (batch 16, 50
   epochs), where per-step overhead dominates: one-at-a-time / stacked.
2. A 32-member learning-rate sweep of the digits MLP 64-256-256-10 (batch 32,
   20 epochs): one-at-a-time / stacked.
3. 5-fold cross-validation of the iris MLP as 5 stacked members, against one
   plain fit of the same model (80/20 split): stacked CV / one fit.
4. What ``stack="auto"`` picks on each of these workloads, and its time
   against the faster of the two paths.
5. The study ``examples/regularization.toml`` (18 runs: none, L2, L1, dropout,
   batch norm and early stopping, 3 seeds each), its groups trained through
   `trainlab.study.runner.train_group` with ``stack="auto"`` against
   ``stack="off"`` (one run at a time): one-at-a-time / stacked. Runs whose
   layers differ only in strengths (L2, L1, dropout: the runs without Dropout
   take rate-0 Dropout layers) share a stack with the plain and early-stopping
   runs; batch norm is a stack of its own.

Both paths go through `trainlab.stacked.fit_members` (``stack="on"`` and
``stack="off"``; "off" calls `trainlab.engine.train` once per member), with
the same members, data, metrics (accuracy) and validation data.

Threads. By default both paths run with torch's own intra-op setting (2 on a
2-core machine); the stacked run then picks its threads by timing its first
steps. When other processes keep the cores busy, torch's threads make the
single-run engine many times slower (every small parallel kernel waits for a
descheduled thread), which inflates the ratios; ``--threads 1`` runs both
paths single-threaded, the like-for-like comparison of the work each does.

    python benchmarks/stacked.py [--rounds 3] [--threads N] [--quick] [--study-epochs 60] [--only-study]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import trainlab
from trainlab.datasets import split_validation
from trainlab.engine import LoopConfig, Technique, TrainData, train
from trainlab.layers import Dense
from trainlab.stacked import MemberConfig, fit_members


def iris_model() -> trainlab.Sequential:
    return trainlab.Sequential([Dense(16, activation="relu"), Dense(3, activation="softmax")])


def digits_model() -> trainlab.Sequential:
    return trainlab.Sequential([Dense(256, activation="relu"), Dense(256, activation="relu"),
                                Dense(10, activation="softmax")])


def standardized(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = trainlab.datasets.load(name)
    x = (data.x - data.x.mean(0)) / (data.x.std(0) + 1e-6)
    return x, data.y


def lr_sweep(count: int) -> list[MemberConfig]:
    lrs = np.geomspace(1e-4, 1e-1, count)
    return [MemberConfig(seed=k, optimizer={"name": "adam", "lr": float(lr)}) for k, lr in enumerate(lrs)]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def compare(name: str, stacked: Callable[[], object], other: Callable[[], object], rounds: int,
            other_name: str) -> tuple[float, float, float]:
    """Median over rounds of other/stacked, and the median times; stacked and other interleaved."""
    stacked()  # warm-up: allocator growth, lazy initialization, kernel selection
    other()
    ratios, ours, theirs = [], [], []
    for _ in range(rounds):
        a = timed(stacked)
        b = timed(other)
        ours.append(a)
        theirs.append(b)
        ratios.append(b / a)
    ratio = statistics.median(ratios)
    print(f"{name:<44}  stacked {statistics.median(ours):7.3f} s   {other_name} {statistics.median(theirs):7.3f} s   "
          f"ratio {ratio:6.2f}  (rounds: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    return ratio, statistics.median(ours), statistics.median(theirs)


def auto_check(name: str, run_auto: Callable[[], list], stacked_s: float, other_s: float, rounds: int,
               stacking_wins: bool) -> bool:
    picks, times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        histories = run_auto()
        times.append(time.perf_counter() - start)
        picks.append(histories[0].params["stacked"])
    chose_stack = all(picks)
    ok = chose_stack == stacking_wins
    print(f"{name:<44} auto picked {'stacked' if chose_stack else 'one-at-a-time' if not any(picks) else 'mixed'}"
          f" in {rounds}/{rounds} runs ({statistics.median(times):.3f} s); faster path: "
          f"{'stacked' if stacking_wins else 'one-at-a-time'} -> {'ok' if ok else 'WRONG'}", flush=True)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer epochs and rounds (smoke run)")
    parser.add_argument("--study-epochs", type=int, default=60,
                        help="epochs of each run of figure 5 (the study's own 60 by default)")
    parser.add_argument("--only-study", action="store_true", help="measure figure 5 only")
    parser.add_argument("--figures", default="1,2,3,4,5",
                        help="the figures to measure, e.g. 1,3,5 (4 needs the figures it checks)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for both paths (default: torch's own setting)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else args.rounds
    scale = 10 if args.quick else 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, trainlab {trainlab.__version__}")
    if args.only_study:
        regularization_study(rounds, args.study_epochs)
        return

    wanted = {int(f) for f in args.figures.split(",")}
    nan = float("nan")
    r1 = s1 = o1 = r2 = s2 = o2 = r3 = s3 = o3 = o3_seq = r5 = nan
    x, y = standardized("iris")
    xt, yt, xv, yv = split_validation(x, y, fraction=0.2)
    iris = TrainData(xt, yt, xv, yv)
    epochs = 50 // scale
    sweep = lr_sweep(32)

    def iris_run(stack: str) -> list:
        return fit_members(iris_model(), sweep, iris, metrics=["accuracy"], batch_size=16, num_epochs=epochs,
                           device="cpu", stack=stack)

    if 1 in wanted:
        r1, s1, o1 = compare("1. iris 4-16-3 lr sweep, 32 members", lambda: iris_run("on"),
                             lambda: iris_run("off"), rounds, "one-at-a-time")

    xd, yd = standardized("digits")
    xt, yt, xv, yv = split_validation(xd, yd, fraction=0.2)
    digits = TrainData(xt, yt, xv, yv)
    digit_epochs = 20 // scale

    def digits_run(stack: str) -> list:
        return fit_members(digits_model(), sweep, digits, metrics=["accuracy"], batch_size=32,
                           num_epochs=digit_epochs, device="cpu", stack=stack)

    if 2 in wanted:
        r2, s2, o2 = compare("2. digits 64-256-256-10 lr sweep, 32 members", lambda: digits_run("on"),
                             lambda: digits_run("off"), rounds, "one-at-a-time")

    folds = np.array_split(np.arange(x.shape[0]), 5)
    cv_members = [MemberConfig(seed=0, optimizer="adam", val_indices=fold,
                               train_indices=np.concatenate([f for j, f in enumerate(folds) if j != k]))
                  for k, fold in enumerate(folds)]

    def cv_run(stack: str) -> list:
        return fit_members(iris_model(), cv_members, TrainData(x, y), metrics=["accuracy"], batch_size=16,
                           num_epochs=epochs, device="cpu", stack=stack)

    def one_fit() -> object:
        technique = Technique(loss="auto", optimizer="adam", metrics=["accuracy"], task="classification")
        return train(iris_model(), iris, technique, LoopConfig(batch_size=16, num_epochs=epochs, seed=0,
                                                                 device="cpu"))

    if 3 in wanted:
        r3, s3, o3 = compare("3. iris 5-fold CV stacked vs one plain fit", lambda: cv_run("on"), one_fit, rounds,
                             "one fit")
    if 3 in wanted and 4 in wanted:
        _, _, o3_seq = compare("   (iris 5-fold CV one-at-a-time, for auto)", lambda: cv_run("on"),
                               lambda: cv_run("off"), rounds, "one-at-a-time")

    checks = []
    if 4 in wanted:
        print()
        if 1 in wanted:
            checks.append(auto_check("4. auto on workload 1", lambda: iris_run("auto"), s1, o1, rounds, s1 < o1))
        if 2 in wanted:
            checks.append(auto_check("   auto on workload 2", lambda: digits_run("auto"), s2, o2, rounds, s2 < o2))
        if 3 in wanted:
            checks.append(auto_check("   auto on workload 3", lambda: cv_run("auto"), s3, o3_seq, rounds,
                                     s3 < o3_seq))
    if 5 in wanted:
        print()
        r5 = regularization_study(rounds, args.study_epochs // (scale if args.quick else 1))
    print()
    print(f"summary: iris sweep {r1:.1f}x faster (target >= 10x), digits sweep {r2:.2f}x faster (target >= 1.5x), "
          f"5-fold CV {1 / r3:.2f}x one fit (target <= 1.6x), auto "
          f"{'not checked' if not checks else 'never picked' if all(checks) else 'sometimes picked'} "
          f"the slower path, regularization study {r5:.2f}x faster stacked (target >= 2x)")


def regularization_study(rounds: int, epochs: int) -> float:
    """Figure 5: examples/regularization.toml, its groups stacked against one run at a time."""
    import tomllib
    from pathlib import Path

    from trainlab.api import dataset_from_spec
    from trainlab.study.runner import group_runs, train_group
    from trainlab.study.spec import parse_study

    raw = tomllib.loads((Path(__file__).parent.parent / "examples" / "regularization.toml").read_text())
    raw["recipe"]["num_epochs"] = epochs
    study = parse_study(raw)
    dataset = dataset_from_spec(study.runs[0].spec.data)
    groups = group_runs(study.runs)
    print(f"5. regularization.toml: {len(study.runs)} runs of {epochs} epochs in {len(groups)} groups "
          f"of {', '.join(str(len(g)) for g in groups)}", flush=True)

    def study_run(stack: str) -> None:
        for group in groups:
            train_group(group, dataset, done=lambda run, trained: None, stack=stack)

    ratio, _, _ = compare("5. regularization study, auto vs one at a time", lambda: study_run("auto"),
                          lambda: study_run("off"), rounds, "one-at-a-time")
    return ratio


if __name__ == "__main__":
    main()
