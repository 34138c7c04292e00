"""The command line: arguments -> spec -> library call. No logic of its own.

Exit status: 0 on success, 2 on bad input (one paragraph, no traceback),
1 on an internal error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

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
    kind: Optional[str] = typer.Argument(None, help="One kind: optimizer, schedule, initializer, ..."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    plot: Optional[str] = typer.Option(None, "--plot", help="With KIND=schedule: draw this schedule to a PNG."),
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
