"""`trainlab search`: the space as Optuna distributions, pruning at an epoch, shared storage, resume, best.toml.

Bad input gives one paragraph on stderr, exit status 2, and nothing on disk.
"""

import copy
import math
import re
from pathlib import Path

import optuna
import plotly.offline
import pytest
import tomli_w
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

import trainlab
from trainlab.api import run_spec
from trainlab.cli import main
from trainlab.errors import InputError
from trainlab.search import load_search, parse_search, run_search
from trainlab.spec import load_spec

BASE = {
    "name": "tiny-search",
    "data": {"name": "iris", "stratify": True},
    "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                         {"type": "Dropout", "rate": 0.1},
                         {"type": "Dense", "units": 3, "activation": "softmax"}]},
    "recipe": {"optimizer": "sgd", "metrics": ["accuracy"], "batch_size": 16, "num_epochs": 3, "seed": 0},
}


def search_spec(name, search):
    spec = copy.deepcopy(BASE)
    spec["name"] = name
    spec["search"] = search
    return spec


def states(result):
    return [t["state"] for t in sorted(result.trials, key=lambda t: t["number"])]


def test_space_maps_to_optuna_distributions():
    plan = parse_search(search_spec("space", {"space": {
        "lr": {"log_uniform": [1e-4, 1]},
        "momentum": {"uniform": [0.0, 0.99]},
        "weight_decay": {"float": [0.0, 0.1], "step": 0.01},
        "model.layers[0].units": {"int": [16, 512], "log": True},
        "batch_size": {"int": [16, 64], "step": 16},
        "optimizer": {"choice": ["sgd", "momentum", {"name": "adam", "amsgrad": True}]},
    }}))
    assert plan.space["lr"] == FloatDistribution(1e-4, 1.0, log=True)
    assert plan.space["momentum"] == FloatDistribution(0.0, 0.99)
    assert plan.space["weight_decay"] == FloatDistribution(0.0, 0.1, step=0.01)
    assert plan.space["model.layers[0].units"] == IntDistribution(16, 512, log=True)
    assert plan.space["batch_size"] == IntDistribution(16, 64, step=16)
    choices = plan.space["optimizer"]
    assert isinstance(choices, CategoricalDistribution) and choices.choices[:2] == ("sgd", "momentum")
    # A table choice is held by Optuna as text and comes back as the table in the trial's spec.
    spec = plan.spec_for({"optimizer": choices.choices[2], "lr": 0.01, "model.layers[0].units": 32})
    assert spec.recipe.optimizer == {"name": "adam", "amsgrad": True, "lr": 0.01}
    assert spec.model.layers[0]["units"] == 32
    assert plan.direction == "maximize" and plan.metric == "val_accuracy"


