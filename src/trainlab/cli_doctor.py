"""`trainlab diagnose` and `trainlab lr-find`: arguments -> library call -> a table.

`register(app)` adds both commands to the main typer app (see `trainlab.cli`).
User text (names, paths, verdict summaries) is printed with rich markup
escaped, so a '[' in a spec name never turns into formatting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trainlab.errors import InputError

out = Console()

_STYLES = {"error": "bold red", "warning": "yellow", "info": "dim", "ok": "bold green"}


def register(app: typer.Typer) -> None:
    """Add `diagnose` and `lr-find` to `app`."""
    app.command("diagnose")(diagnose)
    app.command("lr-find")(lr_find)


def _verdict_table(diagnosis: Any, title: str) -> Table:
    table = Table(title=escape(title), show_lines=True)
    for column in ("severity", "verdict", "evidence", "fix"):
        table.add_column(column, overflow="fold")
    from trainlab.diagnose.report import _evidence

    for v in diagnosis.verdicts:
        where = []
        if v.layer:
            where.append(f"layer {v.layer}")
        if v.epoch is not None:
            where.append("at the start" if v.epoch < 0 else f"epoch {v.epoch + 1}")
        table.add_row(f"[{_STYLES[v.severity]}]{escape(v.severity)}[/]",
                      f"[bold]{escape(v.name)}[/]" + (f" ({escape(', '.join(where))})" if where else "")
                      + "\n" + escape(v.summary),
                      escape(_evidence(v.evidence)) + "\n[dim]threshold: " + escape(v.threshold) + "[/]",
                      escape(v.suggestion))
    return table


def _target(target: Path) -> str:
    if target.is_dir():
        return "run"
    if target.is_file():
        return "spec"
    raise InputError(f"'{target}' does not exist: give a spec TOML file (e.g. examples/digits_mlp.toml) or "
                     "a finished run folder (runs/<name>/<run-id>/, listed by `trainlab runs`)")


def diagnose(
    target: Path = typer.Argument(..., help="A spec TOML file (a short probe training is run) or a run folder."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the probe run folders are written."),
    epochs: int = typer.Option(20, "--epochs", min=1, help="At most this many epochs for the probe training."),
    fix: bool = typer.Option(False, "--fix", help="Apply the top suggestion, train again, show both runs."),
    json_output: bool = typer.Option(False, "--json", help="Print the verdicts as JSON (for scripts)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Name what went wrong in a run, with the evidence, and what usually fixes it."""
    from trainlab.diagnose.runner import apply_fix, diagnose_run, diagnose_spec, final_metrics, top_fix
    from trainlab.spec import load_spec, parse_spec

    kind = _target(target)
    verbose = 0 if (quiet or json_output) else 1
    if kind == "spec":
        spec = load_spec(target)  # bad input stops here, before anything is written
        diagnosis = diagnose_spec(spec, runs_dir=runs_dir, num_epochs=epochs, verbose=verbose)
    else:
        diagnosis = diagnose_run(target)
        if fix and diagnosis.spec is None:
            raise InputError(f"--fix needs the run's spec, but '{target}' has no spec.toml")
    fixed = None
    change = None
    if fix:
        verdict = top_fix(diagnosis)
        if verdict is not None:
            assert diagnosis.spec is not None
            spec_dict, change = apply_fix(diagnosis.spec, verdict)
            spec_dict["name"] = f"{spec_dict.get('name', 'run')}-fixed"
            fixed = diagnose_spec(parse_spec(spec_dict, source=f"{target} with {change}"), runs_dir=runs_dir,
                                  num_epochs=epochs, verbose=verbose)
    if json_output:
        payload = diagnosis.to_dict()
        if fix:
            payload["fix"] = None if fixed is None else {"change": change, **fixed.to_dict(),
                                                          "final": final_metrics(fixed.history)}
            payload["final"] = final_metrics(diagnosis.history)
        print(json.dumps(payload, allow_nan=True))
        return
    out.print(_verdict_table(diagnosis, f"diagnosis: {diagnosis.name}"))
    if not diagnosis.statistics:
        out.print("This run was trained without statistics: only its history was judged. "
                  "`trainlab diagnose SPEC` trains with them (activations, gradients, dead and saturated units).")
    if diagnosis.run_dir is not None:
        out.print(f"report: {escape(str(diagnosis.run_dir / 'diagnosis.html'))}", highlight=False)
    if not fix:
        return
    if fixed is None:
        out.print("The run looks healthy: nothing to fix.")
        return
    _side_by_side(diagnosis, fixed, change or "")


