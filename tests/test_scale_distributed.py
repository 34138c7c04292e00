"""One model across processes (trainlab.scale.distributed): torchrun with 2 CPU processes (gloo) ends with
the weights and the per-epoch metrics of a one-process run with the same global batch, and resumes a run."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainlab.api import run_spec
from trainlab.callbacks import Callback
from trainlab.cli import main
from trainlab.errors import InputError
from trainlab.scale.distributed import ShardBatch, check_shardable
from trainlab.spec import load_spec

# 120 training rows in batches of 25: four batches split 13 + 12 between two processes (uneven parts are
# weighted by their rows), then a last batch of 20 split 10 + 10. No dropout or batch norm; an L2 penalty,
# input noise (drawn on the whole batch, before the split) and gradient clipping (after the all-reduce).
SPEC = """
name = "shared"

[data]
name = "iris"
validation_split = 0.2

[[model.layers]]
type = "Dense"
units = 16
activation = "relu"
kernel_regularizer = {name = "l2", l2 = 0.001}

[[model.layers]]
type = "Dense"
units = 3
activation = "softmax"

[recipe]
optimizer = {name = "adam", lr = 0.01}
metrics = ["accuracy"]
batch_size = 25
num_epochs = 4
seed = 3
clip_grad_norm = 1.0
input_noise = 0.05
"""


def test_each_process_takes_its_contiguous_part_of_the_global_batch():
    x, y = torch.arange(25.0).unsqueeze(1), torch.arange(25)
    parts = [ShardBatch(rank, 2)(x, y, generator=torch.Generator()) for rank in (0, 1)]
    assert [p[1].tolist() for p in parts] == [list(range(13)), list(range(13, 25))]
    assert torch.equal(torch.cat([p[0] for p in parts]), x)


@pytest.mark.parametrize("rows, batch_size, world, message", [
    (1, 32, 2, "the training set has 1 row but the run is split between 2 processes"),
    (100, 1, 2, "batch_size = 1 is smaller than the number of processes"),
    (1441, 32, 2, "the last batch of each epoch has 1 row .1441 training rows, batch size 32.*for example 31, 33"),
])
def test_a_run_that_leaves_a_process_without_rows_is_refused(rows, batch_size, world, message):
    with pytest.raises(InputError, match=message):
        check_shardable(rows, batch_size, world)
    check_shardable(1437, 32, 2)  # a last batch of 29 rows: 15 + 14; 32 need not be a multiple of 2


def test_nproc_refuses_a_spec_that_cannot_shard_before_starting_any_process(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("batch_size = 25", "batch_size = 1"))
    with pytest.raises(SystemExit) as stop:
        main(["fit", str(spec), "--nproc", "2", "--runs-dir", str(tmp_path / "runs")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "batch_size = 1 is smaller than the number of processes" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


class _Interrupt(Callback):
    display_only = True  # no state of its own, like ReduceLogs: the checkpoint fits the resumed run

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt


def test_torchrun_two_processes_resume_a_run_and_end_where_one_process_ends(tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(SPEC)
    spec = load_spec(spec_file)
    # A run killed after its second epoch, by one process: its checkpoint is resumed by two.
    with pytest.raises(KeyboardInterrupt):
        run_spec(spec, runs_dir=tmp_path / "runs", verbose=0, callbacks=[_Interrupt()])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "trainlab", "fit", str(spec_file), "--runs-dir",
               str(tmp_path / "runs"), "--resume", "--json"]
    started = time.monotonic()
    shared = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert shared.returncode == 0, shared.stderr[-3000:]
    seconds = time.monotonic() - started

    alone = run_spec(spec, runs_dir=tmp_path / "alone", verbose=0)
    runs = list((tmp_path / "runs" / "shared").iterdir())
    assert len(runs) == 1 and not runs[0].name.startswith("."), runs  # one folder, written by rank 0 only
    result = json.loads((runs[0] / "result.json").read_text())
    assert result["resumed_after_epoch"] == 2
    assert json.loads(shared.stdout.strip().splitlines()[-1])["run_dir"] == str(runs[0])  # rank 0 reports, once

    ours, reference = load_file(runs[0] / "model.safetensors"), load_file(alone.run_dir / "model.safetensors")
    for name, tensor in reference.items():
        torch.testing.assert_close(ours[name], tensor, atol=1e-5, rtol=0)
    # Epochs 3 and 4 ran on two processes: their training loss and accuracy are reduced over both (one
    # process's half of the rows would be off by far more than 1e-5).
    rows = [json.loads(line) for line in (runs[0] / "history.jsonl").read_text().splitlines()]
    for key in ("loss", "penalty", "accuracy", "val_loss", "val_accuracy"):
        assert [r[key] for r in rows] == pytest.approx(alone.history.history[key], abs=1e-5), key
    print(f"2-process torchrun, 2 of 4 epochs after a resume: {seconds:.1f} s")


def test_nproc_starts_torchrun_on_this_host_with_the_same_arguments(tmp_path, monkeypatch):
    import trainlab.scale.distributed as distributed

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    calls = []
    monkeypatch.setattr(distributed.subprocess, "call", lambda command, env: calls.append(command) or 0)
    main(["fit", str(spec), "--nproc", "2", "--runs-dir", str(tmp_path / "runs"), "--json", "--resume"])
    assert calls == [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                      "trainlab", "fit", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json", "--resume"]]
    assert not (tmp_path / "runs").exists()  # the processes write the run; the launcher only checks the spec
