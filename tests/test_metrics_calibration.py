"""Calibration metrics (ECE, log loss) and metrics on the soft targets of mixed batches."""

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss as sk_log_loss

from trainlab.metrics import metric


def _ece_by_hand(probs, labels, num_bins):
    confidence, predicted = probs.max(1), probs.argmax(1)
    total = 0.0
    for m in range(1, num_bins + 1):
        inside = (confidence > (m - 1) / num_bins) & (confidence <= m / num_bins)
        if inside.any():
            accuracy = (predicted[inside] == labels[inside]).mean()
            total += inside.mean() * abs(accuracy - confidence[inside].mean())
    return total


@pytest.mark.parametrize("from_logits", [False, True])
def test_ece_equals_the_binned_formula_over_unequal_batches(from_logits):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(101, 4)) * 2
    labels = rng.integers(0, 4, size=101)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ece = metric({"name": "ece", "num_bins": 10})
    scores = torch.tensor(logits if from_logits else probs)
    for start, stop in ((0, 30), (30, 31), (31, 101)):
        ece.update(scores[start:stop], torch.tensor(labels[start:stop]), from_logits=from_logits)
    assert ece.compute() == pytest.approx(_ece_by_hand(probs, labels, 10), abs=1e-12)


def test_a_calibrated_model_has_ece_near_zero_and_an_overconfident_one_does_not():
    rng = np.random.default_rng(1)
    n = 20000
    p = rng.uniform(0.5, 1.0, size=n)  # confidence in class 0
    labels = (rng.uniform(size=n) > p).astype(np.int64)  # class 0 with probability p: calibrated
    calibrated = torch.tensor(np.stack([p, 1 - p], 1))
    sure = torch.tensor(np.stack([np.full(n, 0.99), np.full(n, 0.01)], 1))
    ece_calibrated, ece_sure = metric("ece"), metric("ece")
    ece_calibrated.update(calibrated, torch.tensor(labels))
    ece_sure.update(sure, torch.tensor(labels))
    # n = 20000: the sampling noise of a bin's accuracy is about 0.01.
    assert ece_calibrated.compute() < 0.02
    assert ece_sure.compute() == pytest.approx(0.99 - (labels == 0).mean(), abs=1e-9)


def test_ece_of_a_single_sigmoid_output_uses_max_p_one_minus_p():
    ece = metric("ece", num_outputs=1)
    ece.update(torch.tensor([0.9, 0.2, 0.7]), torch.tensor([1.0, 0.0, 0.0]))
    by_hand = _ece_by_hand(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), np.array([1, 0, 0]), 15)
    assert ece.compute() == pytest.approx(by_hand)


@pytest.mark.parametrize("name", ["log_loss", "nll"])
def test_log_loss_matches_scikit_learn(name):
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), size=50)
    labels = rng.integers(0, 3, size=50)
    nll = metric(name)
    nll.update(torch.tensor(probs[:20]), torch.tensor(labels[:20]))
    nll.update(torch.tensor(probs[20:]), torch.tensor(labels[20:]))
    assert nll.name == "log_loss"
    assert nll.compute() == pytest.approx(sk_log_loss(labels, probs, labels=[0, 1, 2]), rel=1e-9)


def test_binary_log_loss_matches_scikit_learn():
    p = np.array([0.9, 0.2, 0.6, 0.4])
    y = np.array([1, 0, 0, 1])
    nll = metric("log_loss", num_outputs=1)
    nll.update(torch.tensor(p).view(-1, 1), torch.tensor(y, dtype=torch.float64))
    assert nll.compute() == pytest.approx(sk_log_loss(y, p), rel=1e-9)


def test_train_accuracy_on_mixed_batches_counts_the_dominant_label():
    acc = metric("accuracy", loss="sparse_categorical_crossentropy")
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6], [0.45, 0.55, 0.0]])
    acc.update(torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]]), soft)
    assert acc.compute() == pytest.approx(2 / 3)  # dominant labels 0, 2, 1; predicted 0, 1, 1
