"""Every command of the command line, as a new user first types it (issue 10): no traceback, ever.

Each command runs in a fresh process at 80 columns: with no arguments, misspelled,
with a misspelled option, and with --help. A usage error exits with status 2 and
prints the usage line and one line saying what is wrong; --help and --version
exit 0; help texts keep their bracketed words ([data], [study]).

Also: nothing a user wrote is read as rich markup (issue 17, item 2): bracketed
layer types and case names come back verbatim in messages, tables and progress.
"""

import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trainlab.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["fit", "study", "report", "datasets", "catalog", "runs"]
NEEDS_ARGUMENT = {"fit": "SPEC", "study": "SPEC", "report": "STUDY_DIR"}
MISSPELLED = {"fitt": "fit", "stduy": "study", "reprot": "report", "datsets": "datasets",
              "catalgo": "catalog", "rusn": "runs"}

# (arguments, expected exit status)
CASES = (
    [([], 2), (["--version"], 0), (["--help"], 0), (["--hlep"], 2)]
    + [([c], 2 if c in NEEDS_ARGUMENT else 0) for c in COMMANDS]
    + [([c, "--help"], 0) for c in COMMANDS]
    + [([c, "--jsno"], 2) for c in ("fit", "runs")]
    + [([typo], 2) for typo in MISSPELLED]
    + [(["runs", "show"], 2), (["runs", "show", "--help"], 0), (["catalog", "optimzer"], 2)]
)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Every case in its own process, a few at a time, in an empty folder."""
    folder = tmp_path_factory.mktemp("fresh")
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]), "NO_COLOR": "1"}

    def one(args):
        return subprocess.run([sys.executable, "-m", "trainlab.cli", *args], capture_output=True, text=True,
                              cwd=folder, env=env, timeout=300)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, [args for args, _ in CASES]))
    return {tuple(args): result for (args, _), result in zip(CASES, results)}


@pytest.mark.parametrize("args, status", CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_every_command_exits_cleanly_with_the_right_status(ran, args, status):
    done = ran[tuple(args)]
    both = done.stdout + done.stderr
    assert done.returncode == status, both
    assert "Traceback" not in both and "Error:" not in both and "internal error" not in both
    if status == 2:
        lines = done.stderr.strip().splitlines()
        assert 1 <= len(lines) <= 2, done.stderr
        assert lines[-1].startswith("error: ")
        if args != ["catalog", "optimzer"]:  # that one is bad input, not a usage error
            assert "--help" in lines[-1]
        if len(lines) == 2:
            assert lines[0].startswith("Usage: trainlab")


def test_usage_errors_say_what_is_wrong(ran):
    needed = ran[()].stderr
    assert "a command is needed: fit, datasets, catalog, study, report, diagnose, lr-find, " in needed
    assert all(f" {name}," in needed or f" {name}." in needed for name in ("gallery", "search", "cv", "ensemble", "bias-variance", "sharpness", "runs"))
    for command, argument in NEEDS_ARGUMENT.items():
        err = ran[(command,)].stderr
        assert f"Missing argument '{argument}'" in err and f"Usage: trainlab {command}" in err
    for typo, command in MISSPELLED.items():
        assert f"Did you mean '{command}'?" in ran[(typo,)].stderr
    assert "No such option: --jsno" in ran[("fit", "--jsno")].stderr
    assert "Did you mean 'optimizer'?" in ran[("catalog", "optimzer")].stderr
    assert ran[("--version",)].stdout.strip() == "trainlab 0.1.0"


def test_help_texts_keep_their_bracketed_words_at_80_columns(ran):
    fit = ran[("fit", "--help")].stdout
    assert "[data], [model] and [recipe]" in " ".join(fit.split())
    assert "[study]" in ran[("study", "--help")].stdout
    for command in COMMANDS:
        text = ran[(command, "--help")].stdout
        assert max(len(line) for line in text.splitlines()) <= 80, text
    assert all(c in ran[("--help",)].stdout for c in COMMANDS)


def test_bare_catalog_is_a_short_table_of_kinds(ran):
    text = ran[("catalog",)].stdout
    assert len(text.splitlines()) <= 20
    for kind in ("optimizer", "schedule", "initializer", "activation", "loss", "metric", "layer"):
        assert kind in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_catalog_kind_shows_full_summaries_and_defaults(capsys):
    main(["catalog", "optimizer"])
    text = " ".join(capsys.readouterr().out.split())
    # The summary is not cut at its colon: adadelta's update rule follows it.
    assert "Adadelta, with torch's accumulators: s <- rho * s + (1 - rho) * g^2;" in text
    assert "defaults: lr=0.001, betas=(0.9, 0.999), eps=1e-08" in text  # adam
    assert "claim:" in text


SPEC = """
name = "markup"

