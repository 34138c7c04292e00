"""The command line: arguments -> spec -> library call. No logic of its own.

Exit status: 0 on success, 2 on bad input (one paragraph, no traceback) or a
usage error (the usage line and one line saying what is wrong), 1 on an
internal error.

A command is one function decorated with ``@app.command()``: its arguments are
typer options with plain-text help, it imports what it needs inside, raises
`InputError` for bad input, and prints through `out` (a console that never
reads user text as markup).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainlab import __version__
from trainlab.errors import InputError

# Help texts are plain text: "[data]" in a help string is a TOML table, not rich markup.
app = typer.Typer(add_completion=False, no_args_is_help=False, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="trainlab: train neural networks well, compare techniques, explain failures.")
# Nothing a user wrote (a case name, a layer type, a message quoting them) is ever read as markup:
# both consoles print text as it is, and styled parts are Text objects.
out = Console(markup=False)
err = Console(stderr=True, markup=False)


def _show_version(value: bool) -> None:
    if value:
        print(f"trainlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print trainlab's version and exit.",
                                 is_eager=True, callback=_show_version),
) -> None:
    """trainlab: train neural networks well, compare techniques, explain failures.

    Each command is one function below; `trainlab COMMAND --help` describes it.
    """


@app.command()
def fit(
    spec: Path = typer.Argument(..., metavar="SPEC", help="TOML file with [data], [model] and [recipe]."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are written."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (for scripts)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest unfinished run of this spec."),
    keep_checkpoint: bool = typer.Option(False, "--keep-checkpoint",
                                         help="Keep the resume state (checkpoint/) of a finished run."),
    nproc: int | None = typer.Option(None, "--nproc", min=1,
                                     help="Train the one model with N processes on this host (starts torchrun; "
                                          "recipe.batch_size is the global batch)."),
) -> None:
    """Train the model a spec describes; write the run under runs/ and print a final table.

    A run that diverges stops, keeps its last good weights and exits with status 0; its
    stop_reason says so and --json reports "diverged": true.
    """
    from trainlab.api import run_spec
    from trainlab.index import json_safe
    from trainlab.runs import summarize
    from trainlab.scale.distributed import distributed_env, launch, run_spec_distributed
    from trainlab.spec import load_spec

    if nproc is not None and nproc > 1 and distributed_env() is None:
        raise typer.Exit(launch(spec, nproc, ["--runs-dir", str(runs_dir)] + ["--json"] * json_output
                                + ["--quiet"] * quiet + ["--resume"] * resume + ["--keep-checkpoint"] * keep_checkpoint))
    parsed = load_spec(spec)
    train = run_spec_distributed if distributed_env() is not None else run_spec
    result = train(parsed, runs_dir=runs_dir, verbose=0 if (quiet or json_output) else 1, resume=resume,
                   keep_checkpoint=keep_checkpoint)
    if result is None:
        return  # a torchrun process other than rank 0: rank 0 reports
    history = result.history
    summary = {"name": parsed.name, "run_dir": str(result.run_dir), "seed": history.seed,
               **summarize(history, parsed.recipe)}
    final, best = summary["final"], summary["best"]
    if json_output:
        print(json.dumps(json_safe(summary)))
        return
    kept, last = summary["final_epoch"], summary.get("last")
    title = f"{parsed.name}: {summary['epochs']} epochs"
    if last is not None:
        title += f"; the saved weights are epoch {kept}'s" if kept else "; the saved weights are the initial ones"
    table = Table(title=title)
    table.add_column("metric")
    columns = [("final", final)] if last is None else [(f"final (epoch {kept})", final)] * bool(kept) + [
        (f"last (epoch {summary['epochs']})", last)]
    for header, _ in columns:
        table.add_column(header, justify="right")
    table.add_column("best", justify="right")
    for key in (last if last is not None else final):
        b = best.get(key)
        cells = [f"{values[key]:.4g}" if isinstance(values.get(key), (int, float)) else "" for _, values in columns]
        table.add_row(key, *cells, "" if b is None else f"{b['value']:.4g} (epoch {b['epoch']})")
    out.print(table)
    if history.stop_reason:
        out.print(f"stopped: {history.stop_reason}")
    out.print(f"run written to {result.run_dir}")


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
    kind: str | None = typer.Argument(None, metavar="KIND",
                                      help="One kind: optimizer, schedule, initializer, ... (none: the kinds)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON (every entry of every kind without KIND)."),
    plot: str | None = typer.Option(None, "--plot", help="With KIND=schedule: draw this schedule to a PNG."),
    output: Path = typer.Option(Path("schedule.png"), "--output", "-o", help="PNG path for --plot."),
    lang: str = typer.Option("en", "--lang", help="Language of the summaries: en or ko."),
) -> None:
    """List the techniques of one kind: summary, default settings and the claim each makes."""
    from trainlab.catalog import canonical_kind, entries, kinds
    from trainlab.catalog_ko import KIND_NAMES, summary

    if lang not in ("en", "ko"):
        raise InputError(f"--lang must be one of en, ko, got '{lang}'. Use --lang ko for Korean summaries.")

    if plot is not None:
        if kind is None or canonical_kind(kind) != "schedule":
            raise InputError("--plot draws a schedule: use `trainlab catalog schedule --plot NAME`")
        from trainlab.schedules import plot_schedule

        path = plot_schedule(plot, output)
        out.print(f"wrote {path}", highlight=False)
        return
    if json_output:
        rows = entries(kind)
        if lang == "ko":
            rows = [{**row, "summary": summary(row["kind"], row["name"], row["summary"])} for row in rows]
        print(json.dumps(rows, ensure_ascii=False))
        return
    if kind is None:
        table = Table(title="trainlab catalog: the kinds of technique", box=box.SIMPLE_HEAD)
        table.add_column("kind", no_wrap=True, min_width=11)
        table.add_column("entries", justify="right", no_wrap=True, min_width=7)
        table.add_column("for example")
        for row in kinds():
            shown = f"{row['kind']} ({KIND_NAMES[row['kind']]})" if lang == "ko" else row["kind"]
            table.add_row(shown, str(row["count"]), _first_names(row["names"], 44))
        out.print(table)
        out.print("`trainlab catalog KIND` lists one kind with summaries, defaults and claims.")
        return
    rows = entries(kind)
    table = Table(title=f"{len(rows)} {canonical_kind(kind)}s", box=box.SIMPLE_HEAD, show_lines=True)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("설명, 기본값, 주장" if lang == "ko" else "what it is, its defaults, and its claim", ratio=1,
                     overflow="fold")
    for row in rows:
        text = Text(summary(row["kind"], row["name"], row["summary"]) if lang == "ko" else row["summary"])
        if row["defaults"]:
            text.append("\n기본값: " if lang == "ko" else "\ndefaults: ", style="dim").append(row["defaults"])
        if row["claim"]:
            text.append("\n주장: " if lang == "ko" else "\nclaim: ", style="dim").append(row["claim"])
        table.add_row(Text(row["name"]), text)
    out.print(table)


@app.command()
def study(
    spec: Path = typer.Argument(..., metavar="SPEC",
                                help="Study TOML: a fit spec plus [study] (seeds, vary, case)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the study folder is written."),
    seeds: int | None = typer.Option(None, "--seeds", min=1,
                                     help="Seeds per case, instead of the file's study.seeds."),
    fresh: bool = typer.Option(False, "--fresh", help="Retrain every run, even those already finished."),
    resume: bool = typer.Option(False, "--resume", hidden=True,
                                help="Kept for scripts: finished runs are always reused."),
    json_output: bool = typer.Option(False, "--json", help="Print the comparison as JSON (for scripts)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and list the runs; train nothing."),
    ray_address: str | None = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                           help="Train on a Ray cluster: one task per group of stackable runs. "
                                                "ADDRESS: host:port of the head node, ray://host:10001, or auto (the cluster "
                                                "this machine belongs to); "
                                                "without one, the cluster RAY_ADDRESS names or a local Ray."),
) -> None:
    """Train every case x seed of a study, print the ranked table and write report.html.

    Runs already finished in the study folder (from an earlier or interrupted call) are reused, so the
    command can be repeated; --fresh retrains them, --seeds N adds seeds.
    """
    from trainlab.study import load_study, parse_study, run_study
    from trainlab.study.progress import RichStudyProgress

    parsed = load_study(spec)
    if seeds is not None:
        raw = dict(parsed.raw)
        parsed = parse_study({**raw, "study": {**raw.get("study", {}), "seeds": seeds}}, source=str(spec))
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
    executor = None
    if ray_address is not None:
        from trainlab.scale.ray import RayExecutor

        executor = RayExecutor(ray_address or None)
    result = run_study(parsed, runs_dir=runs_dir, resume=not fresh, fresh=fresh, progress=progress,
                       executor=executor)
    if json_output:
        print(json.dumps({"name": parsed.name, "study_dir": str(result.study_dir),
                          "report": str(result.report), "trained": result.trained, "reused": result.reused,
                          "comparison": result.comparison.to_dict()}))
        return
    _print_comparison(result.comparison)
    if parsed.settings.sharpness:
        from trainlab.cli_sharpness import print_study_sharpness

        print_study_sharpness(result.study_dir)
    reused = (f"{len(result.reused)} reused (finished earlier; --fresh retrains them)" if result.reused
              else "0 reused")
    out.print(f"{len(result.trained)} runs trained, {reused}; report: {result.report}", highlight=False,
              soft_wrap=True)


def _first_names(names: list[str], width: int) -> str:
    """As many whole names as fit in `width` characters, then '...'."""
    shown = ""
    for index, name in enumerate(names):
        more = ", ..." if index + 1 < len(names) else ""
        if len(shown) + len(name) + 2 + len(more) > width:
            return shown + ", ..."
        shown = name if not shown else f"{shown}, {name}"
    return shown


def _print_comparison(comparison: Any) -> None:
    """The verdict paragraph, then the ranked table."""
    out.print(Text(comparison.verdict()), soft_wrap=False)
    out.print(comparison.table())


@app.command()
def report(
    study_dir: Path = typer.Argument(..., metavar="STUDY_DIR", help="A study folder, runs/<study-name>/."),
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
    _print_comparison(comparison)
    out.print(f"report: {path}", highlight=False)


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
    # 80 columns: the id names the study and the case; started is short; one final metric per run.
    table = Table(title=f"{len(rows)} runs in {runs_dir}", box=box.SIMPLE_HEAD)
    table.add_column("id (study/run)", overflow="fold", ratio=1)
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("final", no_wrap=True)
    for r in rows:
        key = next((k for k in r.final if k.startswith("val_") and k != "val_loss"), None) or \
            next((k for k in ("val_loss", "loss") if k in r.final), None)
        value = r.final.get(key) if key else None
        name = (key or "").replace("accuracy", "acc")
        final = "" if key is None else (f"{name} {value:.4g}" if isinstance(value, (int, float))
                                        else f"{name} {value}")
        table.add_row(r.id, r.status, _when(r.started, short=True), final)
    out.print(table)


@runs_app.command("show")
def runs_show(
    context: typer.Context,
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="A run id (or its unique beginning) from `trainlab runs`."),
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


def _when(timestamp: float | None, *, short: bool = False) -> str:
    import time as _time

    form = "%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S"
    return "" if timestamp is None else _time.strftime(form, _time.localtime(timestamp))


from trainlab.cli_doctor import register as _register_doctor  # noqa: E402  (diagnose, lr-find)

_register_doctor(app)
from trainlab.cli_gallery import register as _register_gallery  # noqa: E402  (gallery)

_register_gallery(app)

from trainlab.cli_sharpness import register as _register_sharpness  # noqa: E402  (bias-variance, sharpness)

_register_sharpness(app)

from trainlab.cli_generalize import register as _register_generalize  # noqa: E402  (cv, ensemble)

_register_generalize(app)

from trainlab.cli_search import register as _register_search  # noqa: E402  (search)

_register_search(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input or a usage error -> exit 2 with a message; an internal error -> exit 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    args = _optional_value(args, "--ray")
    if not args:
        _usage_error("Usage: trainlab [OPTIONS] COMMAND [ARGS]...",
                     f"a command is needed: {', '.join(_command_names())}.", "trainlab --help")
    try:
        code = app(args=args, standalone_mode=False, prog_name="trainlab")
    except InputError as error:
        err.print(Text.assemble(("error: ", "bold red"), str(error)), highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except typer.Exit as stop:  # --version, --help
        if stop.exit_code:
            sys.exit(stop.exit_code)
        return
    except typer.Abort:
        sys.exit(1)
    except typer.TyperException as error:  # usage: an unknown command or option, a missing argument
        context = getattr(error, "ctx", None)
        usage = context.get_usage() if context is not None else "Usage: trainlab [OPTIONS] COMMAND [ARGS]..."
        where = context.command_path if context is not None else "trainlab"
        _usage_error(usage, error.format_message(), f"{where} --help", code=error.exit_code)
    except SystemExit:
        raise
    except Exception as error:
        import traceback

        traceback.print_exc()
        err.print(Text.assemble(("internal error: ", "bold red"),
                                f"{type(error).__name__}: {error}. This is a bug in trainlab; please report "
                                "it with the spec that caused it."), soft_wrap=True)
        sys.exit(1)
    if isinstance(code, int) and code != 0:
        sys.exit(code)


def _optional_value(args: list[str], option: str) -> list[str]:
    """`option` given last or before another option has no value: it becomes ``option=`` (empty)."""
    return [f"{a}=" if a == option and (i + 1 == len(args) or args[i + 1].startswith("-")) else a
            for i, a in enumerate(args)]


def _usage_error(usage: str, message: str, help_command: str, *, code: int = 2) -> None:
    """The usage line, then one line saying what is wrong and where the help is; exit `code`."""
    err.print(usage.strip(), highlight=False, soft_wrap=True)
    message = message.strip()
    message += "" if message.endswith((".", "?", "!")) else "."
    err.print(Text.assemble(("error: ", "bold red"), f"{message} See '{help_command}'."),
              highlight=False, soft_wrap=True)
    sys.exit(code)


def _command_names() -> list[str]:
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    return names + [g.name or "" for g in app.registered_groups]


if __name__ == "__main__":
    main()