def _side_by_side(before: Any, after: Any, change: str) -> None:
    from trainlab.diagnose.runner import final_metrics

    out.print(_verdict_table(after, f"after the fix ({change})"))
    table = Table(title="both runs side by side")
    table.add_column("")
    table.add_column(escape(before.name))
    table.add_column(escape(f"{after.name}: {change}"))
    first, second = final_metrics(before.history), final_metrics(after.history)
    for key in [k for k in first if k in second]:
        table.add_row(escape(key), f"{first[key]:.4g}", f"{second[key]:.4g}")
    table.add_row("epochs", str(len(before.history.get("loss", []))), str(len(after.history.get("loss", []))))
    table.add_row("verdicts", escape(", ".join(v.name for v in before.verdicts)),
                  escape(", ".join(v.name for v in after.verdicts)))
    out.print(table)
    if after.run_dir is not None:
        out.print(f"report of the fixed run: {escape(str(after.run_dir / 'diagnosis.html'))}", highlight=False)


def lr_find(
    spec: Path = typer.Argument(..., help="A spec TOML file: its data, model, batch size and optimizer."),
    optimizer: list[str] = typer.Option([], "--optimizer", help="Optimizer name(s) to test (repeatable); "
                                        "default: the spec's optimizer."),
    steps: int = typer.Option(200, "--steps", min=10, help="Steps of the exponential lr sweep."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds for the band (each a run of the sweep)."),
    start_lr: float = typer.Option(1e-6, "--start-lr", help="First lr of the sweep."),
    end_lr: float = typer.Option(10.0, "--end-lr", help="Last lr of the sweep."),
    output: Path = typer.Option(Path("lr-find.png"), "--output", "-o", help="Where the plot is written (PNG)."),
    json_output: bool = typer.Option(False, "--json", help="Print the results as JSON (for scripts)."),
) -> None:
    """The LR range test: zones, divergence point and a suggested lr, with a band over seeds."""
    from trainlab.diagnose.range_test import LRFinder
    from trainlab.diagnose.runner import _prepared
    from trainlab.models import Sequential
    from trainlab.optimizers import OPTIMIZERS
    from trainlab.spec import load_spec

    parsed = load_spec(spec)
    for name in optimizer:
        OPTIMIZERS.entry(name, source="--optimizer")
    if output.suffix.lower() != ".png":
        raise InputError(f"--output must be a .png file, got '{output}'")
    finder = LRFinder(start_lr=start_lr, end_lr=end_lr, num_steps=steps, num_seeds=seeds,
                      batch_size=parsed.recipe.batch_size)
    prepared = _prepared(parsed)
    from trainlab.engine import TrainData

    data = TrainData(prepared.data.x, prepared.data.y)
    specs: list[Any] = list(optimizer) or [parsed.recipe.optimizer]
    loss = parsed.recipe.loss if parsed.recipe.loss is not None else "auto"
    results = []
    for choice in specs:
        if not json_output:
            shown = choice if isinstance(choice, str) else ", ".join(f"{k}={v}" for k, v in choice.items())
            out.print(f"sweeping {escape(shown)}: {seeds} seeds x {steps} steps ...", highlight=False)
        results.append(finder.run(Sequential(parsed.model.layers), data, choice, loss=loss,
                                  task=prepared.dataset.task, seed=parsed.recipe.seed, device=parsed.recipe.device))
    _plot(results, output)
    if json_output:
        print(json.dumps({"plot": str(output), "results": [r.to_dict() for r in results]}, allow_nan=True))
        return
    table = Table(title=escape(f"lr range test: {parsed.name}"), show_lines=True)
    for column in ("optimizer", "suggested lr", "too low", "good", "too high", "divergence"):
        table.add_column(column, overflow="fold")
    for r in results:
        zones = [f"{r.zones[name][0]:.2g} - {r.zones[name][1]:.2g}" if name in r.zones else ""
                 for name in ("too low", "good", "too high")]
        suggestion = "none" if r.suggestion is None else f"{r.suggestion:.3g}"
        table.add_row(escape(r.optimizer), suggestion + (" [yellow](weak)[/]" if r.weak else ""),
                      *(escape(z) for z in zones), "none" if r.divergence_lr is None else f"{r.divergence_lr:.3g}")
    out.print(table)
    for r in results:
        out.print(escape(r.reasoning), highlight=False)
    out.print(f"plot: {escape(str(output))}", highlight=False)


def _plot(results: list[Any], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(results), 1, figsize=(8, 4 * len(results)), squeeze=False)
    for ax, result in zip(axes[:, 0], results):
        result.plot(ax=ax)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100, bbox_inches="tight")
    plt.close(figure)