[data]
name = "iris"

[[model.layers]]
type = "{layer}"
units = 4

[[model.layers]]
type = "Dense"
units = 3
activation = "softmax"

[recipe]
num_epochs = 2
batch_size = 32
metrics = ["accuracy"]
"""


@pytest.mark.parametrize("layer", ["[/b]", "[red]x", "[bold]Dense[/bold]"])
def test_a_bracketed_layer_type_is_echoed_verbatim(tmp_path, capsys, layer):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(layer=layer))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(spec), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"unknown layer '{layer}'" in " ".join(err.split()) and "Traceback" not in err


def test_bracketed_case_names_are_echoed_verbatim_in_the_table_and_the_progress(tmp_path, capsys):
    study = SPEC.format(layer="Dense") + CASES_TOML
    spec = tmp_path / "study.toml"
    spec.write_text(study)
    main(["study", str(spec), "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    out = capsys.readouterr().out
    assert "[red]x" in out and "[/b]" in out and "Traceback" not in out


def drive(progress, study, *, stacked):
    """Tell a progress display what the runner tells it: every run begins, epochs, every run ends."""
    from trainlab.study.compare import RunRecord

    progress.study_begin(study, todo=study.runs, finished=0)
    runs = list(study.runs)
    labels = []
    for run in runs if stacked else []:
        progress.run_begin(run)
    for run in runs:
        if not stacked:
            progress.run_begin(run)
            for epoch in range(2):
                progress.epoch_end(run, epoch, {"loss": 1.0})
                labels.append(progress._label.text())
    if stacked:
        for epoch in range(2):
            for run in runs:
                progress.epoch_end(run, epoch, {"loss": 1.0})
                labels.append(progress._label.text())
    for run in runs:
        record = RunRecord(run_id=run.run_id, case=run.case.label, seed=run.seed, history={"loss": [1.0, 0.5]},
                           seconds=1.0, seconds_shared_by=len(runs) if stacked else 1)
        if not stacked:
            progress.run_end(run, record)
    for run in runs if stacked else []:
        progress.run_end(run, RunRecord(run_id=run.run_id, case=run.case.label, seed=run.seed,
                                        history={"loss": [1.0, 0.5]}, seconds=0.5, seconds_shared_by=len(runs)))
    progress.study_end("finished")
    return labels


def test_progress_labels_tell_stacked_from_solo_runs_and_print_names_verbatim(tmp_path):
    import tomllib

    from rich.console import Console

    from trainlab.study import parse_study
    from trainlab.study.progress import RichStudyProgress

    study = parse_study(tomllib.loads(SPEC.format(layer="Dense") + CASES_TOML))
    screen = io.StringIO()
    progress = RichStudyProgress(Console(file=screen, width=80, force_terminal=True, markup=False))
    labels = drive(progress, study, stacked=True)
    # Interleaved epochs: the runs are stacked, and the label says so, with the epoch.
    assert labels[-1] == "4 runs stacked · epoch 2/2"
    drawn = screen.getvalue()
    assert "0.5s (shared)" in drawn and "Traceback" not in drawn
    screen = io.StringIO()
    progress = RichStudyProgress(Console(file=screen, width=80, force_terminal=True, markup=False))
    labels = drive(progress, study, stacked=False)
    assert labels[0] == "[red]x · seed 0 · epoch 1/2" and labels[-1] == "[/b] · seed 1 · epoch 2/2"
    import re

    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "[red]x · seed 0 · epoch 1/2" in drawn and "[/b] · seed 1" in drawn
    assert all(len(line) <= 80 for line in re.split(r"[\r\n]", drawn))


CASES_TOML = """
[study]
seeds = 2

[[study.case]]
name = "[red]x"
optimizer = "adam"

[[study.case]]
name = "[/b]"
optimizer = "sgd"
"""


def test_the_fit_progress_bar_is_readable_at_80_columns():
    from trainlab.callbacks import ProgressBar, drive_epochs

    screen = io.StringIO()
    logs = {"loss": [0.5, 0.2002], "accuracy": [0.9, 0.95], "val_loss": [0.6, 0.3], "val_accuracy": [0.88, 0.9],
            "lr": [0.001, 0.001]}
    drive_epochs(ProgressBar(stream=screen, width=80), logs)
    lines = [line for line in screen.getvalue().splitlines() if line.strip()]
    text = " ".join(" ".join(lines).split())
    assert all(len(line) <= 80 for line in lines)
    assert "Epoch 2/2" in text and "…" not in text
    # Every metric is shown whole with its value (wrapped between metrics, never inside one).
    for part in ("loss: 0.2002", "accuracy: 0.9500", "val_loss: 0.3000", "val_accuracy: 0.9000"):
        assert part in text
