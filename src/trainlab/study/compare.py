"""Compare a study's cases: per case the mean and spread over seeds, ranked, with a significance test.

For each case, over its seeds: the mean and sample standard deviation (n - 1
in the denominator) of the metric's final value (last epoch) and best value
(best epoch), the mean 1-based epoch of the best value, and the mean training
time. Cases are ranked by the mean of `rank_by` ("final" or "best"); a case
whose values are not all finite (a diverged loss) ranks last.

Significance: each case is compared with the best one by Welch's two-sided
t-test on the per-seed values of `rank_by` (unequal variances; the seeds of
two cases are independent samples, since case A's seed 0 and case B's seed 0
draw different initial weights once anything in the model differs). A
difference is flagged "n.s." when p >= 0.05, or when either case has fewer
than two seeds (no spread, no test).

Example:
    >>> result = welch_t_test([1.0, 2.0, 3.0], [3.0, 4.0, 5.0])
    >>> round(result.t, 4), result.df, round(result.p, 4)
    (-2.4495, 4.0, 0.0705)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainlab.errors import InputError
from trainlab.index import json_safe

__all__ = ["ALPHA", "CaseSummary", "Comparison", "RunRecord", "StudyRecords", "Welch", "compare",
           "load_results", "welch_t_test", "TEST_NAME"]

ALPHA = 0.05
TEST_NAME = "Welch's two-sided t-test over seeds"


@dataclass(frozen=True)
class Welch:
    """Welch's t statistic, its Welch-Satterthwaite degrees of freedom and the two-sided p-value."""

    t: float
    df: float
    p: float


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> Welch | None:
    """Welch's unequal-variance t-test of mean(a) == mean(b); None when either has fewer than 2 values.

    t = (mean_a - mean_b) / sqrt(s_a^2/n_a + s_b^2/n_b), with sample variances
    s^2; df = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1));
    p = 2 * P(T_df > |t|). With no spread in either sample (identical
    deterministic runs), p is 1 when the means are equal and 0 otherwise.

    Example:
        >>> welch_t_test([1.0], [2.0, 3.0]) is None
        True
        >>> welch_t_test([1.0, 1.0], [2.0, 2.0]).p
        0.0
    """
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    sa, sb = va / na, vb / nb
    se2 = sa + sb
    if se2 == 0.0:
        same = ma == mb
        return Welch(t=0.0 if same else math.copysign(math.inf, ma - mb), df=float(na + nb - 2),
                     p=1.0 if same else 0.0)
    t = (ma - mb) / math.sqrt(se2)
    df = se2 ** 2 / (sa ** 2 / (na - 1) + sb ** 2 / (nb - 1))
    p = float(2.0 * stats.t.sf(abs(t), df))
    return Welch(t=t, df=df, p=min(p, 1.0))


@dataclass(frozen=True)
class RunRecord:
    """What the comparison needs of one finished run."""

    run_id: str
    case: str
    seed: int
    history: dict[str, list[float]]
    seconds: float
    stop_reason: str | None = None
    steps_per_epoch: int | None = None


@dataclass(frozen=True)
class StudyRecords:
    """A study folder read back: its study.json and the runs that finished."""

    study_dir: Path
    info: dict[str, Any]
    records: list[RunRecord]

    @property
    def case_labels(self) -> list[str]:
        return [c["label"] for c in self.info.get("cases", [])]


@dataclass(frozen=True)
class CaseSummary:
    """One row of the ranked table: a case's statistics over its seeds.

    `final_*` and `best_*` are the mean and sample standard deviation (NaN for
    one seed) of the metric's last-epoch and best-epoch values; `best_epoch_mean`
    is the mean 1-based epoch of the best value. `p_value` is Welch's test of the
    compared values against the best case's. `significant` is True when the case
    is significantly worse than the best (p < 0.05), False when it cannot be told
    apart ("n.s."), None for the best case itself and for a case that diverged in
    any seed (not tested: a blown-up run is not "indistinguishable").
    """

    case: str
    rank: int
    n: int
    final_mean: float
    final_std: float
    best_mean: float
    best_std: float
    best_epoch_mean: float
    seconds_mean: float
    diverged: int
    p_value: float | None
    significant: bool | None
    final_values: list[float]
    best_values: list[float]

    @property
    def is_best(self) -> bool:
        return self.rank == 1

    @property
    def note(self) -> str:
        """"best", "n.s." (not distinguishable from the best), "" (significantly worse), plus divergence."""
        notes = []
        if self.is_best:
            notes.append("best")
        elif self.significant is False:
            notes.append("n.s.")
        if self.diverged:
            notes.append(f"diverged {self.diverged}/{self.n}")
        return ", ".join(notes)


