"""The time of the top Hessian eigenvalue over the digits rows, against one training epoch.

The digits MLP 64-256-256-10 (85,002 weights; Adam, batch 32, standardized
inputs) is trained for 3 epochs, then each round times, interleaved in one
process, one more training epoch (`Sequential.fit`, the engine) and the top
eigenvalue of the Hessian of the training loss over the first 2,000 rows (digits has
1,797, so all of them) by Lanczos iteration on Hessian-vector products
(`trainlab.generalize.sharpness.top_eigenvalue`, a fresh `HessianProbe` each
round, so the gradient graph's set-up is timed too). The ratio is the median
over rounds of the eigenvalue's time over the epoch's in the same round.

`hessian_row()` returns the figures as a dict (`benchmarks/generalization.py`
prints it with its other rows); run this file to print the row alone:

    python benchmarks/sharpness.py [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

import trainlab
from trainlab.data import scaler
from trainlab.generalize.sharpness import HessianProbe, top_eigenvalue
from trainlab.layers import Dense

ROW_NAME = "top Hessian eigenvalue, digits MLP, 2,000 rows vs one epoch"


def hessian_row(*, rounds: int = 3, rows: int = 2000, warm_epochs: int = 3) -> dict[str, Any]:
    """Time the top Hessian eigenvalue over `rows` digits rows against one training epoch, interleaved.

    Returns:
        name, eigen_s and epoch_s (medians over rounds), ratio (median of the per-round ratios
        eigen / epoch), per_round (the ratios), products (Hessian-vector products in the last
        round), eigenvalue (the last round's), rows (the rows used) and params (the weights).
    """
    data = trainlab.datasets.load("digits")
    x = scaler("standardize").fit(data.x).transform(data.x)
    y = data.y
    model = trainlab.Sequential([Dense(256, activation="relu"), Dense(256, activation="relu"),
                                 Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=warm_epochs, verbose=0, seed=0)
    used = min(rows, x.shape[0])
    eigen_times, epoch_times, ratios = [], [], []
    products, value, params = 0, float("nan"), 0
    for r in range(rounds):
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, seed=r + 1)
        epoch = time.perf_counter() - start

        start = time.perf_counter()
        probe = HessianProbe(model, x[:used], y[:used], loss="sparse_categorical_crossentropy")
        counted = _Counted(probe)
        value = top_eigenvalue(counted, seed=r)  # type: ignore[arg-type]
        eigen = time.perf_counter() - start
        products, params = counted.calls, probe.num_params
        eigen_times.append(eigen)
        epoch_times.append(epoch)
        ratios.append(eigen / epoch)
    return {"name": ROW_NAME, "eigen_s": statistics.median(eigen_times), "epoch_s": statistics.median(epoch_times),
            "ratio": statistics.median(ratios), "per_round": ratios, "products": products, "eigenvalue": value,
            "rows": used, "params": params}


class _Counted(HessianProbe):
    """The same probe, counting its Hessian-vector products."""

    def __init__(self, probe: HessianProbe) -> None:  # shares the probe's state; no second set-up
        self.__dict__.update(probe.__dict__)
        self.calls = 0

    def hvp(self, vector: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().hvp(vector)


def format_row(row: dict[str, Any]) -> str:
    rounds = ", ".join(f"{r:.2f}" for r in row["per_round"])
    return (f"{row['name']:<58} eigenvalue {row['eigen_s']:7.3f} s   one epoch {row['epoch_s']:7.3f} s   "
            f"ratio {row['ratio']:6.2f}  (rounds: {rounds}; {row['products']} Hessian-vector products, "
            f"{row['rows']} rows, {row['params']} weights, top eigenvalue {row['eigenvalue']:.4g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(format_row(hessian_row(rounds=args.rounds)))


if __name__ == "__main__":
    main()
