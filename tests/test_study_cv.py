"""`[study] cv = k`: each run of a study is a k-fold cross-validation, and cases are compared on fold means."""

import json

import pytest

import trainlab
from trainlab.errors import InputError
from trainlab.models import Sequential
from trainlab.study import parse_study, run_study


def study_spec(cv=3):
    return {
        "name": "cv-study",
        "data": {"name": "iris"},
        "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                             {"type": "Dense", "units": 3, "activation": "softmax"}]},
        "recipe": {"optimizer": {"name": "adam", "lr": 0.01}, "num_epochs": 2, "batch_size": 16,
                   "metrics": ["accuracy"]},
        "study": {"seeds": 1, "cv": cv, "metric": "val_accuracy", "vary": {"lr": [0.01, 0.05]}},
    }


def test_a_cv_study_compares_cases_on_their_fold_means(tmp_path):
    study = parse_study(study_spec())
    result = run_study(study, runs_dir=tmp_path, report=False)
    by_case = {c.case: c for c in result.comparison.cases}
    for run in study.runs:
        saved = json.loads((tmp_path / "cv-study" / run.run_id / "result.json").read_text())
        folds = trainlab.cross_validate(Sequential(run.spec.model.layers), "iris", run.spec.recipe, folds=3)
        assert saved["final"]["val_accuracy"] == pytest.approx(folds.mean)
        assert by_case[run.case.label].values == pytest.approx([folds.mean])
        ensemble = trainlab.load(tmp_path / "cv-study" / run.run_id)
        assert len(ensemble) == 3  # the run's model is its fold models, averaged


def test_study_cv_must_be_at_least_two_folds():
    with pytest.raises(InputError, match="study.cv"):
        parse_study(study_spec(cv=1))
