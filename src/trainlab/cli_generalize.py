"""`trainlab cv` and `trainlab ensemble`: a spec -> cross-validation or an ensemble -> a table and a report.

`register(app)` adds both commands to the main typer app (see `trainlab.cli`).
Everything that can be wrong with the input is checked before training, and
nothing is written until the training is done: the results go to a hidden
staging folder renamed into place, ``runs/<name>/cv-<id>/`` or
``runs/<name>/<method>-<id>/``, holding the members (safetensors + JSON, read
back by `trainlab.load`), the numbers as JSON, the spec and ``report.html``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trainlab.errors import InputError

out = Console()


def register(app: typer.Typer) -> None:
    """Add `cv` and `ensemble` to `app`."""
    app.command("cv")(cv)
    app.command("ensemble")(ensemble)


def cv(
    spec: Path = typer.Argument(..., metavar="SPEC", help="TOML file with [data], [model] and [recipe]."),
    folds: int = typer.Option(5, "--folds", help="Number of folds k (at least 2)."),
    repeats: int = typer.Option(1, "--repeats", help="Repeat the k-fold split with other shuffles."),
    stratify: bool | None = typer.Option(None, "--stratify/--no-stratify",
                                         help="Keep class shares in every fold (default: yes for classes)."),
    group_column: str | None = typer.Option(None, "--group-column",
                                            help="A column holding each row's group; groups stay whole."),
    seeds: int = typer.Option(1, "--seeds", help="N > 1: also run the CV and a single hold-out split with N "
                              "seeds each, and show how much each estimate varies."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the result folder is written."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (for scripts)."),
) -> None:
    """k-fold cross-validation of a spec: fold scores, mean ± std, a confidence interval, report.html."""
    from trainlab import check
    from trainlab.generalize import compare_with_holdout, cross_validate
    from trainlab.generalize.report import cv_report
    from trainlab.runs import write_json_atomic

    check.int_at_least("--seeds", seeds, 1, "Use 1 for one cross-validation, 5 to compare estimates across seeds.")
    if seeds > 1 and (repeats > 1 or group_column is not None):
        raise InputError("--seeds compares the CV with a single random hold-out split, which keeps no groups and "
                         "has no repeats; drop --group-column and --repeats, or drop --seeds.")
    parsed, dataset, spec_text = _load(spec, runs_dir)
    spread = None
    if seeds > 1:
        spread = compare_with_holdout(_model(parsed), dataset, parsed.recipe, folds=folds, seeds=seeds,
                                      validation_split=parsed.data.validation_split, stratify=stratify,
                                      scaling=parsed.data.scaling)
        result = spread.results[0]
    else:
        result = cross_validate(_model(parsed), dataset, parsed.recipe, folds=folds, repeats=repeats,
                                stratify=stratify, group_column=group_column, scaling=parsed.data.scaling)
    result.name = parsed.name

    def write(staging: Path) -> None:
        result.save(staging)
        if spread is not None:
            write_json_atomic(staging / "seeds.json", spread.to_dict())
        cv_report(result, staging / "report.html", spec_text=spec_text, spread=spread)

    folder = _publish(runs_dir, parsed.name, "cv", spec_text, write)
    if json_output:
        print(json.dumps({"result_dir": str(folder), "report": str(folder / "report.html"),
                          "seeds": spread.to_dict() if spread is not None else None,
                          **{k: v for k, v in result.to_dict().items() if k != "folds"},
                          "folds": [{k: v for k, v in f.items() if k != "history"} for f in
                                    result.to_dict()["folds"]]}, allow_nan=True))
        return
    table = Table(title=escape(f"{parsed.name}: {result.splitter}"))
    for column in ("fold", "train rows", "held-out rows", "epochs", *(f"held-out {k}" for k in result.folds[0].scores)):
        table.add_column(escape(column), justify="right")
    repeated = repeats > 1
    for f in result.folds:
        table.add_row(f"{f.fold + 1}" + (f" (r{f.repeat + 1})" if repeated else ""), str(len(f.train_rows)),
                      str(len(f.test_rows)), str(f.epochs), *(f"{v:.4g}" for v in f.scores.values()))
    out.print(table)
    out.print(escape(result.summary()), highlight=False)
    if spread is not None:
        compared = Table(title=escape(f"{result.metric} estimated with {seeds} seeds"))
        for column in ("seed", "single hold-out", f"{folds}-fold CV mean"):
            compared.add_column(escape(column), justify="right")
        for seed, h, c in zip(spread.seeds, spread.holdout, spread.cv):
            compared.add_row(str(seed), f"{h:.4g}", f"{c:.4g}")
        compared.add_row("std", f"{spread.spread('holdout'):.3g}", f"{spread.spread('cv'):.3g}")
        out.print(compared)
        out.print(escape(spread.summary()), highlight=False)
    out.print(f"fold models (an averaging ensemble, trainlab.load) and report: {escape(str(folder))}",
              highlight=False)


def ensemble(
    spec: Path = typer.Argument(..., metavar="SPEC", help="TOML file with [data], [model] and [recipe]."),
    method: str = typer.Option("bagging", "--method", help="bagging, adaboost (classes) or gradient (regression)."),
    members: int = typer.Option(10, "--members", help="Members (bagging) or rounds (boosting)."),
    vote: str = typer.Option("soft", "--vote", help="Bagging: soft (average probabilities) or hard (majority)."),
    learning_rate: float = typer.Option(1.0, "--learning-rate", help="AdaBoost: factor on each member's weight."),
    shrinkage: float = typer.Option(0.1, "--shrinkage", help="Gradient boosting: factor on each member's output."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the result folder is written."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (for scripts)."),
) -> None:
    """Bagging or boosting of a spec's model: members' scores, the ensemble's, report.html."""
    from trainlab import check
    from trainlab.generalize import ensemble as make_ensemble
    from trainlab.generalize.bagging import METHODS
    from trainlab.generalize.report import ensemble_report

    check.choice("--method", method, METHODS, "bagging averages members trained on bootstrap samples; adaboost "
                 "(classes) and gradient (regression) boost weak members round by round.")
    parsed, dataset, spec_text = _load(spec, runs_dir, method)
    result = make_ensemble(_model(parsed), dataset, parsed.recipe, method=method, members=members, vote=vote,
                           learning_rate=learning_rate, shrinkage=shrinkage,
                           validation_split=parsed.data.validation_split, stratify=parsed.data.stratify,
                           scaling=parsed.data.scaling)
    result.name = parsed.name
    folder = _publish(runs_dir, parsed.name, method, spec_text,
                      lambda staging: (result.save(staging), ensemble_report(result, staging / "report.html",
                                                                              spec_text=spec_text)))
    if json_output:
        payload = {k: v for k, v in result.to_dict().items() if k != "histories"}
        print(json.dumps({"result_dir": str(folder), "report": str(folder / "report.html"), **payload},
                         allow_nan=True))
        return
    metric = result.metric
    table = Table(title=escape(f"{parsed.name}: {method}, {len(result.ensemble)} members"))
    bagged = result.method == "bagging"
    columns = ["member", "weight", *([f"out-of-bag {metric}"] if bagged else []), f"held-out {metric}"]
    if result.rounds:
        columns += ["ensemble train error", "ensemble val error"] if result.task == "classification" else \
            ["ensemble train mse", "ensemble val mse"]
    for column in columns:
        table.add_column(escape(column), justify="right")
    for k in range(len(result.ensemble)):
        cells = [str(k + 1), f"{result.weights[k]:.4g}"]
        if bagged:
            cells.append(f"{result.member_oob_scores[k][metric]:.4g}" if k < len(result.member_oob_scores) else "")
        cells.append(f"{result.member_scores[k][metric]:.4g}" if k < len(result.member_scores) else "")
        if result.rounds:
            entry = result.rounds[k]
            key = "error" if result.task == "classification" else "mse"
            cells += [f"{entry[f'train_{key}']:.4g}", f"{entry[f'val_{key}']:.4g}" if f"val_{key}" in entry else ""]
        table.add_row(*cells)
    out.print(table)
    out.print(escape(result.summary()), highlight=False)
    if result.stop_reason:
        out.print(escape(f"stopped: {result.stop_reason}"), highlight=False)
    out.print(f"ensemble (trainlab.load) and report: {escape(str(folder))}", highlight=False)


