"""A blow-up inside an epoch is caught at the batch, and the weights from before it are kept."""

import math
import re

import torch

import trainlab
from trainlab.checkpoint import STATE_FILE, load_state
from trainlab.layers import Dense
from trainlab.stacked import MemberConfig, fit_members


def mlp():
    return trainlab.Sequential([Dense(64, activation="relu"), Dense(10, activation="softmax")])


def test_a_blow_up_in_the_first_epoch_stops_at_its_batch_and_keeps_the_initial_weights():
    model = mlp()
    history = trainlab.fit(model, "digits", {"optimizer": {"name": "sgd", "lr": 5.0}, "num_epochs": 3, "seed": 0})
    assert re.search(r"the loss became \S+ at batch \d+ of epoch 1", history.stop_reason)
    assert "The initial weights were kept" in history.stop_reason
    assert len(history.history["loss"]) == 1
    digits = trainlab.datasets.load("digits")
    loss = model.evaluate(digits.x, digits.y, verbose=0)[0]
    # The kept weights are the initial ones: about chance-level loss (ln 10 = 2.3), not the blown-up 1e2+.
    assert math.isfinite(loss) and loss < 3.5


def test_a_stacked_member_blows_up_at_the_same_batch_as_alone_and_the_others_go_on():
    digits = trainlab.datasets.load("digits")
    x = (digits.x - digits.x.mean(0)) / (digits.x.std(0) + 1e-6)
    members = [MemberConfig(seed=1, optimizer={"name": "sgd", "lr": 5.0}),
               MemberConfig(seed=2, optimizer={"name": "sgd", "lr": 0.05})]
    stacked = fit_members(mlp(), members, (x, digits.y), num_epochs=2, stack="on")
    alone = fit_members(mlp(), members[:1], (x, digits.y), num_epochs=2, stack="off")
    assert stacked[0].stop_reason == alone[0].stop_reason
    assert stacked[0].stop_reason.startswith("training diverged: the loss became")
    assert stacked[1].stop_reason is None and len(stacked[1].history["loss"]) == 2


def test_the_first_batch_loss_is_part_of_the_checkpoint(tmp_path):
    trainlab.fit(mlp(), "iris", {"optimizer": "adam", "num_epochs": 1, "seed": 0}, checkpoint_dir=tmp_path)
    saved = load_state(tmp_path / STATE_FILE)
    assert isinstance(saved["first_batch_loss"], float) and saved["first_batch_loss"] > 0
    assert torch.is_tensor(next(iter(saved["model"].values())))
