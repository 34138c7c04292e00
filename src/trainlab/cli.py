"""The command line: arguments -> spec -> library call. No logic of its own.

Exit status: 0 on success, 2 on bad input (one paragraph, no traceback),
1 on an internal error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from trainlab.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="trainlab: train neural networks well, compare techniques, explain failures.")
out = Console()
err = Console(stderr=True)


@app.command()
def fit(
    spec: Path = typer.Argument(..., help="TOML file with [data], [model] and [recipe]."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are written."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (for scripts)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest unfinished run of this spec."),
) -> None:
    """Train the model a spec describes; write the run under runs/ and print a final table."""
    from trainlab.api import run_spec
    from trainlab.spec import load_spec

    parsed = load_spec(spec)
    result = run_spec(parsed, runs_dir=runs_dir, verbose=0 if (quiet or json_output) else 1, resume=resume)
    history = result.history
    final = {k: v[-1] for k, v in history.history.items() if v}
    best = _best(history.history)
    summary = {"name": parsed.name, "run_dir": str(result.run_dir), "epochs": len(history.epoch),
               "seed": history.seed, "stop_reason": history.stop_reason, "final": final, "best": best}
    if json_output:
        print(json.dumps(summary))
        return
    table = Table(title=f"{parsed.name}: {len(history.epoch)} epochs")
    table.add_column("metric")
    table.add_column("final", justify="right")
    table.add_column("best", justify="right")
    for key, value in final.items():
        b = best.get(key)
        table.add_row(key, f"{value:.4g}", "" if b is None else f"{b['value']:.4g} (epoch {b['epoch'] + 1})")
    out.print(table)
    if history.stop_reason:
        out.print(f"stopped: {history.stop_reason}")
    out.print(f"run written to {result.run_dir}")


def _best(history: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    from trainlab.callbacks import _direction

    best = {}
    for key, values in history.items():
        if key == "lr" or not values:
            continue
        try:
            direction = _direction(key, "auto", "best")
        except InputError:
            continue
        pick = min if direction == "min" else max
        epoch = pick(range(len(values)), key=lambda i: values[i])
        best[key] = {"value": values[epoch], "epoch": epoch}
    return best


@app.command()
def datasets(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the bundled data sets (they load offline)."""
    from trainlab.datasets import describe_datasets

    rows = describe_datasets()
    if json_output:
        print(json.dumps(rows))
        return
    table = Table(title="data sets")
    for column in ("name", "samples", "features", "task", "classes", "summary"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in ("name", "samples", "features", "task", "classes",
                                                       "summary")))
    out.print(table)


