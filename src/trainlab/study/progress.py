"""The progress display of `trainlab study`: runs done, what is training now, time left.

One rich progress bar over all epochs still to train (so the time left
counts short and long runs fairly), with a line printed above it as each run
finishes. It fits 80 columns.

The label says what is true at the moment:

- one run training alone: ``adam, 0.1 · seed 2 · epoch 7/15``;
- runs trained together as one stacked model (their epochs arrive
  interleaved): ``21 runs stacked · epoch 7/15``; their time is the group's
  wall time split evenly, so each finished run's line marks it "(shared)".

Everything a user wrote (case labels) is shown as plain text, never as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text

from trainlab.study.compare import RunRecord, default_metric, short_labels
from trainlab.study.runner import StudyProgress
from trainlab.study.spec import PlannedRun, Study

__all__ = ["RichStudyProgress", "StudyLabel"]


class StudyLabel:
    """What is training now, from the runner's calls: one run, or several stacked runs.

    Runs that begin together (``run_begin`` for each before any ``run_end``) are
    one group. The group is stacked when its runs' epochs arrive interleaved
    (a run reports again after another run reported); otherwise its runs train
    one after another.

    Example:
        >>> label = StudyLabel({"a-s0": "a", "a-s1": "a"})
        >>> label.begin("a-s0", seed=0, num_epochs=3); label.begin("a-s1", seed=1, num_epochs=3)
        >>> label.epoch("a-s0", 0); label.epoch("a-s1", 0); label.epoch("a-s0", 1)
        >>> label.text()
        '2 runs stacked · epoch 2/3'
    """

    def __init__(self, cases: dict[str, str]) -> None:
        self.cases = cases
        self._active: dict[str, tuple[int, int]] = {}  # run id -> (seed, num_epochs)
        self._epochs: dict[str, int] = {}
        self._last: str | None = None
        self.stacked = False

    def begin(self, run_id: str, *, seed: int, num_epochs: int) -> None:
        self._active[run_id] = (seed, num_epochs)

    def epoch(self, run_id: str, epoch: int) -> None:
        if self._last is not None and self._last != run_id and run_id in self._epochs:
            self.stacked = True
        self._epochs[run_id] = epoch + 1
        self._last = run_id

    def end(self, run_id: str) -> None:
        self._active.pop(run_id, None)
        if not self._active:
            self._epochs.clear()
            self._last, self.stacked = None, False

    def text(self) -> str:
        if not self._active:
            return ""
        if self.stacked and len(self._active) > 1:
            epoch = max(self._epochs.get(r, 0) for r in self._active)
            total = max(n for _, n in self._active.values())
            return f"{len(self._active)} runs stacked · epoch {epoch}/{total}"
        if len(self._active) > 1 and not self._epochs:
            return f"{len(self._active)} runs in one group · starting"
        current = self._last if self._last in self._active else next(iter(self._active))
        seed, total = self._active[current]
        return f"{self.cases.get(current, current)} · seed {seed} · epoch {self._epochs.get(current, 0)}/{total}"


class RichStudyProgress(StudyProgress):
    """A rich progress bar for a study, written to `console`."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._progress: Progress | None = None
        self._task: Any = None
        self._label = StudyLabel({})
        self._runs_done = 0
        self._total_runs = 0
        self._metric: str | None = None

    def study_begin(self, study: Study, *, todo: Sequence[PlannedRun], finished: int) -> None:
        self._total_runs = len(study.runs)
        self._runs_done = finished
        self._metric = study.settings.metric
        short, _ = short_labels([c.label for c in study.cases])
        by_label = dict(zip((c.label for c in study.cases), short))
        self._label = StudyLabel({r.run_id: by_label[r.case.label] for r in study.runs})
        if finished:
            self.console.print(Text(f"study '{study.name}': reusing {finished} finished runs "
                                    f"(--fresh retrains them), {len(todo)} to train"))
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False,
                       table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=12)),
            BarColumn(bar_width=16),
            TextColumn("{task.fields[done]}", markup=False, table_column=Column(no_wrap=True)),
            TimeRemainingColumn(compact=True),
            console=self.console, transient=True, expand=True,
        )
        total = sum(run.spec.recipe.num_epochs for run in todo)
        self._task = self._progress.add_task(study.name, total=max(total, 1), done=self._done_text())
        self._progress.start()

    def run_begin(self, run: PlannedRun) -> None:
        self._label.begin(run.run_id, seed=run.seed, num_epochs=run.spec.recipe.num_epochs)
        self._show()

    def epoch_end(self, run: PlannedRun, epoch: int, logs: dict[str, Any]) -> None:
        self._label.epoch(run.run_id, epoch)
        if self._progress is not None:
            self._progress.advance(self._task)
        self._show()

    def run_end(self, run: PlannedRun, record: RunRecord) -> None:
        self._runs_done += 1
        self._label.end(run.run_id)
        if self._progress is None:
            return
        # A run that stopped early gives back the epochs it did not use.
        epochs = len(record.history.get("loss", []))
        self._progress.advance(self._task, max(run.spec.recipe.num_epochs - epochs, 0))
        self._progress.update(self._task, done=self._done_text())
        self._show()
        metric = self._metric or default_metric(record.history)
        values = record.history.get(metric, [])
        shown = f"{metric} {values[-1]:.4g}" if values and math.isfinite(values[-1]) else f"{metric} n/a"
        stop = f" ({record.stop_reason.split(':')[0]})" if record.stop_reason else ""
        # A stacked run's time is its group's wall time split evenly: say so.
        seconds = f"{record.seconds:.1f}s" + (" (shared)" if record.seconds_shared_by > 1 else "")
        self._progress.console.print(Text(f"  {run.run_id}: {shown}, {epochs} epochs, {seconds}{stop}"))

    def study_end(self, status: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _show(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=self._label.text(), refresh=True)

    def _done_text(self) -> str:
        return f"runs {self._runs_done}/{self._total_runs}"
