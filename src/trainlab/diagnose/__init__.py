"""The doctor: statistics callbacks, verdicts with evidence and a fix, and the LR range test.

`TrainingStatistics` records per-layer activation and gradient statistics on a
fixed probe batch; `diagnose` turns a run's history and statistics into
`Verdict`s (what went wrong, the numbers that show it, the threshold, the layer
and epoch, and the catalog technique that usually fixes it); `lr_find` runs the
learning-rate range test over several seeds. All of them are clients of the one
engine (`trainlab.engine.train`); none has a loop of its own.
"""

from trainlab.diagnose.statistics import TrainingStatistics, read_statistics

__all__ = ["TrainingStatistics", "read_statistics"]
