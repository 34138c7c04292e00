"""Checkpoints: atomic, exact to resume from, and never unpickled."""

import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

import trainlab
from trainlab.callbacks import Callback, EarlyStopping, ModelCheckpoint
from trainlab.checkpoint import load_state, save_state
from trainlab.errors import InputError
from trainlab.layers import Dense, Dropout


def test_state_round_trips_nested_tensors_int_keys_and_tuples(tmp_path):
    state = {"epoch": 3, "optimizer": {"state": {0: {"step": torch.tensor(2.0), "exp_avg": torch.ones(3)}},
                                       "param_groups": [{"betas": (0.9, 0.999), "params": [0]}]},
             "none": None, "text": "x"}
    save_state(tmp_path / "s.safetensors", state)
    loaded = load_state(tmp_path / "s.safetensors")
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], torch.ones(3))
    assert loaded["epoch"] == 3 and loaded["none"] is None and loaded["text"] == "x"


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_crafted_to_run_code_is_rejected_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "state.safetensors"
    evil.write_bytes(pickle.dumps(Exploit(marker)))
    with pytest.raises(InputError, match="not a valid safetensors file.*never unpickles"):
        load_state(evil)
    # The same file offered as a saved model, and a torch.save file offered as a checkpoint.
    (tmp_path / "model.json").write_text('{"layers": [{"type": "Dense", "units": 1}], "input_shape": [2]}')
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps(Exploit(marker)))
    with pytest.raises(InputError, match="not a valid safetensors file"):
        trainlab.load(tmp_path)
    torch.save({"x": Exploit(marker)}, tmp_path / "torch.safetensors")
    with pytest.raises(InputError, match="not a trainlab checkpoint"):
        load_state(tmp_path / "torch.safetensors")
    assert not marker.exists()


def test_resume_refuses_a_pickle_checkpoint_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "state.safetensors").write_bytes(pickle.dumps(Exploit(marker)))
    model = trainlab.Sequential([Dense(3, activation="softmax")])
    with pytest.raises(InputError, match="not a trainlab checkpoint"):
        trainlab.fit(model, "iris", {"num_epochs": 2}, checkpoint_dir=tmp_path, resume=True)
    assert not marker.exists()


KILL_DURING_WRITE = textwrap.dedent("""
    import os, signal, sys, torch
    import trainlab.checkpoint as ck
    path = sys.argv[1]
    ck.save_state(path, {"epoch": 1, "w": torch.full((1000,), 1.0)})
    def die(tmp):
        assert os.path.exists(tmp)          # the new file is fully written but not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
    ck._before_rename = die
    ck.save_state(path, {"epoch": 2, "w": torch.full((1000,), 2.0)})
""")


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    path = tmp_path / "state.safetensors"
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_WRITE, str(path)], timeout=120)
    assert proc.returncode == -9
    state = load_state(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.full((1000,), 1.0))


KILL_AT_RANDOM = textwrap.dedent("""
    import sys, torch
    import trainlab.checkpoint as ck
    path = sys.argv[1]
    i = 0
    while True:
        i += 1
        ck.save_state(path, {"epoch": i, "w": torch.full((2_000_000,), float(i))})
        print(i, flush=True)
""")


def test_kills_at_random_moments_of_repeated_writes_never_leave_a_broken_checkpoint(tmp_path):
    import random
    import time

    path = tmp_path / "state.safetensors"
    rng = random.Random(0)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", KILL_AT_RANDOM, str(path)], stdout=subprocess.PIPE)
        proc.stdout.readline()  # at least one checkpoint is complete
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.wait()
        state = load_state(path)
        assert torch.all(state["w"] == float(state["epoch"]))


class Crash(Callback):
    """Raises at the end of `epoch`, after the engine saved nothing yet for it (simulates a kill)."""

    def __init__(self, epoch):
        self.at = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def model_for_resume():
    return trainlab.Sequential([Dense(32, activation="relu"), Dropout(0.3), Dense(3, activation="softmax")])


RECIPE = {"num_epochs": 8, "seed": 5, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01},
          "schedule": {"name": "cosine", "warmup_epochs": 1}}


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("crash_at", [0, 3, 6])
def test_resume_after_a_crash_gives_bit_identical_weights_and_history(tmp_path, crash_at):
    reference = model_for_resume()
    ref_history = trainlab.fit(reference, "wine", RECIPE,
                               callbacks=[EarlyStopping(monitor="val_loss", patience=50,
                                                        restore_best_weights=True)])
    model = model_for_resume()
    with pytest.raises(KeyboardInterrupt):
        trainlab.fit(model, "wine", RECIPE, checkpoint_dir=tmp_path,
                     callbacks=[EarlyStopping(monitor="val_loss", patience=50, restore_best_weights=True),
                                Crash(crash_at)])
    resumed = model_for_resume()
    history = trainlab.fit(resumed, "wine", RECIPE, checkpoint_dir=tmp_path, resume=True,
                           callbacks=[EarlyStopping(monitor="val_loss", patience=50, restore_best_weights=True),
                                      Crash(-1)])
    # The crashed epoch is redone from the checkpoint of the one before (none exists before epoch 0).
    assert history.params["resumed_from_epoch"] == (crash_at if crash_at > 0 else None)
    assert history.history == ref_history.history
    for key, value in weights(reference).items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_resume_with_another_batch_size_is_refused(tmp_path):
    trainlab.fit(model_for_resume(), "wine", {**RECIPE, "num_epochs": 2}, checkpoint_dir=tmp_path)
    with pytest.raises(InputError, match="different run"):
        trainlab.fit(model_for_resume(), "wine", {**RECIPE, "batch_size": 8}, checkpoint_dir=tmp_path,
                     resume=True)


