"""Scale-out on this machine: a study on a local Ray against the same study here, and one model trained by
two torchrun processes against one process.

1. Ray. The study below (digits MLP, 4 batch sizes x 2 seeds: 4 groups of 2
   stackable runs, so 4 Ray tasks) is trained by `run_study` in this process
   and by `run_study(..., executor=RayExecutor())` on a local Ray with
   ``num_cpus`` CPUs, interleaved round by round (local, Ray, local, Ray, ...).
   Ray's start (``ray.init``) and the first round (its workers import torch
   and trainlab) are reported apart; the ratio is the median of the later
   rounds' Ray / local wall times.
2. torchrun. `trainlab fit` of the spec below with one process and with
   ``torchrun --nproc_per_node 2`` (through ``--nproc 2``), each with two
   epoch counts; the epoch time is the difference of the two wall times over
   the difference of the epochs, so process start-up and data loading drop
   out. One process uses torch's threads (all cores); each of the two uses
   ``cores / 2`` threads. Interleaved round by round; the ratio is the median
   of 2-process / 1-process epoch times.

    python benchmarks/scale.py [--rounds 2] [--num-cpus 2] [--epochs 2 6] [--skip-ray] [--skip-torchrun]

On 2 cores neither can be faster than the local run: Ray's tasks share the
same two cores the local study uses, and two processes share the cores one
process's threads already use, adding an all-reduce per step. What the
figures measure is the overhead; on a cluster the same code spreads tasks or
processes over machines, and the work per machine shrinks with their number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

STUDY = {
    "name": "scale-bench",
    "data": {"name": "digits", "validation_split": 0.2, "scaling": "standardize"},
    "model": {"layers": [{"type": "Dense", "units": 64, "activation": "relu"},
                         {"type": "Dense", "units": 10, "activation": "softmax"}]},
    "recipe": {"optimizer": "adam", "num_epochs": 10, "metrics": ["accuracy"]},
    "study": {"seeds": 2, "vary": {"batch_size": [16, 32, 64, 128]}},
}

FIT = {
    "name": "scale-fit",
    "data": {"name": "digits", "validation_split": 0.2, "scaling": "standardize"},
    "model": {"layers": [{"type": "Dense", "units": 256, "activation": "relu"},
                         {"type": "Dense", "units": 256, "activation": "relu"},
                         {"type": "Dense", "units": 10, "activation": "softmax"}]},
    "recipe": {"optimizer": "adam", "batch_size": 64, "num_epochs": 2, "metrics": ["accuracy"], "seed": 0},
}


def ray_figures(rounds: int, num_cpus: int) -> None:
    import ray

    from trainlab.scale.ray import RayExecutor
    from trainlab.study import parse_study, run_study

    study = parse_study(STUDY)
    runs = Path(tempfile.mkdtemp(prefix="trainlab-scale-"))
    start = time.perf_counter()
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _system_config={"worker_niceness": 0})
    started = time.perf_counter() - start
    local: list[float] = []
    remote: list[float] = []
    try:
        for _ in range(rounds + 1):
            start = time.perf_counter()
            run_study(study, runs_dir=runs / "local", report=False, fresh=True)
            local.append(time.perf_counter() - start)
            start = time.perf_counter()
            run_study(study, runs_dir=runs / "ray", report=False, fresh=True, executor=RayExecutor())
            remote.append(time.perf_counter() - start)
    finally:
        ray.shutdown()
    ratios = [r / lo for r, lo in zip(remote[1:], local[1:])]
    print(f"1. study of {len(study.runs)} runs in 4 groups (digits MLP 64-64-10, 10 epochs), Ray num_cpus={num_cpus}", flush=True)
    print(f"   ray.init {started:.1f} s; first round (Ray workers start) local {local[0]:.1f} s, Ray {remote[0]:.1f} s", flush=True)
    print(f"   later rounds: local {statistics.median(local[1:]):.2f} s, Ray {statistics.median(remote[1:]):.2f} s, "
          f"Ray / local {statistics.median(ratios):.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})",
          flush=True)


def _fit_seconds(spec: Path, runs: Path, nproc: int) -> float:
    command = [sys.executable, "-m", "trainlab", "fit", str(spec), "--runs-dir", str(runs), "--quiet"]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def torchrun_figures(rounds: int, epochs: tuple[int, int]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="trainlab-scale-"))
    specs = {}
    for count in epochs:
        specs[count] = folder / f"fit{count}.toml"
        specs[count].write_text(tomli_w.dumps({**FIT, "recipe": {**FIT["recipe"], "num_epochs": count}}))
    per_epoch: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for nproc in (1, 2):
            short, long = (_fit_seconds(specs[count], folder / "runs", nproc) for count in epochs)
            per_epoch[nproc].append((long - short) / (epochs[1] - epochs[0]))
    ratios = [two / one for one, two in zip(per_epoch[1], per_epoch[2])]
    print(f"2. one model (digits MLP 64-256-256-10, batch 64), epoch time from {epochs[0]} and {epochs[1]} epochs; "
          f"{os.cpu_count()} cores", flush=True)
    print(f"   1 process {statistics.median(per_epoch[1]) * 1e3:.0f} ms/epoch, 2 processes (torchrun, gloo) "
          f"{statistics.median(per_epoch[2]) * 1e3:.0f} ms/epoch, 2 / 1 {statistics.median(ratios):.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--epochs", type=int, nargs=2, default=(2, 6))
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-torchrun", action="store_true")
    args = parser.parse_args()
    if not args.skip_ray:
        ray_figures(args.rounds, args.num_cpus)
    if not args.skip_torchrun:
        torchrun_figures(args.rounds, tuple(args.epochs))


if __name__ == "__main__":
    main()
