"""`trainlab diagnose SPEC|RUN_DIR [--fix]` and `trainlab lr-find SPEC`: results, files, bad input.

Bad input gives one paragraph on stderr, exit status 2, and nothing written.
"""

from __future__ import annotations

import json

import pytest

from trainlab.cli import main

SPEC = """
name = "{name}"

[data]
name = "iris"

[[model.layers]]
type = "Dense"
units = 16
activation = "relu"
kernel_initializer = "he_normal"
bias_initializer = {{name = "constant", value = {bias}}}

[[model.layers]]
type = "Dense"
units = 3
activation = "softmax"

[recipe]
optimizer = {{name = "adam", lr = 0.01}}
batch_size = 16
num_epochs = 4
seed = 0
"""


def write(tmp_path, *, name="iris-doctor", bias=0.0):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(name=name, bias=bias))
    return path


def run_cli(args, capsys):
    code = 0
    try:
        main(args)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_diagnose_a_spec_writes_the_run_with_statistics_verdicts_and_report(tmp_path, capsys):
    spec = write(tmp_path)
    code, out, _ = run_cli(["diagnose", str(spec), "--runs-dir", str(tmp_path / "runs"), "--json"], capsys)
    assert code == 0
    payload = json.loads(out)
    run_dir = tmp_path / "runs" / "iris-doctor" / payload["run_dir"].split("/")[-1]
    assert {p.name for p in run_dir.iterdir()} >= {"statistics.jsonl", "diagnosis.json", "diagnosis.html",
                                                    "history.jsonl", "spec.toml"}
    assert len((run_dir / "statistics.jsonl").read_text().splitlines()) == 5  # the start and 4 epochs
    assert [v["name"] for v in payload["verdicts"]] == [v["name"] for v in
                                                        json.loads((run_dir / "diagnosis.json").read_text())["verdicts"]]
    # the finished folder is judged again from what it holds, with the same verdicts
    code, out, _ = run_cli(["diagnose", str(run_dir), "--json"], capsys)
    assert code == 0 and json.loads(out)["verdicts"] == payload["verdicts"]


def test_diagnose_fix_applies_the_top_suggestion_and_shows_both_runs(tmp_path, capsys):
    spec = write(tmp_path, name="dead_red", bias=-4.0)
    code, out, _ = run_cli(["diagnose", str(spec), "--runs-dir", str(tmp_path / "runs"), "--fix", "-q"], capsys)
    assert code == 0, out
    assert "dead_relus" in out and "both runs side by side" in out
    assert "bias_initializer = zeros" in " ".join(out.split())
    assert "dead_red-fixed" in out
    assert (tmp_path / "runs" / "dead_red-fixed").is_dir()


@pytest.mark.parametrize("args, message", [
    (["diagnose", "{tmp}/missing.toml"], "does not exist"),
    (["diagnose", "{tmp}/bad.toml"], "recipe.optimizer"),
    (["diagnose", "{tmp}"], "not a run folder"),
    (["lr-find", "{tmp}/spec.toml", "--optimizer", "adamm"], "adam"),
    (["lr-find", "{tmp}/spec.toml", "--output", "{tmp}/plot.jpg"], ".png"),
    (["lr-find", "{tmp}/spec.toml", "--start-lr", "1", "--end-lr", "0.1"], "end_lr"),
])
def test_bad_input_is_one_paragraph_exit_2_and_nothing_written(tmp_path, capsys, args, message):
    write(tmp_path)
    (tmp_path / "bad.toml").write_text(SPEC.format(name="bad", bias=0.0).replace('name = "adam"', 'name = "adamm"'))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run_cli([a.format(tmp=tmp_path) for a in args] + ["--runs-dir", str(tmp_path / "runs")]
                             if args[0] == "diagnose" else [a.format(tmp=tmp_path) for a in args], capsys)
    assert code == 2, (out, err)
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_lr_find_prints_the_suggestion_and_writes_the_plot(tmp_path, capsys):
    spec = write(tmp_path)
    plot = tmp_path / "lr.png"
    code, out, _ = run_cli(["lr-find", str(spec), "--optimizer", "sgd", "--optimizer", "adam", "--steps", "40",
                            "--seeds", "2", "--start-lr", "1e-4", "--end-lr", "10", "-o", str(plot), "--json"], capsys)
    assert code == 0
    payload = json.loads(out)
    assert [r["optimizer"] for r in payload["results"]] == ["sgd", "adam"]
    assert all(r["reasoning"] for r in payload["results"]) and plot.is_file()
