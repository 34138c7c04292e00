"""Generalization tools: clients of the one engine that estimate and explain how well a model generalizes.

- `trainlab.generalize.bias_variance`: bias^2, variance and noise of the test loss
  (0-1 loss: Domingos 2000) from members trained on bootstrap samples, along a
  capacity axis.
- `trainlab.generalize.sharpness`: top Hessian eigenvalue, Hutchinson trace and
  epsilon-sharpness of a trained model, beside its generalization gap.
"""

from trainlab.generalize.bias_variance import (
    Decomposition,
    bias_variance,
    bootstrap_predictions,
    decompose_squared,
    decompose_zero_one,
    run_bias_variance,
)
from trainlab.generalize.sharpness import Sharpness, measure_sharpness, run_sharpness

__all__ = ["Decomposition", "Sharpness", "bias_variance", "bootstrap_predictions", "decompose_squared",
           "decompose_zero_one", "measure_sharpness", "run_bias_variance", "run_sharpness"]
