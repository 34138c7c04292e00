"""Estimating and explaining generalization: cross-validation, bagging, boosting, bias-variance, sharpness.

Each tool is a client of the one engine (`trainlab.stacked.fit_members`): its
runs are members (folds, bootstrap samples, boosting rounds) with their own
rows, scaling and sample weights. None of them has a training loop of its own.

    cross_validate   k-fold cross-validation: fold scores, mean, std, a t-interval
    compare_with_holdout  CV against a single hold-out, each over several seeds
    bagging          members on bootstrap samples: out-of-bag estimate, soft or majority vote
    boost            AdaBoost (SAMME, sample weights in the loss) or gradient boosting on residuals
    Ensemble         the members as one model, saved as safetensors + JSON, read by trainlab.load
    bias_variance    bias^2, variance and noise of the test loss (0-1 loss: Domingos 2000) from
                     members trained on bootstrap samples, along a capacity axis
    measure_sharpness  top Hessian eigenvalue, Hutchinson trace and epsilon-sharpness of a trained
                     model, beside its generalization gap
"""

from trainlab.generalize.bagging import EnsembleResult, bagging, ensemble
from trainlab.generalize.bias_variance import (
    Decomposition,
    bias_variance,
    bootstrap_predictions,
    decompose_squared,
    decompose_zero_one,
    run_bias_variance,
)
from trainlab.generalize.boosting import boost
from trainlab.generalize.cv import CVResult, FoldResult, SeedSpread, compare_with_holdout, cross_validate
from trainlab.generalize.ensembles import Ensemble, load_ensemble
from trainlab.generalize.sharpness import Sharpness, measure_sharpness, run_sharpness

__all__ = ["CVResult", "Decomposition", "Ensemble", "EnsembleResult", "FoldResult", "SeedSpread", "Sharpness",
           "bagging", "bias_variance", "boost", "bootstrap_predictions", "compare_with_holdout",
           "cross_validate", "decompose_squared", "decompose_zero_one", "ensemble", "load_ensemble",
           "measure_sharpness", "run_bias_variance", "run_sharpness"]
