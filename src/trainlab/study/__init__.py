"""Studies: which technique wins here, and by how much.

A study is a base spec plus what to vary (a grid of axes, or named cases)
and a number of seeds (`trainlab.study.spec`). It trains every case x seed
(`trainlab.study.runner`), records each run in the run index
(`trainlab.index`), ranks the cases with 95% intervals, effect sizes against
the best and Holm-corrected tests, with a verdict per case
(`trainlab.study.compare`), and writes a self-contained `report.html` with
interactive charts (`trainlab.study.report`).

    trainlab study examples/optimizers.toml     # train, print the verdict and table, write the report
    trainlab study examples/optimizers.toml     # again: reuses the finished runs, trains only what is missing
    trainlab study examples/optimizers.toml --fresh     # retrain every run
    trainlab report runs/optimizers              # rebuild the report from the stored runs
"""

from trainlab.study.compare import Comparison, compare, holm, load_results, welch_t_test
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
    "holm",
    "load_results",
    "load_study",
    "parse_study",
    "run_study",
    "train_group",
    "welch_t_test",
]