@pytest.mark.parametrize("space, pruner, expected", [
    ({"lr": {"loguniform": [1e-4, 1]}}, "median", r"'loguniform' is not a search distribution\. Did you mean 'log_uniform'\?"),
    ({"lr": {"categorical": [0.1, 0.01]}}, "median", r"Did you mean 'choice'\?"),
    ({"model.layers[1].rat": {"uniform": [0, 0.5]}}, "median", r"layer 'Dropout' has no setting 'rat'.*Did you mean 'rate'\?"),
    ({"recipe.optimzer": {"choice": ["sgd"]}}, "median", r"'recipe.optimzer' is not a field of the spec.*Did you mean 'recipe.optimizer'"),
    ({"model.layers[7].units": {"int": [8, 16]}}, "median", r"model.layers has 3 entries, so \[7\] does not exist"),
    ({"lr": {"log_uniform": [0, 1]}}, "median", r"a log scale needs low > 0"),
    ({"lr": {"log_uniform": [1e-3, 1]}}, "medain", r"unknown pruner 'medain'\. Did you mean 'median'\?"),
    ({"lr": {"log_uniform": [1e-3, 1]}}, {"name": "asha", "reduction": 3}, r"has no setting 'reduction'.*reduction_factor"),
])
def test_bad_search_input_is_one_paragraph_exit_2_and_nothing_written(tmp_path, capsys, space, pruner, expected):
    file = tmp_path / "search.toml"
    file.write_text(tomli_w.dumps(search_spec("bad", {"space": space, "pruner": pruner})))
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        main(["search", str(file), "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    message = " ".join(err.split())
    assert re.search(expected, message), message
    assert "Traceback" not in err
    assert not runs.exists()


def test_a_trial_with_a_bad_lr_is_pruned_at_an_epoch(tmp_path):
    # Trial 0 learns (lr 0.5); trial 1 hardly moves (lr 1e-5): after its first epoch its val_accuracy
    # is below the median of the finished trials' first epochs, so the median pruner stops it there.
    spec = search_spec("prune", {"trials": 2, "pruner": {"name": "median", "n_startup_trials": 1},
                                 "enqueue": [{"lr": 0.5}, {"lr": 1e-5}],
                                 "space": {"lr": {"log_uniform": [1e-5, 1.0]}}})
    spec["recipe"]["num_epochs"] = 6
    result = trainlab.search(spec, runs_dir=tmp_path, report=False)
    good, bad = sorted(result.trials, key=lambda t: t["number"])
    assert good["values"] == {"lr": 0.5} and good["state"] == "COMPLETE" and good["epochs"] == 6
    assert bad["values"] == {"lr": 1e-5} and bad["state"] == "PRUNED"
    assert bad["epochs"] == 1  # stopped after its first epoch, not trained to the end
    study = optuna.load_study(study_name="prune", storage=result.storage)
    pruned = study.trials[1]
    assert list(pruned.intermediate_values) == [0]
    assert pruned.intermediate_values[0] < study.trials[0].intermediate_values[0]
    assert pruned.user_attrs["stop_reason"].startswith("pruned at epoch 1: val_accuracy")
    # Without a pruner the same trial trains to the end.
    spec["name"], spec["search"]["pruner"] = "no-prune", "none"
    unpruned = trainlab.search(spec, runs_dir=tmp_path, report=False)
    assert states(unpruned) == ["COMPLETE", "COMPLETE"] and unpruned.trials[1]["epochs"] == 6


def test_two_workers_share_sqlite_and_resume_continues(tmp_path):
    spec = search_spec("shared", {"trials": 4, "pruner": "none", "startup_trials": 2,
                                  "space": {"lr": {"log_uniform": [1e-3, 1.0]},
                                            "optimizer": {"choice": ["sgd", "adam"]}}})
    spec["recipe"]["num_epochs"] = 2
    file = tmp_path / "search.toml"
    file.write_text(tomli_w.dumps(spec))
    result = run_search(load_search(file), runs_dir=tmp_path / "runs", jobs=2, report=False)
    assert result.storage.startswith("sqlite:///") and (tmp_path / "runs" / "shared" / "search.db").is_file()
    numbers = sorted(t["number"] for t in result.trials)
    assert numbers == [0, 1, 2, 3]  # 4 trials in all, no number twice
    assert set(states(result)) == {"COMPLETE"}
    assert len({tuple(sorted(t["values"].items())) for t in result.trials}) == 4  # no point proposed twice

    with pytest.raises(InputError, match="already holds search 'shared' with 4 trials.*--resume"):
        run_search(load_search(file), runs_dir=tmp_path / "runs", report=False)
    resumed = run_search(load_search(file), runs_dir=tmp_path / "runs", trials=6, resume=True, report=False)
    assert resumed.trained == 2
    assert sorted(t["number"] for t in resumed.trials) == [0, 1, 2, 3, 4, 5]
    kept = {t["number"]: t["value"] for t in result.trials}
    assert {t["number"]: t["value"] for t in resumed.trials if t["number"] < 4} == kept
    changed = copy.deepcopy(spec)
    changed["search"]["space"]["lr"] = {"log_uniform": [1e-2, 1.0]}
    file.write_text(tomli_w.dumps(changed))
    with pytest.raises(InputError, match="was started from another spec"):
        run_search(load_search(file), runs_dir=tmp_path / "runs", trials=8, resume=True, report=False)


def test_stacked_batch_and_best_spec_reproduce_the_best_value(tmp_path):
    # Trials of a batch that differ in lr, optimizer and dropout rate train as members of one stack;
    # the best trial's best.toml, fitted as a plain spec, ends with the best trial's value.
    spec = search_spec("best", {"trials": 4, "batch": 2, "metric": "val_loss", "pruner": "none",
                                "space": {"lr": {"log_uniform": [1e-2, 0.5]},
                                          "optimizer": {"choice": ["sgd", "adam"]},
                                          "model.layers[1].rate": {"uniform": [0.0, 0.3]}}})
    result = trainlab.search(spec, runs_dir=tmp_path / "runs")
    assert result.direction == "minimize"
    assert all(t["stacked_with"] == 2 for t in result.trials)
    best = min(t["value"] for t in result.trials)
    assert result.best_value == best
    fitted = load_spec(result.best_spec)
    assert fitted.name == "best-best" and "search" not in result.best_spec.read_text().split("[data]")[1]
    run = run_spec(fitted, runs_dir=tmp_path / "refit", verbose=0)
    assert math.isclose(run.history.history["val_loss"][-1], best, rel_tol=1e-5)

    page = result.report.read_text()
    for title in ("Optimization history", "Intermediate values", "Parameter importances", "Slice",
                  "Parallel coordinates"):
        assert f"<h2>{title}</h2><figure><div class='chart'>" in page, title
    library = plotly.offline.get_plotlyjs()
    assert page.count(library) == 1  # the library inlined once
    rest = page.replace(library, "")
    assert "<script src=" not in rest and "https://" not in rest  # nothing to fetch: it opens offline


def test_the_sampler_is_seeded_by_the_spec_seed(tmp_path):
    spec = search_spec("seeded", {"trials": 2, "pruner": "none",
                                  "space": {"lr": {"log_uniform": [1e-3, 1.0]}}})
    spec["recipe"]["num_epochs"] = 1
    first = trainlab.search(spec, runs_dir=tmp_path / "a", report=False)
    again = trainlab.search(spec, runs_dir=tmp_path / "b", report=False)
    spec["recipe"]["seed"] = 1
    other = trainlab.search(spec, runs_dir=tmp_path / "c", report=False)
    lrs = [[t["values"]["lr"] for t in r.trials] for r in (first, again, other)]
    assert lrs[0] == lrs[1] and lrs[0] != lrs[2]


def test_the_example_search_validates():
    plan = load_search(Path(__file__).resolve().parents[1] / "examples" / "search.toml")
    assert plan.settings.trials == 40 and plan.base.data.name == "digits"
    assert plan.pruner_name == "median" and plan.metric == "val_accuracy"
    assert plan.space["model.layers[0].units"] == IntDistribution(16, 512, log=True)


def test_pruning_callback_reports_each_epoch_and_stops_when_the_pruner_says_so():
    from torch import nn

    from trainlab.callbacks import RunState
    from trainlab.search import PruningCallback

    class Trial:  # records what Optuna's Trial is told; prunes once a value falls below 0.5
        def __init__(self):
            self.reported = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return self.reported[-1][1] < 0.5

    trial = Trial()
    callback = PruningCallback(trial, "val_accuracy")
    run = RunState(model=nn.Linear(1, 1), num_epochs=5, steps_per_epoch=1)
    callback.set_run(run)
    callback.on_epoch_end(0, {"val_accuracy": 0.7, "loss": 0.3})
    callback.on_epoch_end(1, {"val_accuracy": float("nan")})  # not reported: Optuna wants finite values
    assert not run.should_stop()
    callback.on_epoch_end(2, {"val_accuracy": 0.4})
    assert trial.reported == [(0, 0.7), (2, 0.4)]
    assert run.should_stop() and callback.pruned_epoch == 2
    assert run.stop_reason.startswith("pruned at epoch 3: val_accuracy = 0.4")
