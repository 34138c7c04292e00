"""The doctor: statistics callbacks, verdicts with evidence and a fix, and the LR range test.

`TrainingStatistics` records per-layer activation and gradient statistics on a
fixed probe batch; `diagnose` turns a run's history and statistics into
`Verdict`s (what went wrong, the numbers that show it, the threshold, the layer
and epoch, and the catalog technique that usually fixes it); `diagnose_spec`
and `diagnose_run` do it for a spec (a short probe training) or a finished run
folder and write the report page; `lr_find` runs the learning-rate range test
over several seeds. All of them are clients of the one engine
(`trainlab.engine.train`); none has a loop of its own.
"""

from trainlab.diagnose.range_test import LRFinder, LRFinderResult, lr_find
from trainlab.diagnose.runner import Diagnosis, apply_fix, baseline_loss, diagnose_run, diagnose_spec
from trainlab.diagnose.statistics import TrainingStatistics, read_statistics
from trainlab.diagnose.verdicts import TECHNIQUES, Thresholds, Verdict, diagnose

__all__ = [
    "TECHNIQUES", "Diagnosis", "LRFinder", "LRFinderResult", "Thresholds", "TrainingStatistics", "Verdict",
    "apply_fix", "baseline_loss", "diagnose", "diagnose_run", "diagnose_spec", "lr_find", "read_statistics",
]
