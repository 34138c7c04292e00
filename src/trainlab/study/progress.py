"""The progress display of `trainlab study`: cases and runs done, the current case, time left.

One rich progress bar over all epochs still to train (so the time left
counts short and long runs fairly), with a line printed above it as each run
finishes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from trainlab.study.compare import RunRecord, default_metric
from trainlab.study.runner import StudyProgress
from trainlab.study.spec import PlannedRun, Study

__all__ = ["RichStudyProgress"]


class RichStudyProgress(StudyProgress):
    """A rich progress bar for a study, written to `console`."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._progress: Progress | None = None
        self._task: Any = None
        self._epochs_in_run = 0
        self._left_in_case: dict[str, int] = {}
        self._cases_done = 0
        self._runs_done = 0
        self._total_runs = 0
        self._num_cases = 0
        self._metric: str | None = None

    def study_begin(self, study: Study, *, todo: Sequence[PlannedRun], finished: int) -> None:
        self._total_runs = len(study.runs)
        self._runs_done = finished
        self._metric = study.settings.metric
        for run in todo:
            self._left_in_case[run.case.label] = self._left_in_case.get(run.case.label, 0) + 1
        self._cases_done = len(study.cases) - len(self._left_in_case)
        self._num_cases = len(study.cases)
        if finished:
            self.console.print(f"resuming study '{study.name}': {finished} runs already finished, "
                               f"{len(todo)} to train")
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[done]}"),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=self.console,
            transient=True,
        )
        total = sum(run.spec.recipe.num_epochs for run in todo)
        self._task = self._progress.add_task(study.name, total=max(total, 1), done=self._done_text())
        self._progress.start()

    def run_begin(self, run: PlannedRun) -> None:
        self._epochs_in_run = 0
        if self._progress is not None:
            self._progress.update(self._task, description=f"{run.case.label} · seed {run.seed}")

    def epoch_end(self, run: PlannedRun, epoch: int, logs: dict[str, Any]) -> None:
        self._epochs_in_run += 1
        if self._progress is not None:
            self._progress.advance(self._task)

    def run_end(self, run: PlannedRun, record: RunRecord) -> None:
        self._runs_done += 1
        left = self._left_in_case.get(run.case.label, 0) - 1
        self._left_in_case[run.case.label] = left
        if left == 0:
            self._cases_done += 1
        if self._progress is None:
            return
        # A run that stopped early gives back the epochs it did not use.
        self._progress.advance(self._task, max(run.spec.recipe.num_epochs - self._epochs_in_run, 0))
        self._progress.update(self._task, done=self._done_text())
        metric = self._metric or default_metric(record.history)
        values = record.history.get(metric, [])
        shown = f"{metric} {values[-1]:.4g}" if values and math.isfinite(values[-1]) else f"{metric} n/a"
        stop = f" ({record.stop_reason.split(':')[0]})" if record.stop_reason else ""
        epochs = len(record.history.get("loss", []))
        self._progress.console.print(f"  {run.run_id}: {shown}, {epochs} epochs, {record.seconds:.1f}s{stop}",
                                     highlight=False)

    def study_end(self, status: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _done_text(self) -> str:
        return f"cases {self._cases_done}/{self._num_cases} · runs {self._runs_done}/{self._total_runs}"
