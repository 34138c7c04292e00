"""Estimating and improving generalization: cross-validation, bagging and boosting with networks.

Each tool is a client of the one engine (`trainlab.stacked.fit_members`): its
runs are members (folds, bootstrap samples, boosting rounds) with their own
rows, scaling and sample weights. None of them has a training loop of its own.

    cross_validate   k-fold cross-validation: fold scores, mean, std, a t-interval
    compare_with_holdout  CV against a single hold-out, each over several seeds
    bagging          members on bootstrap samples: out-of-bag estimate, soft or majority vote
    boost            AdaBoost (SAMME, sample weights in the loss) or gradient boosting on residuals
    Ensemble         the members as one model, saved as safetensors + JSON, read by trainlab.load
"""

from trainlab.generalize.bagging import EnsembleResult, bagging, ensemble
from trainlab.generalize.boosting import boost
from trainlab.generalize.cv import CVResult, FoldResult, SeedSpread, compare_with_holdout, cross_validate
from trainlab.generalize.ensembles import Ensemble, load_ensemble

__all__ = ["CVResult", "Ensemble", "EnsembleResult", "FoldResult", "SeedSpread", "bagging", "boost",
           "compare_with_holdout", "cross_validate", "ensemble", "load_ensemble"]