@dataclass(frozen=True)
class Comparison:
    """The ranked cases of a study for one metric."""

    metric: str
    mode: str
    rank_by: str
    cases: list[CaseSummary]
    missing: list[str]

    @property
    def best(self) -> CaseSummary:
        return self.cases[0]

    def caption(self) -> str:
        better = "higher" if self.mode == "max" else "lower"
        seeds = sorted({c.n for c in self.cases})
        n = "/".join(map(str, seeds))
        return (f"final/best: the {self.metric} of the last/best epoch ({better} is better), mean ± std "
                f"over n={n} seeds; epoch: mean epoch of the best value; p: vs the best case; ranked by the "
                f"{self.rank_by} value. n.s. = not significantly different from the best case ({TEST_NAME} "
                f"on the {self.rank_by} values, p >= {ALPHA}, or fewer than 2 seeds).")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output; non-finite numbers become None (JSON has no NaN)."""
        out: dict[str, Any] = json_safe({
            "metric": self.metric, "mode": self.mode, "rank_by": self.rank_by, "test": TEST_NAME,
            "alpha": ALPHA, "missing_runs": self.missing,
            "cases": [{**asdict(c), "note": c.note} for c in self.cases],
        })
        return out

    def table(self) -> Any:
        """The ranked table as a rich Table (printed by `trainlab study` and `trainlab report`)."""
        from rich.table import Table

        table = Table(title=f"{len(self.cases)} cases ranked by {self.rank_by} {self.metric}",
                      caption=self.caption(), caption_justify="left")
        table.add_column("#", justify="right")
        table.add_column("case", overflow="fold", min_width=10)
        for column in ("final", "best", "epoch", "time s", "p"):
            table.add_column(column, justify="right", overflow="fold")
        table.add_column("note", overflow="fold")
        for c in self.cases:
            table.add_row(*row_cells(c), style="bold green" if c.is_best else None)
        return table


def mean_std(mean: float, std: float) -> str:
    """'0.9712 ± 0.0031'; the std is left out when there is none (one seed)."""
    if not math.isfinite(mean):
        return str(mean)
    return f"{mean:.3g}" + ("" if math.isnan(std) else f" ± {std:.2g}")


def row_cells(case: CaseSummary) -> list[str]:
    """The cells of a case's row: rank, case, final, best, best epoch, time, p, note."""
    return [str(case.rank), case.case, mean_std(case.final_mean, case.final_std),
            mean_std(case.best_mean, case.best_std),
            "" if math.isnan(case.best_epoch_mean) else f"{case.best_epoch_mean:.3g}",
            f"{case.seconds_mean:.2f}", "" if case.p_value is None or case.is_best else f"{case.p_value:.2g}",
            case.note]


