"""Generalization tools: clients of the one engine that estimate and explain how well a model generalizes.

- `trainlab.generalize.sharpness`: top Hessian eigenvalue, Hutchinson trace and
  epsilon-sharpness of a trained model, beside its generalization gap.
"""

from trainlab.generalize.sharpness import Sharpness, measure_sharpness, run_sharpness

__all__ = ["Sharpness", "measure_sharpness", "run_sharpness"]