def _load(spec: Path, runs_dir: Path, method: str | None = None) -> tuple[Any, Any, str]:
    """The validated spec, its data (checked against the model), and the resolved spec as TOML."""
    import tomli_w

    from trainlab.api import check_before_training, dataset_from_spec
    from trainlab.runs import run_folder
    from trainlab.spec import load_spec, spec_to_dict

    parsed = load_spec(spec)
    run_folder(runs_dir, parsed.name)  # the name is a plain folder name that stays inside runs_dir
    dataset = dataset_from_spec(parsed.data)
    if method in ("adaboost", "gradient"):
        from trainlab.generalize.boosting import check_method

        check_method(method, dataset.task, parsed.recipe.loss)  # before the loss meets the targets
    check_before_training(parsed, dataset)
    return parsed, dataset, tomli_w.dumps(spec_to_dict(parsed))


def _model(parsed: Any) -> Any:
    from trainlab.models import Sequential

    return Sequential(parsed.model.layers, name=parsed.name)


def _publish(runs_dir: Path, name: str, kind: str, spec_text: str, write: Any) -> Path:
    """Write the results into a hidden staging folder, then rename it to ``runs_dir/name/<kind>-<id>``."""
    from trainlab.runs import new_run_id, run_folder, write_text_atomic

    run_id = f"{kind}-{new_run_id()}"
    target = run_folder(runs_dir, name, run_id)
    staging = run_folder(runs_dir, name) / f".{run_id}.partial"
    staging.mkdir(parents=True)
    try:
        write_text_atomic(staging / "spec.toml", spec_text)
        write(staging)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
