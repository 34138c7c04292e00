"""`trainlab study`, `trainlab report` and `trainlab runs` on the command line.

Bad input gives one paragraph on stderr, exit status 2, and nothing on disk.
"""

import json

import pytest

from trainlab.cli import main

STUDY = """
name = "cli-study"

[data]
name = "iris"

[[model.layers]]
type = "Dense"
units = 8
activation = "relu"

[[model.layers]]
type = "Dense"
units = 3
activation = "softmax"

[recipe]
optimizer = {name = "momentum", lr = 0.05}
metrics = ["accuracy"]
batch_size = 16
num_epochs = 2

[study]
seeds = 2

[study.vary]
lr = [0.01, 0.1]
"""


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    spec = root / "study.toml"
    spec.write_text(STUDY)
    main(["study", str(spec), "--runs-dir", str(root / "runs")])  # with the progress display
    return root


def test_study_prints_the_ranked_table_and_writes_the_report(study_dir, capsys):
    spec = study_dir / "again.toml"
    spec.write_text(STUDY.replace('name = "cli-study"', 'name = "cli-again"'))
    main(["study", str(spec), "--runs-dir", str(study_dir / "runs"), "--quiet"])
    out = capsys.readouterr().out
    assert "2 cases ranked by final val_accuracy" in out
    assert "lr=0.01" in out and "lr=0.1" in out and "best" in out
    assert "Welch" in out and "Holm" in out
    assert "4 runs trained, 0 reused; report:" in out
    assert (study_dir / "runs" / "cli-again" / "report.html").is_file()


def test_study_json_resume_and_runs_listing(study_dir, capsys):
    spec = study_dir / "study.toml"
    main(["study", str(spec), "--runs-dir", str(study_dir / "runs"), "--resume", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["trained"] == [] and len(result["reused"]) == 4
    assert [c["case"] for c in result["comparison"]["cases"]] != []
    assert result["comparison"]["test"].startswith("Welch's t-test") and result["comparison"]["verdict"]
    main(["runs", "--runs-dir", str(study_dir / "runs"), "--study", "cli-study", "--json"])
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in listed["runs"]) == ["cli-study/lr-0.01-s0", "cli-study/lr-0.01-s1",
                                                       "cli-study/lr-0.1-s0", "cli-study/lr-0.1-s1"]
    assert [s["name"] for s in listed["studies"]] == ["cli-study"]
    main(["runs", "--runs-dir", str(study_dir / "runs"), "--study", "cli-study"])
    out = capsys.readouterr().out
    assert "studies" in out and "4 runs in" in out and "finished" in out
    main(["runs", "--runs-dir", str(study_dir / "runs"), "show", "cli-study/lr-0.1-s1", "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert (shown["case"], shown["seed"], shown["status"]) == ("lr=0.1", 1, "finished")
    main(["runs", "--runs-dir", str(study_dir / "runs"), "show", "cli-study/lr-0.1-s1"])
    assert "val_accuracy" in capsys.readouterr().out


def test_report_rebuilds_the_page_from_the_stored_runs(study_dir, capsys):
    page = study_dir / "runs" / "cli-study" / "report.html"
    page.unlink()
    main(["report", str(study_dir / "runs" / "cli-study")])
    assert "report:" in capsys.readouterr().out
    text = page.read_text()
    # curves, lr, bars; a one-axis grid has no heatmap
    assert "lr=0.01" in text and text.count("<img alt=") == 3


def test_dry_run_lists_the_runs_and_trains_nothing(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(STUDY)
    main(["study", str(spec), "--runs-dir", str(tmp_path / "runs"), "--dry-run"])
    out = capsys.readouterr().out
    assert "lr-0.01-s0" in out and "2 cases x 2 seeds = 4 runs; nothing trained" in out
    assert not (tmp_path / "runs").exists()


def test_bad_study_exits_2_naming_the_case_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(STUDY.replace("lr = [0.01, 0.1]", "lr = [0.01, -0.1]"))
    code, _, err = run_cli(["study", str(spec), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert "case 'lr=-0.1' is not a valid spec" in " ".join(err.split())
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    code, _, err = run_cli(["report", str(tmp_path)], capsys)
    assert code == 2 and "is not a study folder" in " ".join(err.split())
    code, _, err = run_cli(["runs", "--runs-dir", str(tmp_path / "none"), "show", "x"], capsys)
    assert code == 2 and "there is no run index" in " ".join(err.split())
    spec.write_text(STUDY.replace('name = "iris"', 'name = "irsi"'))
    code, _, err = run_cli(["study", str(spec), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2 and "iris" in err and not (tmp_path / "runs").exists()