def test_a_diverging_run_keeps_its_last_good_checkpoint_and_weights(tmp_path):
    from trainlab.callbacks import LambdaCallback

    model = trainlab.Sequential([Dense(64, activation="relu"), Dense(1)])
    recipe = {"num_epochs": 30, "seed": 0, "loss": "mse", "optimizer": {"name": "sgd", "lr": 1e-4}}

    def too_high_after_epoch_2(epoch, logs):
        if epoch == 2:
            model_lr = history_holder.run.optimizer.param_groups[0]
            model_lr["lr"] = 50.0

    history_holder = LambdaCallback(on_epoch_end=too_high_after_epoch_2)
    history = trainlab.fit(model, "diabetes", recipe, checkpoint_dir=tmp_path, callbacks=history_holder)
    assert history.stop_reason.startswith("training diverged")
    assert len(history.history["loss"]) == 4
    for needle in ("previous epoch", "at lr 50", "gradient norm", "clip_grad_norm", "last good epoch"):
        assert needle in history.stop_reason
    saved = load_state(tmp_path / "state.safetensors")
    diverged_epoch = len(history.history["loss"]) - 1
    assert saved["epoch"] == diverged_epoch - 1        # the checkpoint of the last good epoch survives
    for key, value in model.state_dict().items():      # and the model holds those weights
        assert torch.equal(value, saved["model"][key])
        assert torch.isfinite(value).all()


def test_a_loss_growing_past_the_bound_counts_as_divergence():
    from trainlab.engine import _diverged

    assert _diverged(float("nan"), 1.0, 100.0) and _diverged(float("inf"), 1.0, None)
    assert _diverged(101.0, 1.0, 100.0) and not _diverged(99.0, 1.0, 100.0)
    assert not _diverged(1e9, 1.0, None)


def test_clip_grad_value_bounds_every_gradient_entry():
    torch.manual_seed(0)
    x, y = torch.randn(64, 5) * 100, torch.randn(64, 1) * 100
    model = trainlab.Sequential([Dense(1, input_shape=(5,))])
    model.build()
    before = weights(model)
    trainlab.fit(model, (x, y), {"num_epochs": 1, "batch_size": 64, "loss": "mse", "clip_grad_value": 1e-3,
                                 "optimizer": {"name": "sgd", "lr": 1.0}}, validation_split=None, scaling=None)
    for key, value in model.state_dict().items():
        step = (value - before[key]).abs()
        assert step.max() <= 1e-3 + 1e-7 and step.max() > 0.5e-3


def test_clip_grad_norm_bounds_the_update_norm():
    torch.manual_seed(0)
    x, y = torch.randn(64, 5) * 100, torch.randn(64, 1) * 100
    model = trainlab.Sequential([Dense(1, input_shape=(5,))])
    model.build()
    before = weights(model)
    trainlab.fit(model, (x, y), {"num_epochs": 1, "batch_size": 64, "loss": "mse", "clip_grad_norm": 0.5,
                                 "optimizer": {"name": "sgd", "lr": 1.0}}, validation_split=None, scaling=None)
    moved = torch.cat([(v - before[k]).flatten() for k, v in model.state_dict().items()])
    assert moved.norm().item() == pytest.approx(0.5, rel=1e-4)


def test_model_checkpoint_saves_the_best_epochs_and_reloads_them(tmp_path):
    saver = ModelCheckpoint(str(tmp_path / "best.safetensors"), monitor="val_accuracy", save_best_only=True,
                            save_last=True)
    every = ModelCheckpoint(str(tmp_path / "e{epoch:02d}.safetensors"), every_n_epochs=2)
    model = trainlab.Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
    history = trainlab.fit(model, "iris", {"num_epochs": 6, "seed": 0}, callbacks=[saver, every])
    accuracy = history.history["val_accuracy"]
    improving = [e for e in range(6) if accuracy[e] > max(accuracy[:e], default=-1)]
    assert saver.saved_epochs == improving
    assert sorted(p.name for p in tmp_path.glob("e*.safetensors")) == ["e02.safetensors", "e04.safetensors",
                                                                       "e06.safetensors"]
    last = trainlab.load(tmp_path / "last.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(value, last.state_dict()[key])


def test_model_checkpoint_rejects_a_pickle_suffix():
    with pytest.raises(InputError, match="must end in .safetensors"):
        ModelCheckpoint("model.h5")
