"""Measurements the gallery takes on models, through the doctor's statistics and the one engine.

- `first_step_statistics`: train a run's spec for one batch with
  `trainlab.diagnose.TrainingStatistics` on a probe batch: the activation
  histograms at initialization and the per-layer gradient norms of the first
  step (C4, C5).
- `activation_statistics`: the same activation record for a trained model
  (dead ReLU fractions after training, C6).
- `predict`: a trained model's outputs as class probabilities, in eval mode.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["activation_statistics", "first_step_statistics", "predict", "probabilities"]


def first_step_statistics(spec: Any, prepared: Any, *, probe_size: int = 256) -> tuple[dict[str, Any],
                                                                                       dict[str, Any]]:
    """(record at initialization, record of the first optimizer step) for one run's spec.

    The model is built and initialized exactly as `trainlab.fit` of the spec
    does (same seed), trained for one batch, and stopped: the first record holds
    each hidden layer's activation histogram on `probe_size` validation rows,
    the second the gradient norm of each weight layer on that first step.
    """
    from trainlab.api import fit
    from trainlab.callbacks import LambdaCallback
    from trainlab.diagnose.statistics import TrainingStatistics
    from trainlab.models import Sequential

    data = prepared.data
    probe = data.x_val[:probe_size] if data.x_val is not None else data.x[:probe_size]
    model = Sequential(spec.model.layers, name=spec.name)
    statistics = TrainingStatistics(probe=probe, epochs=(), steps=(0,), grad_batches=1)
    stop = LambdaCallback(on_batch_end=lambda batch, logs: setattr(model, "stop_training", True))
    fit(model, (data.x, data.y), spec.recipe.model_copy(update={"num_epochs": 1, "early_stopping": None}),
        validation_split=None, scaling=None, callbacks=[statistics, stop])
    init = next(r for r in statistics.records if r["moment"] == "init")
    step = next(r for r in statistics.records if r["moment"] == "step")
    return init, step


def activation_statistics(model: nn.Module, x: Tensor) -> dict[str, Any]:
    """The doctor's activation record of `model` on inputs `x` (already scaled as the model sees them):
    per hidden layer its kind, mean, std, histogram, and the saturated or dead fraction."""
    from trainlab.diagnose.statistics import TrainingStatistics

    statistics = TrainingStatistics(probe=x, probe_size=x.shape[0])
    statistics.set_model(model)
    statistics.on_train_begin()
    statistics.on_train_end()
    return statistics.records[0]


def probabilities(model: nn.Module, x: Tensor) -> Tensor:
    """Class probabilities of `model` on `x`, in eval mode, without gradients."""
    from trainlab.engine import predict_tensors

    output = predict_tensors(model, x)
    if output.min() < 0 or not torch.allclose(output.sum(dim=1), torch.ones(output.shape[0]), atol=1e-3):
        output = torch.softmax(output, dim=1)  # logits from a plain module
    return output


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """Predicted classes of `model` on `x`."""
    return probabilities(model, x).argmax(dim=1)
