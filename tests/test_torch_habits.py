"""What a PyTorch user writes every day, run through trainlab (issue 11).

The oracle is the hand-written PyTorch loop: zero_grad, forward, loss,
backward, optimizer.step(), scheduler.step(), over a DataLoader without
shuffling. trainlab must end with the same weights.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainlab
from trainlab import Sequential
from trainlab.callbacks import Callback
from trainlab.errors import InputError, InputTypeError

N, FEATURES, CLASSES, BATCH, EPOCHS = 100, 6, 3, 16, 5
STEPS = math.ceil(N / BATCH) * EPOCHS


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, FEATURES, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return x, y


def network() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, CLASSES))


def hand_written_loop(epochs: int = EPOCHS, *, per_batch: bool = True) -> nn.Module:
    x, y = data()
    model = network()
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if per_batch:
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=STEPS)
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            if per_batch:
                scheduler.step()
        if not per_batch:
            scheduler.step()
    return model


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float = 1e-6) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(p, q, rtol=0, atol=atol), f"{name} differs by {(p - q).abs().max():.3g}"


def test_torch_objects_and_a_dataloader_train_as_the_hand_written_loop():
    reference = hand_written_loop()
    x, y = data()
    model = network()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=STEPS)
    history = trainlab.fit(model, DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=False),
                           {"optimizer": optimizer, "loss": nn.CrossEntropyLoss(label_smoothing=0.1),
                            "schedule": scheduler, "schedule_interval": "step", "num_epochs": EPOCHS},
                           validation_split=None, scaling=None)
    assert_same_weights(reference, model)
    assert len(history.history["loss"]) == EPOCHS
    assert history.params["batch_size"] == BATCH
    assert history.params["scaling"].startswith("none")


def test_factories_for_the_optimizer_and_the_scheduler_give_the_same_run():
    reference = hand_written_loop()
    x, y = data()
    model = network()
    trainlab.fit(model, (x, y), {
        "optimizer": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        "schedule": lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=STEPS),
        "loss": nn.CrossEntropyLoss(label_smoothing=0.1), "batch_size": BATCH, "num_epochs": EPOCHS,
        "shuffle": False}, validation_split=None, scaling=None)
    assert_same_weights(reference, model)


def test_an_epoch_scheduler_steps_after_each_epoch_as_in_pytorch():
    reference = hand_written_loop(per_batch=False)
    x, y = data()
    model = network()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    history = trainlab.fit(model, DataLoader(TensorDataset(x, y), batch_size=BATCH),
                           {"optimizer": optimizer, "schedule": scheduler, "num_epochs": EPOCHS,
                            "loss": nn.CrossEntropyLoss(label_smoothing=0.1)},
                           validation_split=None, scaling=None)
    assert_same_weights(reference, model)
    assert history.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_compile_takes_torch_modules_a_factory_and_a_loss_function():
    # A plain function (output, target) -> loss gets the labels as int64, as in PyTorch.
    reference = hand_written_loop()
    x, y = data()
    torch.manual_seed(1)
    model = Sequential([nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, CLASSES)])
    model.compile(optimizer=lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
                  loss=lambda out, target: F.cross_entropy(out, target, label_smoothing=0.1),
                  schedule=lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=STEPS))
    model.fit(DataLoader(TensorDataset(x, y), batch_size=BATCH), epochs=EPOCHS, verbose=0)
    assert_same_weights(reference, model)


class Interrupt(Callback):
    def __init__(self, at_epoch: int | None) -> None:
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def test_a_torch_scheduler_is_resumed_from_its_state_dict(tmp_path):
    def run(interrupt_at: int | None, resume: bool) -> nn.Module:
        x, y = data()
        model = network()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=STEPS)
        trainlab.fit(model, (x, y), {"optimizer": optimizer, "schedule": scheduler, "batch_size": BATCH,
                                     "num_epochs": EPOCHS, "shuffle": False, "loss": nn.CrossEntropyLoss()},
                     validation_split=None, scaling=None, callbacks=[Interrupt(interrupt_at)],
                     checkpoint_dir=tmp_path / ("a" if interrupt_at is None else "b"), resume=resume)
        return model

    uninterrupted = run(None, False)
    with pytest.raises(KeyboardInterrupt):
        run(3, False)
    resumed = run(None, True)
    assert_same_weights(uninterrupted, resumed, atol=0)


def test_an_unusable_type_gets_trainlabs_one_paragraph_message():
    x, y = data()
    with pytest.raises(InputTypeError) as raised:
        trainlab.fit(network(), (x, y), {"optimizer": 42})
    message = str(raised.value)
    assert "\n" not in message and "pydantic" not in message and "optimizer" in message
    foreign = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(InputTypeError, match="already built SGD.*not trainable parameters of the model"):
        trainlab.fit(network(), (x, y), {"optimizer": foreign})
    with pytest.raises(InputError, match="schedule_interval must be one of"):
        trainlab.fit(network(), (x, y), {"schedule": lambda opt: None, "schedule_interval": "batch"})


def test_a_logits_loss_after_a_softmax_layer_is_warned_about():
    from trainlab.layers import Dense

    model = Sequential([Dense(3, activation="softmax")])
    with pytest.warns(UserWarning, match="takes logits, but the model ends in a softmax"):
        model.compile(optimizer="sgd", loss=nn.CrossEntropyLoss())
