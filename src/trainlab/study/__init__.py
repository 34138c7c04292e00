"""Studies: which technique wins here, and by how much.

A study is a base spec plus what to vary (a grid of axes, or named cases)
and a number of seeds (`trainlab.study.spec`). It trains every case x seed
(`trainlab.study.runner`), records each run in the run index
(`trainlab.index`), ranks the cases with their seed-to-seed spread and a
Welch's t-test against the best (`trainlab.study.compare`), and writes a
self-contained `report.html` (`trainlab.study.report`).

    trainlab study examples/optimizers.toml     # train, print the ranked table, write the report
    trainlab study examples/optimizers.toml --resume   # after an interruption: only the missing runs
    trainlab report runs/optimizers              # rebuild the report from the stored runs
"""

from trainlab.study.compare import Comparison, compare, load_results, welch_t_test
from trainlab.study.report import build_report
from trainlab.study.runner import StudyProgress, StudyResult, run_study, train_group
from trainlab.study.spec import Case, PlannedRun, Study, load_study, parse_study

__all__ = [
    "Case",
    "Comparison",
    "PlannedRun",
    "Study",
    "StudyProgress",
    "StudyResult",
    "build_report",
    "compare",
    "load_results",
    "load_study",
    "parse_study",
    "run_study",
    "train_group",
    "welch_t_test",
]
