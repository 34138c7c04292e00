"""`trainlab fit --resume` after SIGKILL at random moments ends with the same bytes as an uninterrupted run."""

import random
import subprocess
import sys
import time

from safetensors.torch import load_file

SPEC = """
name = "killme"

[data]
name = "digits"

[[model.layers]]
type = "Dense"
units = 128
activation = "relu"

[[model.layers]]
type = "Dropout"
rate = 0.2

[[model.layers]]
type = "Dense"
units = 10
activation = "softmax"

[recipe]
optimizer = {name = "adam", lr = 0.001}
schedule = {name = "cosine", warmup_epochs = 2}
batch_size = 32
num_epochs = 60
seed = 7
early_stopping = {monitor = "val_loss", patience = 1000, restore_best_weights = true}
"""


def fit(spec, runs, *extra):
    return subprocess.Popen([sys.executable, "-m", "trainlab.cli", "fit", str(spec), "--runs-dir", str(runs),
                             "--quiet", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _checkpoint_time(runs):
    states = list((runs / "killme").glob(".*.partial/checkpoint/state.safetensors"))
    return max((p.stat().st_mtime_ns for p in states), default=0)


def final_run(runs):
    folders = sorted((runs / "killme").glob("[!.]*"), key=lambda p: p.stat().st_mtime)
    return folders[-1]


def test_sigkill_at_random_moments_then_resume_gives_identical_final_weights(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    reference = fit(spec, tmp_path / "a")
    started = time.monotonic()
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()
    duration = time.monotonic() - started

    rng = random.Random(1234)
    kills = 0
    for attempt in range(3):
        seen = _checkpoint_time(tmp_path / "b")
        proc = fit(spec, tmp_path / "b", *(["--resume"] if attempt else []))
        # Kill at a random moment after this process saved at least one epoch of its own.
        deadline = time.monotonic() + 120
        while _checkpoint_time(tmp_path / "b") == seen and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25) * duration)
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 2
    last = fit(spec, tmp_path / "b", "--resume")
    assert last.wait(timeout=300) == 0, last.stderr.read().decode()

    expected = load_file(str(final_run(tmp_path / "a") / "model.safetensors"))
    got_dir = final_run(tmp_path / "b")
    got = load_file(str(got_dir / "model.safetensors"))
    assert expected.keys() == got.keys()
    for key in expected:
        assert expected[key].numpy().tobytes() == got[key].numpy().tobytes(), key
    assert (final_run(tmp_path / "a") / "history.jsonl").read_text() == (got_dir / "history.jsonl").read_text()
    assert not list((tmp_path / "b" / "killme").glob(".*.partial"))