@app.command()
def catalog(
    kind: str | None = typer.Argument(None, help="One kind: optimizer, schedule, initializer, ..."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    plot: str | None = typer.Option(None, "--plot", help="With KIND=schedule: draw this schedule to a PNG."),
    output: Path = typer.Option(Path("schedule.png"), "--output", "-o", help="PNG path for --plot."),
) -> None:
    """List every technique with its summary and the claim it makes."""
    from trainlab.catalog import REGISTRIES, entries

    if plot is not None:
        if kind != "schedule":
            raise InputError("--plot draws a schedule: use `trainlab catalog schedule --plot NAME`")
        from trainlab.schedules import plot_schedule

        path = plot_schedule(plot, output)
        out.print(f"wrote {path}")
        return
    rows = entries(kind)
    if json_output:
        print(json.dumps(rows))
        return
    table = Table(title="trainlab catalog" if kind is None else f"{kind}s")
    for column in ("kind", "name", "summary", "claim"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["kind"], row["name"], row["summary"], row["claim"])
    out.print(table)
    if kind is None:
        out.print(f"kinds: {', '.join(REGISTRIES)}")


@app.command()
def study(
    spec: Path = typer.Argument(..., help="Study TOML: a fit spec plus [study] (seeds, vary, case)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the study folder is written."),
    resume: bool = typer.Option(False, "--resume", help="Keep finished runs; train only the missing ones."),
    json_output: bool = typer.Option(False, "--json", help="Print the comparison as JSON (for scripts)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and list the runs; train nothing."),
) -> None:
    """Train every case x seed of a study, print the ranked table and write report.html."""
    from trainlab.study import load_study, run_study
    from trainlab.study.progress import RichStudyProgress

    parsed = load_study(spec)
    if dry_run:
        plan = [{"run_id": r.run_id, "case": r.case.label, "seed": r.seed} for r in parsed.runs]
        if json_output:
            print(json.dumps({"name": parsed.name, "cases": [c.label for c in parsed.cases], "runs": plan}))
            return
        for row in plan:
            out.print(f"{row['run_id']}  ({row['case']}, seed {row['seed']})", highlight=False)
        out.print(f"{len(parsed.cases)} cases x {parsed.settings.seeds} seeds = {len(plan)} runs; "
                  f"nothing trained (--dry-run)")
        return
    progress = None if (quiet or json_output) else RichStudyProgress(out)
    result = run_study(parsed, runs_dir=runs_dir, resume=resume, progress=progress)
    if json_output:
        print(json.dumps({"name": parsed.name, "study_dir": str(result.study_dir),
                          "report": str(result.report), "trained": result.trained, "reused": result.reused,
                          "comparison": result.comparison.to_dict()}))
        return
    out.print(result.comparison.table())
    out.print(f"{len(result.trained)} runs trained, {len(result.reused)} reused; report: {result.report}")


@app.command()
def report(
    study_dir: Path = typer.Argument(..., help="A study folder, runs/<study-name>/."),
    json_output: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Rebuild a study's report.html (and print its ranked table) from the stored runs."""
    from trainlab.study import build_report, compare, load_results

    path = build_report(study_dir)
    stored = load_results(study_dir)
    settings = stored.info.get("settings", {})
    comparison = compare(stored.records, metric=settings.get("metric"), mode=settings.get("mode", "auto"),
                         rank_by=settings.get("rank_by", "final"), case_order=stored.case_labels)
    if json_output:
        print(json.dumps({"report": str(path), "comparison": comparison.to_dict()}))
        return
    out.print(comparison.table())
    out.print(f"report: {path}")


runs_app = typer.Typer(help="List the runs and studies recorded in the run index (runs/index.sqlite).",
                       invoke_without_command=True, no_args_is_help=False)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs_list(
    context: typer.Context,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="The runs folder with index.sqlite."),
    study_name: str | None = typer.Option(None, "--study", help="Only the runs of this study."),
    status: str | None = typer.Option(None, "--status", help="running, finished, failed or interrupted."),
    name: str | None = typer.Option(None, "--name", help="Only runs of specs with this name."),
    limit: int | None = typer.Option(None, "--limit", help="Only the newest N runs."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List runs and studies from the index (`trainlab runs show ID` for one run)."""
    from trainlab.index import list_runs, list_studies

    context.obj = {"runs_dir": runs_dir, "json": json_output}
    if context.invoked_subcommand is not None:
        return
    rows = list_runs(runs_dir, study=study_name, status=status, name=name, limit=limit)
    studies = [s for s in list_studies(runs_dir) if study_name is None or s.name == study_name]
    if json_output:
        print(json.dumps({"studies": [s.as_dict() for s in studies], "runs": [r.as_dict() for r in rows]}))
        return
    if studies:
        table = Table(title="studies")
        for column in ("name", "status", "runs", "updated", "folder"):
            table.add_column(column)
        for s in studies:
            table.add_row(s.name, s.status, str(s.num_runs or ""), _when(s.updated), s.study_dir or "")
        out.print(table)
    table = Table(title=f"{len(rows)} runs in {runs_dir}")
    for column in ("id", "study", "case", "seed", "status", "started", "final"):
        table.add_column(column, overflow="fold")
    for r in rows:
        shown = {k: v for k, v in r.final.items() if k.startswith("val_")} or \
            {k: v for k, v in r.final.items() if k == "loss"}
        final = ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}"
                          for k, v in shown.items())
        table.add_row(r.id, r.study or "", r.case or "", "" if r.seed is None else str(r.seed), r.status,
                      _when(r.started), final)
    out.print(table)


@runs_app.command("show")
def runs_show(
    context: typer.Context,
    run_id: str = typer.Argument(..., help="A run id (or its unique beginning) from `trainlab runs`."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one run: its study and case, status, times, final metrics, folder and spec."""
    from trainlab.index import get_run

    options = context.obj or {}
    row = get_run(options.get("runs_dir", Path("runs")), run_id)
    if json_output or options.get("json"):
        print(json.dumps(row.as_dict()))
        return
    table = Table(title=f"run {row.id}", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key, value in (("name", row.name), ("study", row.study), ("case", row.case), ("seed", row.seed),
                       ("status", row.status), ("started", _when(row.started)),
                       ("finished", _when(row.finished)), ("folder", row.run_dir),
                       ("spec hash", row.spec_hash)):
        table.add_row(key, "" if value is None else str(value))
    for key, value in row.final.items():
        table.add_row(key, f"{value:.6g}" if isinstance(value, (int, float)) else str(value))
    out.print(table)
    out.print_json(json.dumps(row.spec))


def _when(timestamp: float | None) -> str:
    import time as _time

    return "" if timestamp is None else _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(timestamp))


from trainlab.cli_doctor import register as _register_doctor  # noqa: E402  (diagnose, lr-find)

_register_doctor(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input -> exit 2 with a message; an internal error -> exit 1."""
    try:
        app(args=argv, standalone_mode=False)
    except InputError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as error:  # click's usage errors come through here too
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(error.exit_code)
        if isinstance(error, click.exceptions.Abort):
            sys.exit(1)
        import traceback

        traceback.print_exc()
        err.print(f"[bold red]internal error:[/] {type(error).__name__}: {error}. "
                  "This is a bug in trainlab; please report it with the spec that caused it.")
        sys.exit(1)


if __name__ == "__main__":
    main()
