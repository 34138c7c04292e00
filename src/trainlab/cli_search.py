"""`trainlab search`: a search spec -> Optuna trials trained by the engine -> the best trials' table.

`register(app)` adds the command to the main typer app (see `trainlab.cli`).
Bad input (an unknown distribution, path or pruner, a stored search without
--resume) is one paragraph on stderr, exit status 2, and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

out = Console()


def register(app: typer.Typer) -> None:
    """Add `search` to `app`."""
    app.command("search")(search)


def search(
    spec: Path = typer.Argument(..., metavar="SPEC",
                                help="Search TOML: a fit spec plus [search] and [search.space]."),
    trials: int | None = typer.Option(None, "--trials", "-n", min=1,
                                      help="Trials in all, instead of the file's search.trials."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1,
                             help="Workers sharing the storage: processes here, or Ray tasks with --ray."),
    resume: bool = typer.Option(False, "--resume", help="Continue the stored search of this name."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the stored search of this name and start over."),
    storage: str | None = typer.Option(None, "--storage",
                                       help="An Optuna storage URL (default: runs/<name>/search.db)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the search folder is written."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (for scripts)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ray_address: str | None = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                           help="Run the --jobs workers as tasks on a Ray cluster; they share the "
                                                "storage, which every node must reach (on a cluster, a "
                                                "postgresql:// --storage). ADDRESS as for `trainlab study --ray`."),
) -> None:
    """Search hyperparameters with Optuna (TPE, pruning); write best.toml and report.html."""
    from trainlab.search import load_search, run_search

    plan = load_search(spec)  # bad input stops here, before anything is written
    executor = None
    if ray_address is not None:
        from trainlab.scale.ray import RayExecutor

        executor = RayExecutor(ray_address or None)  # no Ray, or no answer: stops here too
    progress = None if (quiet or json_output) else _bar(plan.name)
    result = run_search(plan, runs_dir=runs_dir, trials=trials, jobs=jobs, resume=resume, fresh=fresh,
                        storage=storage, progress=progress, executor=executor)
    if json_output:
        print(json.dumps(result.to_dict(), allow_nan=True, default=str))
        return
    table = Table(title=escape(f"search {plan.name}: best trials by {plan.metric} ({plan.direction})"))
    for column in ("#", plan.metric, "epochs", "values"):
        table.add_column(escape(column), overflow="fold")
    from trainlab.search.spec import format_params

    finished = sorted((t for t in result.trials if t["state"] == "COMPLETE"),
                      key=lambda t: t["value"], reverse=plan.direction == "maximize")
    for row in finished[:10]:
        table.add_row(str(row["number"]), f"{row['value']:.4g}", str(row["epochs"] or ""),
                      escape(format_params(row["values"])))
    out.print(table)
    counts = result.counts
    out.print(f"{sum(counts.values())} trials: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
              f"{counts['FAIL']} failed; {result.trained} run now in {result.seconds:.1f} s", highlight=False)
    if result.best_value is not None:
        out.print(f"best: trial {result.best_trial}, {escape(plan.metric)} = {result.best_value:.6g} "
                  f"({escape(format_params(result.best_values))})", highlight=False, soft_wrap=True)
        out.print(f"best spec: {escape(str(result.best_spec))} (train it with `trainlab fit`)", highlight=False,
                  soft_wrap=True)
    if result.report is not None:
        out.print(f"report: {escape(str(result.report))}", highlight=False, soft_wrap=True)


def _bar(name: str) -> Any:
    """A rich progress bar: trials finished out of those to run, and the best value so far."""
    from trainlab.search.runner import SearchProgress

    class _Bar(SearchProgress):
        """Trials finished out of those to run, and the best value so far."""

        def __init__(self, name: str) -> None:
            self.name = name
            self._progress: Progress | None = None
            self._task: Any = None
            self._start = 0

        def begin(self, *, total: int, finished: int, todo: int) -> None:
            if finished:
                out.print(f"search {escape(self.name)}: {finished} trials stored, {todo} to run", highlight=False)
            self._start = finished
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), console=out, transient=True)
            self._task = self._progress.add_task("trials", total=todo)
            self._progress.start()

        def update(self, *, finished: int, best: float | None) -> None:
            if self._progress is None:
                return
            label = "trials" if best is None else f"trials · best {best:.4g}"
            self._progress.update(self._task, completed=finished - self._start, description=label)

        def end(self, status: str) -> None:
            if self._progress is not None:
                self._progress.stop()

    return _Bar(name)