def compare(records: Sequence[RunRecord], *, metric: str | None = None, mode: str = "auto",
            rank_by: str = "final", case_order: Sequence[str] | None = None) -> Comparison:
    """Rank the cases of `records` by the mean over seeds of `metric`'s final or best value.

    Args:
        records: the finished runs (several seeds per case).
        metric: the history key to compare; None picks the first validation metric
            (val_accuracy, val_mae, ...), else val_loss, else loss.
        mode: "min", "max", or "auto" (from the metric's name, as EarlyStopping does).
        rank_by: "final" (last epoch) or "best" (best epoch).
        case_order: all planned case labels, so that cases without runs are reported missing.

    Raises:
        InputError: no records, or the metric is not in the runs' histories.
    """
    from trainlab.callbacks import _direction

    if not records:
        raise InputError("the study has no finished runs to compare yet; train them with `trainlab study`")
    if rank_by not in ("final", "best"):
        raise InputError(f"rank_by must be 'final' or 'best', got {rank_by!r}")
    metric = metric or default_metric(records[0].history)
    for record in records:
        if metric not in record.history:
            raise InputError(f"run '{record.run_id}' has no '{metric}' in its history (it has "
                             f"{', '.join(record.history)}); choose study.metric among those.")
    direction = _direction(metric, mode, "study.metric")
    by_case: dict[str, list[RunRecord]] = {}
    for record in records:
        by_case.setdefault(record.case, []).append(record)

    rows: list[tuple[str, list[RunRecord], list[float], list[float], list[float], int]] = []
    for case, runs in by_case.items():
        finals = [_last(r.history[metric]) for r in runs]
        pairs = [_best(r.history[metric], direction) for r in runs]
        bests, epochs = [b for b, _ in pairs], [e for _, e in pairs]
        diverged = sum(1 for r, f in zip(runs, finals, strict=True)
                       if not math.isfinite(f) or (r.stop_reason or "").startswith("training diverged"))
        rows.append((case, runs, finals, bests, epochs, diverged))

    def key(row: tuple[Any, ...]) -> tuple[bool, float]:
        values = row[2] if rank_by == "final" else row[3]
        mean = _mean(values)
        bad = not math.isfinite(mean)
        return bad, (mean if direction == "min" else -mean) if not bad else 0.0

    rows.sort(key=key)
    best_values = rows[0][2] if rank_by == "final" else rows[0][3]
    summaries = []
    for rank, (case, runs, finals, bests, epochs, diverged) in enumerate(rows, start=1):
        values = finals if rank_by == "final" else bests
        # A diverged case is not "indistinguishable from the best" however wide its spread: no test.
        test = None if rank == 1 or diverged or not _all_finite(values) or not _all_finite(best_values) \
            else welch_t_test(values, best_values)
        summaries.append(CaseSummary(
            case=case, rank=rank, n=len(runs), final_mean=_mean(finals), final_std=_std(finals),
            best_mean=_mean(bests), best_std=_std(bests),
            best_epoch_mean=_mean([float(e) for e in epochs]),
            seconds_mean=_mean([r.seconds for r in runs]), diverged=diverged,
            p_value=None if test is None else test.p,
            significant=None if rank == 1 or diverged else (test is not None and test.p < ALPHA),
            final_values=finals, best_values=bests,
        ))
    missing = [c for c in (case_order or []) if c not in by_case]
    return Comparison(metric=metric, mode=direction, rank_by=rank_by, cases=summaries, missing=missing)


def default_metric(history: dict[str, list[float]]) -> str:
    """The first validation metric of a history, else val_loss, else loss."""
    for key in history:
        if key.startswith("val_") and key != "val_loss":
            return key
    return "val_loss" if "val_loss" in history else "loss"


def load_results(study_dir: str | Path) -> StudyRecords:
    """Read a study folder: study.json and every planned run whose folder holds a result.json.

    Raises:
        InputError: the folder holds no study.json.
    """
    directory = Path(study_dir)
    info_file = directory / "study.json"
    if not info_file.is_file():
        raise InputError(f"'{directory}' is not a study folder: it holds no study.json. A study folder is "
                         "runs/<study-name>/, written by `trainlab study SPEC.toml`.")
    from trainlab.runs import read_json, run_folder

    info = read_json(info_file, "study.json")
    records = []
    try:
        for run in info.get("runs", []):
            run_dir = run_folder(directory.parent, directory.name, run["run_id"])
            result = read_result(run_dir)
            if result is None or result.get("spec_hash") != run["spec_hash"]:
                continue
            records.append(RunRecord(run_id=run["run_id"], case=run["case"], seed=int(run["seed"]),
                                     history=read_history(run_dir / "history.jsonl"),
                                     seconds=float(result.get("seconds", math.nan)),
                                     stop_reason=result.get("stop_reason"),
                                     steps_per_epoch=result.get("steps_per_epoch")))
    except (KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{info_file} or a run folder it lists was damaged or written by another program "
                         f"({type(error).__name__}: {error}). Run the study again with --resume to rewrite "
                         "it.") from None
    return StudyRecords(study_dir=directory, info=info, records=records)


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's result.json, or None when the run is not complete."""
    file = run_dir / "result.json"
    if not file.is_file():
        return None
    try:
        result = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return result if isinstance(result, dict) else None


def read_history(file: Path) -> dict[str, list[float]]:
    """history.jsonl (one JSON object per epoch) as lists per key, as `History.history`."""
    history: dict[str, list[float]] = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            for key, value in json.loads(line).items():
                if key != "epoch":
                    history.setdefault(key, []).append(float("nan") if value is None else value)
    return history


def _last(values: Sequence[float]) -> float:
    return float(values[-1]) if values else math.nan


def _best(values: Sequence[float], direction: str) -> tuple[float, float]:
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    value = (min if direction == "min" else max)(v for v, _ in finite)
    # Ties go to the earliest epoch, as EarlyStopping counts improvements.
    epoch = min(i for v, i in finite if v == value)
    return value, float(epoch + 1)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return math.nan
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _all_finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)
