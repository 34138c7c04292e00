"""Batch size as a study axis: learning-rate scaling rules, and sharpness beside the gap per run."""

from __future__ import annotations

import json

import pytest

from trainlab.errors import InputError
from trainlab.study import parse_study, run_study


def _study(**settings: object) -> dict:
    return {"name": "batches", "data": {"name": "iris", "validation_split": 0.2},
            "model": {"layers": [{"type": "Dense", "units": 6, "activation": "relu"},
                                 {"type": "Dense", "units": 3, "activation": "softmax"}]},
            "recipe": {"optimizer": {"name": "sgd", "lr": 0.1}, "num_epochs": 1, "batch_size": 16},
            "study": {"seeds": 1, "vary": {"batch_size": [16, 64]}, **settings}}


@pytest.mark.parametrize("rule, scales", [("none", [1.0, 1.0]), ("linear", [1.0, 4.0]), ("sqrt", [1.0, 2.0])])
def test_lr_scaling_rules_multiply_the_lr_by_the_batch_size_ratio(rule, scales) -> None:
    study = parse_study(_study(lr_scaling=rule))
    assert [run.spec.recipe.batch_size for run in study.runs] == [16, 64]
    assert [run.spec.recipe.optimizer["lr"] for run in study.runs] == pytest.approx([0.1 * s for s in scales])


def test_lr_scaling_starts_from_the_optimizers_default_lr_and_a_stated_base_batch_size() -> None:
    raw = _study(lr_scaling="linear", base_batch_size=8)
    raw["recipe"]["optimizer"] = "adam"  # torch's default lr 1e-3
    study = parse_study(raw)
    assert [run.spec.recipe.optimizer for run in study.runs] == [{"name": "adam", "lr": pytest.approx(0.002)},
                                                                {"name": "adam", "lr": pytest.approx(0.008)}]


def test_an_unknown_lr_scaling_rule_is_refused() -> None:
    with pytest.raises(InputError, match=r"study\.lr_scaling.*'none', 'linear' or 'sqrt'"):
        parse_study(_study(lr_scaling="square"))


def test_the_sharpness_option_adds_sharpness_and_the_gap_to_each_run_and_the_report(tmp_path, capsys) -> None:
    from trainlab.generalize._pages import sharpness_chart

    result = run_study(parse_study(_study(sharpness=True)), runs_dir=tmp_path, report=False)
    for run_id in ("batch_size-16-s0", "batch_size-64-s0"):
        stored = json.loads((result.study_dir / run_id / "result.json").read_text())
        sharpness = stored["sharpness"]
        assert sharpness["rows"] == 120 and sharpness["num_params"] == 4 * 6 + 6 + 6 * 3 + 3  # 80% of iris
        assert sharpness["top_eigenvalue"] > 0 and sharpness["epsilon_sharpness"] >= 0
        assert sharpness["gap"]["loss"] == pytest.approx(sharpness["val"]["loss"] - sharpness["train"]["loss"])
        assert sharpness["val"]["loss"] == pytest.approx(stored["final"]["val_loss"], rel=1e-4)
    chart = sharpness_chart(result.study_dir)  # the chart build_report adds to the study's page
    assert chart is not None and chart.title == "Sharpness against batch size" and chart.png
    assert sorted(chart.figure.data[1].x) == [16, 64]  # the mean line, one point per batch size
    from trainlab.cli_sharpness import print_study_sharpness

    print_study_sharpness(result.study_dir)  # what `trainlab study` prints after its table
    printed = capsys.readouterr().out
    assert "λ_max" in printed and "batch_size=64" in printed and "gap loss" in printed
