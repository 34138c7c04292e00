"""`trainlab bias-variance` and `trainlab sharpness`: arguments -> library call -> a table.

`register(app)` adds both commands to the main typer app (see `trainlab.cli`).
User text is printed with rich markup escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console()


def register(app: typer.Typer) -> None:
    """Add `bias-variance` and `sharpness` to `app`."""
    app.command("bias-variance")(bias_variance)
    app.command("sharpness")(sharpness)


def print_study_sharpness(study_dir: Path) -> None:
    """A study with ``sharpness = true``: per case, the means over seeds of sharpness and the gap."""
    import statistics

    from trainlab.generalize._pages import sharpness_records

    rows = sharpness_records(study_dir)
    if not rows:
        return
    table = Table(title="sharpness (λ_max: top Hessian eigenvalue) and generalization gap, means over seeds")
    for column in ("case", "batch", "λ_max", "trace", "ε-sharp %", "gap loss", "gap acc"):
        table.add_column(column, justify="left" if column == "case" else "right")
    cases: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        cases.setdefault(str(row["case"]), []).append(row)

    def mean(values: list[Any]) -> str:
        numbers = [float(v) for v in values if isinstance(v, (int, float))]
        return f"{statistics.fmean(numbers):.4g}" if numbers else "-"

    for case, runs in cases.items():
        gaps: list[dict[str, Any]] = [r["gap"] if isinstance(r.get("gap"), dict) else {} for r in runs]
        table.add_row(escape(case), str(runs[0].get("batch_size")), mean([r.get("top_eigenvalue") for r in runs]),
                      mean([r.get("trace") for r in runs]), mean([r.get("epsilon_sharpness") for r in runs]),
                      mean([g.get("loss") for g in gaps]), mean([g.get("accuracy") for g in gaps]))
    out.print(table)


def bias_variance(
    spec: Path = typer.Argument(..., metavar="SPEC",
                                help="TOML file: a fit spec plus a [bias_variance] table (rounds, test_fraction, "
                                     "capacity, values)."),
    rounds: int | None = typer.Option(None, "--rounds", help="Bootstrap training sets (members) per point, >= 2; "
                                                             "default: the file's, else 30."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="bias_variance.json and report.html go in "
                                                                  "RUNS_DIR/<name>/."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (for scripts)."),
    no_report: bool = typer.Option(False, "--no-report", help="Do not write report.html."),
) -> None:
    """Split the test loss into bias², variance and noise (0-1 loss: Domingos), along a capacity axis.

    Each round trains one member on a bootstrap sample of the training rows (stacked); every member
    predicts the same held-out test set.
    """
    from trainlab.generalize._pages import bias_variance_rows
    from trainlab.generalize.bias_variance import load_bias_variance, run_bias_variance

    config = load_bias_variance(spec, rounds=rounds)  # bad input stops here, before anything is written

    def told(done: int, total: int, value: float | None) -> None:
        if not json_output:
            shown = "" if value is None else f" {config.settings.capacity} = {value:g}"
            out.print(f"[{done + 1}/{total}]{escape(shown)}: {config.settings.rounds} rounds ...", highlight=False)

    result = run_bias_variance(config, runs_dir=runs_dir, report=not no_report, progress=told)
    if json_output:
        print(json.dumps(result.to_dict(), allow_nan=True))
        return
    header, rows = bias_variance_rows(result)
    table = Table(title=escape(f"bias-variance: {result.name}"))
    for column in header:
        table.add_column(escape(column), justify="right")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    out.print(table)
    if result.noise_known:
        out.print("noise: the data set's known noise variance; bias² is measured against the noise-free target.")
    elif result.task != "classification":
        out.print("noise: not known for this data, so bias² (against the observed targets) holds it.")
    else:
        out.print("0-1 loss (Domingos 2000): test error = bias + net variance.")
    if result.report is not None:
        out.print(f"report: {escape(str(result.report))}", highlight=False)


def sharpness(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A finished run folder (runs/<name>/<run-id>/)."),
    rows: int = typer.Option(2000, "--rows", help="Measure the loss on the first ROWS training rows."),
    method: str = typer.Option("lanczos", "--method", help="Top eigenvalue by 'lanczos' or 'power' iteration."),
    trace_samples: int = typer.Option(30, "--trace-samples", help="Rademacher vectors for Hutchinson's trace."),
    epsilon: float = typer.Option(1e-3, "--epsilon", help="Box size of the epsilon-sharpness (Keskar et al.)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (for scripts)."),
) -> None:
    """Sharpness of a trained run (top Hessian eigenvalue, Hessian trace, epsilon-sharpness) and its gap."""
    from trainlab.generalize.sharpness import run_sharpness

    result = run_sharpness(run_dir, rows=rows, method=method, trace_samples=trace_samples, epsilon=epsilon)
    if json_output:
        print(json.dumps(result.to_dict(), allow_nan=True))
        return
    s = result.sharpness
    table = Table(title=escape(f"sharpness: {run_dir}"))
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("top Hessian eigenvalue", f"{s.top_eigenvalue:.4g} ({escape(s.method)})")
    table.add_row("Hessian trace (Hutchinson)", f"{s.trace:.4g} ± {s.trace_std_error:.2g}")
    table.add_row(f"epsilon-sharpness (eps={s.epsilon:g})", f"{s.epsilon_sharpness:.4g} %")
    table.add_row("training loss (those rows)", f"{s.loss:.4g}")
    for key, value in result.gap.items():
        table.add_row(escape(f"gap in {key}"), f"{value:.4g} (train {result.train[key]:.4g}, "
                                               f"val {result.val[key]:.4g})")
    out.print(table)
    out.print(escape(f"measured on {result.rows}; {s.num_params} weights; gap: the saved weights' validation "
                     "minus training loss (for accuracy-like metrics, training minus validation)."), highlight=False)
