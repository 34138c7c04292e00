"""The training display of `fit(verbose=...)`, as Keras prints it.

verbose=1: a header ``Epoch 3/20``, then a line with a bar that fills as the
epoch's batches run, redrawn in place; when the epoch ends the line is
completed with the epoch's metrics and kept on screen::

    Epoch 3/20
    12/12 ━━━━━━━━━━━━━━━━━━━━ 0s 4ms/step - loss: 0.4127 - accuracy: 0.8750
        - val_loss: 0.4511 - val_accuracy: 0.8333 - lr: 0.001

Lines are kept within the terminal's width (80 columns when it is unknown):
the in-place line is cut, the finished one wraps at a ``" - "``. When the
output is not a terminal (a log file, a notebook capture), only the finished
lines are printed. The running loss is read from the device at most ten times
a second, so the display does not slow a GPU loop down.

verbose=2: one line per epoch, ``Epoch 3/20 - 0.1s - loss: ... - val_loss: ...``.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

from trainlab.callbacks import Callback, format_logs

BAR_WIDTH = 20
REDRAW_SECONDS = 0.1


class ProgressBar(Callback):
    """Keras's progress display: verbose=1 a bar per epoch, verbose=2 one line per epoch.

    It only displays: a checkpoint does not record it, so a run resumes with or without it.
    """

    display_only = True

    def __init__(self, verbose: int = 1, *, stream: TextIO | None = None, width: int | None = None) -> None:
        self.verbose = verbose
        self.stream = stream
        self.width = width
        self._start = 0.0
        self._epoch_start = 0.0
        self._last_draw = 0.0
        self._loss_sum: Any = 0.0
        self._seen = 0
        self._batches = 0

    # -- where and how wide ------------------------------------------------------
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def _columns(self) -> int:
        return self.width if self.width is not None else shutil.get_terminal_size((80, 24)).columns

    def _live(self) -> bool:
        isatty = getattr(self._out(), "isatty", None)
        return bool(callable(isatty) and isatty())

    # -- hooks ---------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start = self._last_draw = time.perf_counter()
        self._loss_sum, self._seen, self._batches = 0.0, 0, 0
        if self.verbose == 1:
            print(f"Epoch {epoch + 1}/{self.run.num_epochs}", file=self._out(), flush=True)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches = batch + 1
        if self.verbose != 1 or not self._live():
            return
        loss, size = (logs or {}).get("loss"), int((logs or {}).get("size", 1))
        if loss is not None:
            # The running mean of the epoch so far, as Keras shows; summed on the device.
            self._loss_sum = self._loss_sum + loss.detach() * size if hasattr(loss, "detach") \
                else self._loss_sum + float(loss) * size
            self._seen += size
        now = time.perf_counter()
        if now - self._last_draw < REDRAW_SECONDS and self._batches < self.run.steps_per_epoch:
            return
        self._last_draw = now
        text = ""
        if self._seen:
            text = f"loss: {float(self._loss_sum) / self._seen:.4f}"  # one device read per redraw
        line = self._bar_line(self._batches, now) + (f" - {text}" if text else "")
        print("\r" + line[: self._columns() - 1].ljust(self._columns() - 1), end="", file=self._out(), flush=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.perf_counter()
        text = format_logs(logs or {})
        if self.verbose == 2:
            print(f"Epoch {epoch + 1}/{self.run.num_epochs} - {now - self._start:.1f}s - {text}",
                  file=self._out(), flush=True)
            return
        if self.verbose != 1:
            return
        steps = self.run.steps_per_epoch or self._batches
        line = self._bar_line(steps, now) + (f" - {text}" if text else "")
        wrapped = _wrap(line, self._columns())
        if self._live() and self._batches:
            first, _, rest = wrapped.partition("\n")
            wrapped = "\r" + first.ljust(self._columns() - 1) + ("\n" + rest if rest else "")
        print(wrapped, file=self._out(), flush=True)

    def _bar_line(self, done: int, now: float) -> str:
        if self.run.steps_per_epoch <= 0:  # streamed data of unknown length (a generator's first pass), as Keras
            elapsed = now - self._epoch_start
            return f"{done}/Unknown {elapsed:.0f}s {elapsed / max(done, 1) * 1000:.0f}ms/step"
        steps = max(self.run.steps_per_epoch, 1)
        filled = round(BAR_WIDTH * min(done, steps) / steps)
        bar = "━" * filled + ("─" * (BAR_WIDTH - filled))
        elapsed = now - self._epoch_start
        per_step = elapsed / max(done, 1)
        timing = f"{elapsed:.0f}s {per_step * 1000:.0f}ms/step"
        width = len(str(steps))
        return f"{done:>{width}}/{steps} {bar} {timing}"


def _wrap(line: str, columns: int) -> str:
    """Break `line` at " - " separators so that no piece is wider than `columns` (indented continuation)."""
    if len(line) <= columns:
        return line
    parts = line.split(" - ")
    lines: list[str] = []
    current = parts[0]
    for part in parts[1:]:
        if len(current) + 3 + len(part) <= columns:
            current += " - " + part
        else:
            lines.append(current)
            current = "    - " + part
    lines.append(current)
    return "\n".join(lines)
