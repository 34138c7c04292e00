"""Compare a study's cases: per case a mean with its confidence interval, each against the best.

Per case, over its seeds: the mean and sample standard deviation (n - 1 in
the denominator) of the metric's final value (last epoch) and best value
(best epoch), the mean 1-based epoch of the best value, and the training time.
The compared value is `rank_by` ("final" or "best").

The statistics, as `scipy.stats` computes them:

- **Per case**: the mean with a 95% Student t-interval over seeds
  (``scipy.stats.t.interval``; no interval for one seed).
- **Against the best**: the difference of means (case - best) with its 95%
  Welch interval, and Welch's two-sided t-test (``scipy.stats.ttest_ind(...,
  equal_var=False)``; the seeds of two cases are independent samples). Where
  the values of the two cases differ by orders of magnitude (a loss that blew
  up), a t-test on the raw values is meaningless, so the rank-based
  Mann-Whitney U test (``scipy.stats.mannwhitneyu``) is used instead.
- **Multiple comparisons**: the p-values of the k cases compared with the best
  are adjusted by Holm's step-down method, so the chance of any false "worse"
  over the whole table stays below 5%.

The verdict of a case against the best:

- ``diverged k/n``: k of its n runs diverged (a non-finite value or a
  "training diverged" stop); such a case ranks last and is not tested.
- ``far worse``: every seed is at least 10x worse than every seed of the best
  (a loss of 1e4 against 0.04). With 3 seeds no test reaches p < 0.05 on that,
  yet it is not a tie.
- ``worse``: Holm-adjusted p < 0.05.
- ``tied``: the 95% interval of the difference lies within the equivalence
  margin (1 point for a score in [0, 1] such as accuracy, else 5% of the best
  mean): the seeds resolve the difference, and it is small.
- ``inconclusive``: neither; the message names n and suggests more seeds.

Example:
    >>> result = welch_t_test([1.0, 2.0, 3.0], [3.0, 4.0, 5.0])
    >>> round(result.t, 4), result.df, round(result.p, 4)
    (-2.4495, 4.0, 0.0705)
    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainlab.errors import InputError
from trainlab.index import json_safe

__all__ = ["ALPHA", "CONFIDENCE", "FAR_WORSE_RATIO", "CaseSummary", "Comparison", "RunRecord", "StudyRecords",
           "TEST_NAME", "Welch", "compare", "holm", "load_results", "short_labels", "welch_t_test"]

ALPHA = 0.05
CONFIDENCE = 0.95
FAR_WORSE_RATIO = 10.0
TEST_NAME = "Welch's t-test against the best case (Mann-Whitney U where a case's seeds span " \
    "orders of magnitude), Holm-adjusted"
INTERVAL_NAME = "95% Student t-interval over seeds"


@dataclass(frozen=True)
class Welch:
    """Welch's t statistic, its Welch-Satterthwaite degrees of freedom, the two-sided p-value, and
    the 95% interval [low, high] of mean(a) - mean(b)."""

    t: float
    df: float
    p: float
    low: float = math.nan
    high: float = math.nan


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> Welch | None:
    """Welch's unequal-variance t-test of mean(a) == mean(b); None when either has fewer than 2 values.

    Computed by ``scipy.stats.ttest_ind(a, b, equal_var=False)``, with its 95%
    interval of the difference. With no spread in either sample (identical
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
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    if _std(a) == 0.0 and _std(b) == 0.0:
        same = ma == mb
        return Welch(t=0.0 if same else math.copysign(math.inf, ma - mb), df=float(len(a) + len(b) - 2),
                     p=1.0 if same else 0.0, low=ma - mb, high=ma - mb)
    with warnings.catch_warnings():  # nearly equal seeds: scipy warns of precision, the result stands
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(list(a), list(b), equal_var=False)
    interval = result.confidence_interval(CONFIDENCE)
    return Welch(t=float(result.statistic), df=float(result.df), p=min(float(result.pvalue), 1.0),
                 low=float(interval.low), high=float(interval.high))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of `p_values` (family-wise error), in their order.

    The i-th smallest of m p-values is multiplied by (m - i + 1), made monotone
    and capped at 1: reject where the adjusted p < alpha.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class RunRecord:
    """What the comparison needs of one finished run.

    `seconds_shared_by` > 1: `seconds` is the wall time of that many runs trained together (stacked),
    split evenly, not a measurement of this run alone.
    """

    run_id: str
    case: str
    seed: int
    history: dict[str, list[float]]
    seconds: float
    stop_reason: str | None = None
    steps_per_epoch: int | None = None
    seconds_shared_by: int = 1


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
    is the mean 1-based epoch of the best value. `mean`, `low`, `high`: the
    compared value's mean and its 95% t-interval. `diff`, `diff_low`,
    `diff_high`: this case minus the best, with the 95% Welch interval.
    `p_value` is the test against the best (`test` names it), `p_holm` its
    Holm-adjusted value. `verdict` is one of "best", "tied", "worse", "far
    worse", "inconclusive", "diverged" (see the module docstring);
    `significant` is True for "worse" and "far worse", False otherwise, None
    for the best and for diverged cases.
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
    mean: float = math.nan
    low: float = math.nan
    high: float = math.nan
    diff: float = math.nan
    diff_low: float = math.nan
    diff_high: float = math.nan
    p_holm: float | None = None
    test: str | None = None
    verdict: str = ""
    seconds_shared_by: int = 1
    run_ids: tuple[str, ...] = ()

    @property
    def is_best(self) -> bool:
        return self.rank == 1

    @property
    def values(self) -> list[float]:
        """The compared per-seed values (final or best, as the comparison ranks)."""
        return self.final_values if self.verdict_basis == "final" else self.best_values

    verdict_basis: str = "final"

    @property
    def note(self) -> str:
        """The verdict as the table prints it: "best", "tied", "worse", "far worse", "inconclusive",
        "diverged 2/3"."""
        if self.verdict == "diverged":
            return f"diverged {self.diverged}/{self.n}"
        return self.verdict


@dataclass(frozen=True)
class Comparison:
    """The ranked cases of a study for one metric."""

    metric: str
    mode: str
    rank_by: str
    cases: list[CaseSummary]
    missing: list[str]
    margin: float = math.nan
    points: bool = False

    @property
    def best(self) -> CaseSummary:
        return self.cases[0]

    @property
    def seeds(self) -> str:
        return "/".join(str(n) for n in sorted({c.n for c in self.cases}))

    def suggested_seeds(self) -> int:
        """How many seeds to try when some cases are inconclusive: 10, or twice as many as now."""
        n = max(c.n for c in self.cases)
        return 10 if n < 10 else 2 * n

    def difference(self, value: float) -> str:
        """A difference in the table's unit: points (x100) for a score in [0, 1], else the metric's."""
        if not math.isfinite(value):
            return str(value)
        shown = _num(100 * value if self.points else value, 2)
        return shown if shown.startswith("-") else "+" + shown

    def caption(self) -> str:
        better = "higher" if self.mode == "max" else "lower"
        unit = "points (x100)" if self.points else f"{self.metric} units"
        shared = any(c.seconds_shared_by > 1 for c in self.cases)
        return (f"{self.rank_by} {self.metric} ({better} is better), mean ± the half-width of its "
                f"{INTERVAL_NAME} (n = {self.seeds}). Δ: case - best in {unit}, ± its 95% Welch "
                f"interval. p: {TEST_NAME} over {max(len(self.cases) - 1, 0)} comparisons. tied: Δ's "
                f"interval within ±{self._margin_text()}; inconclusive: these seeds cannot tell; far "
                f"worse: every seed ≥{FAR_WORSE_RATIO:g}x worse than the best's."
                + (" time s*: the wall time of runs trained stacked together, split evenly." if shared
                   else ""))

    def _margin_text(self) -> str:
        return f"{100 * self.margin:.2g} point" if self.points else f"{self.margin:.2g}"

    def verdict(self) -> str:
        """The paragraph a reader needs first: the best case, what ties with it, what is worse, what
        cannot be told with these seeds, and what diverged."""
        best = self.best
        names = dict(zip((c.case for c in self.cases), spoken_labels([c.case for c in self.cases])))
        if best.verdict == "diverged" or not math.isfinite(best.mean):
            return (f"Every case diverged in some seed: no {self.metric} to compare ("
                    + "; ".join(f"{names[c.case]} {c.note}" for c in self.cases) + ").")
        if math.isnan(best.low):
            spread = f"(n = {best.n}: no interval)"
        elif best.low == best.high:
            spread = f"(all {best.n} seeds equal)"
        else:
            low, high = (max(best.low, 0.0), min(best.high, 1.0)) if self.points else (best.low, best.high)
            spread = f"[{_num(low)}, {_num(high)}] (mean and 95% t-interval, n = {best.n})"
        parts = [f"Best: {names[best.case]}, {self.rank_by} {self.metric} {_num(best.mean)} {spread}."]
        tied = [names[c.case] for c in self.cases if c.verdict == "tied"]
        if tied:
            parts.append(f"{_count(len(tied), 'case')} {'is' if len(tied) == 1 else 'are'} within "
                         f"{self._margin_text()} of it: {', '.join(tied)}.")
        worse = [c for c in self.cases if c.verdict == "worse"]
        if worse:
            unit = " points" if self.points else ""
            parts.append("Worse (Holm-adjusted p): " + "; ".join(
                f"{names[c.case]} by {abs(100 * c.diff if self.points else c.diff):.2g}{unit} "
                f"(p {_p_text(c.p_holm or 0.0, equals=True)})" for c in worse) + ".")
        far = [c for c in self.cases if c.verdict == "far worse"]
        if far:
            parts.append(f"Far worse in every seed (≥{FAR_WORSE_RATIO:g}x off the best's {self.metric}): "
                         + "; ".join(f"{names[c.case]} {_ratio(c.mean, best.mean, self.mode)}" for c in far)
                         + ".")
        unsure = [names[c.case] for c in self.cases if c.verdict == "inconclusive"]
        if unsure:
            parts.append(f"Inconclusive with n = {self.seeds} (try --seeds {self.suggested_seeds()}): "
                         f"{', '.join(unsure)}.")
        diverged = [c for c in self.cases if c.verdict == "diverged"]
        if diverged:
            parts.append("Diverged: " + "; ".join(f"{names[c.case]} in {c.diverged} of {c.n} seeds"
                                                  for c in diverged) + ".")
        if self.missing:
            parts.append(f"Not trained yet: {', '.join(self.missing)}.")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output; non-finite numbers become None (JSON has no NaN)."""
        out: dict[str, Any] = json_safe({
            "metric": self.metric, "mode": self.mode, "rank_by": self.rank_by, "test": TEST_NAME,
            "interval": INTERVAL_NAME, "alpha": ALPHA, "equivalence_margin": self.margin,
            "missing_runs": self.missing, "verdict": self.verdict(),
            "cases": [{**asdict(c), "note": c.note} for c in self.cases],
        })
        return out

    def table(self, width: int | None = None) -> Any:
        """The ranked table as a rich Table (printed by `trainlab study` and `trainlab report`).

        It fits 80 columns: case labels are shortened to the values that differ (the header names the
        axes), and every cell is a Text, so a case name is never read as markup.
        """
        from rich import box
        from rich.table import Table
        from rich.text import Text

        labels, header = short_labels([c.case for c in self.cases])
        table = Table(title=Text(f"{len(self.cases)} cases ranked by {self.rank_by} {self.metric}"),
                      caption=Text(self.caption()), caption_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False, collapse_padding=True, width=width)
        table.add_column(Text(header), overflow="fold", ratio=1, min_width=8)
        table.add_column(Text("mean ± 95% CI"), justify="right", no_wrap=True)
        table.add_column(Text("Δ pts" if self.points else "Δ vs best"), justify="right", no_wrap=True)
        table.add_column("p Holm", justify="right", no_wrap=True)
        table.add_column("time s", justify="right", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        for c, label in zip(self.cases, labels, strict=True):
            table.add_row(*(Text(cell) for cell in self.cells(c, label)[1:]),
                          style="bold green" if c.is_best else ("red" if c.verdict in ("diverged", "far worse")
                                                                 else None))
        return table

    def cells(self, case: CaseSummary, label: str | None = None) -> list[str]:
        """A row's cells: rank, case, mean ± CI, Δ ± CI, Holm p, time, verdict."""
        half = (case.high - case.low) / 2 if math.isfinite(case.low) else math.nan
        mean = _num(case.mean) + ("" if math.isnan(half) else f" ± {_num(half, 2)}")
        if case.is_best or math.isnan(case.diff) or case.verdict == "diverged":
            diff = ""
        else:
            diff_half = (case.diff_high - case.diff_low) / 2
            diff = self.difference(case.diff) + ("" if math.isnan(diff_half) else
                                                 " ± " + self.difference(diff_half).lstrip("+"))
        p = "" if case.p_holm is None else _p_text(case.p_holm)
        seconds = _num(case.seconds_mean, 2) + ("*" if case.seconds_shared_by > 1 else "")
        return [str(case.rank), case.case if label is None else label, mean, diff, p, seconds, case.note]


def short_labels(labels: Sequence[str]) -> tuple[list[str], str]:
    """Case labels without what every label repeats, and the column header that names it.

    Grid labels "optimizer=adam, lr=0.1" become "adam, 0.1" under the header
    "optimizer, lr"; other labels stay as they are, under "case".

    Example:
        >>> short_labels(["optimizer=sgd, lr=0.1", "optimizer=adam, lr=1"])
        (['sgd, 0.1', 'adam, 1'], 'optimizer, lr')
        >>> short_labels(["he+relu", "xavier+tanh"])
        (['he+relu', 'xavier+tanh'], 'case')
    """
    split = [[part.partition("=") for part in label.split(", ")] for label in labels]
    keys = [tuple(k for k, eq, _ in parts) for parts in split]
    if not labels or any(not eq for parts in split for _, eq, _ in parts) or len(set(keys)) != 1:
        return list(labels), "case"
    short = [", ".join(v for _, _, v in parts) for parts in split]
    if len(set(short)) != len(short):
        return list(labels), "case"
    return short, ", ".join(keys[0])


def spoken_labels(labels: Sequence[str]) -> list[str]:
    """Grid labels for a sentence: "optimizer=adam, lr=10" -> "adam (lr=10)"; "optimizer=sgd" -> "sgd".

    Example:
        >>> spoken_labels(["optimizer=adam, lr=10", "optimizer=sgd, lr=0.1"])
        ['adam (lr=10)', 'sgd (lr=0.1)']
        >>> spoken_labels(["lr=0.1", "lr=1"])
        ['lr=0.1', 'lr=1']
    """
    short, header = short_labels(labels)
    if header == "case":
        return list(labels)
    spoken = []
    for label in labels:
        first, *rest = label.split(", ")
        value = first.partition("=")[2]
        if _is_number(value):  # "lr=0.1" says more than "0.1"
            spoken.append(label)
            continue
        spoken.append(value + (f" ({', '.join(rest)})" if rest else ""))
    return spoken if len(set(spoken)) == len(spoken) else short


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _ratio(value: float, best: float, mode: str) -> str:
    if value == 0 or best == 0:
        return ""
    factor = value / best if mode == "min" else best / value
    return f"{_num(factor, 2)}x" if mode == "min" else f"1/{_num(factor, 2)}"


def _p_text(p: float, *, equals: bool = False) -> str:
    if p < 0.001:
        return "< 0.001" if equals else "<0.001"
    return f"= {p:.2g}" if equals else f"{p:.2g}"


def _num(x: float, digits: int = 3) -> str:
    """A short number: 3 significant digits, exponents without padding (1.2e4, 3e-5)."""
    if not math.isfinite(x):
        return str(x)
    text = f"{x:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def mean_std(mean: float, std: float) -> str:
    """'0.9712 ± 0.0031'; the std is left out when there is none (one seed)."""
    if not math.isfinite(mean):
        return str(mean)
    return f"{mean:.3g}" + ("" if math.isnan(std) else f" ± {std:.2g}")


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
        bad = not math.isfinite(mean) or row[5] > 0
        return bad, (mean if direction == "min" else -mean) if math.isfinite(mean) else 0.0

    rows.sort(key=key)
    best_values = rows[0][2] if rank_by == "final" else rows[0][3]
    every = [v for row in rows for v in (row[2] if rank_by == "final" else row[3]) if math.isfinite(v)]
    points = direction == "max" and bool(every) and all(0.0 <= v <= 1.0 for v in every)
    best_mean = _mean(best_values)
    margin = 0.01 if points else 0.05 * abs(best_mean) if math.isfinite(best_mean) else math.nan

    tests: list[tuple[str | None, float | None, Welch | None]] = []
    for rank, (_, _, finals, bests, _, diverged) in enumerate(rows, start=1):
        values = finals if rank_by == "final" else bests
        if rank == 1 or diverged or not _all_finite(values) or not _all_finite(best_values):
            tests.append((None, None, None))
            continue
        welch = welch_t_test(values, best_values)
        if welch is not None and _orders_apart(values, best_values):
            tests.append(("mann-whitney", _mann_whitney(values, best_values), welch))
        elif welch is not None:
            tests.append(("welch", welch.p, welch))
        else:
            tests.append((None, None, None))
    tested = [i for i, (_, p, _) in enumerate(tests) if p is not None]
    adjusted = dict(zip(tested, holm([tests[i][1] for i in tested])))  # type: ignore[misc]

    summaries = []
    for index, (case, runs, finals, bests, epochs, diverged) in enumerate(rows):
        rank = index + 1
        values = finals if rank_by == "final" else bests
        test_name, p, welch = tests[index]
        p_holm = adjusted.get(index)
        low, high = t_interval(values)
        mean = _mean(values)
        diff = mean - best_mean if rank > 1 else 0.0
        diff_low, diff_high = (welch.low, welch.high) if welch is not None else (math.nan, math.nan)
        if rank == 1 and not diverged:
            verdict = "best"
        elif diverged or not math.isfinite(mean):
            verdict = "diverged"
        elif _far_worse(values, best_values, direction):
            verdict = "far worse"
        elif p_holm is not None and p_holm < ALPHA:
            verdict = "worse"
        elif math.isfinite(diff_low) and -margin <= diff_low and diff_high <= margin:
            verdict = "tied"
        else:
            verdict = "inconclusive"
        summaries.append(CaseSummary(
            case=case, rank=rank, n=len(runs), final_mean=_mean(finals), final_std=_std(finals),
            best_mean=_mean(bests), best_std=_std(bests),
            best_epoch_mean=_mean([float(e) for e in epochs]),
            seconds_mean=_mean([r.seconds for r in runs]), diverged=diverged,
            p_value=p, significant=None if verdict in ("best", "diverged") else verdict in ("worse", "far worse"),
            final_values=finals, best_values=bests, mean=mean, low=low, high=high,
            diff=diff if rank > 1 else math.nan, diff_low=diff_low, diff_high=diff_high, p_holm=p_holm,
            test=test_name, verdict=verdict, verdict_basis=rank_by,
            seconds_shared_by=max(r.seconds_shared_by for r in runs),
            run_ids=tuple(r.run_id for r in sorted(runs, key=lambda r: r.seed)),
        ))
    missing = [c for c in (case_order or []) if c not in by_case]
    return Comparison(metric=metric, mode=direction, rank_by=rank_by, cases=summaries, missing=missing,
                      margin=margin, points=points)


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95% Student t-interval of the mean of `values`; NaNs for fewer than 2 or non-finite values.

    Example:
        >>> low, high = t_interval([1.0, 2.0, 3.0])   # 2 ± t(0.975, 2) * 1 / sqrt(3)
        >>> round(low, 4), round(high, 4)
        (-0.4841, 4.4841)
    """
    from scipy import stats

    if len(values) < 2 or not _all_finite(values):
        return math.nan, math.nan
    mean, std = _mean(values), _std(values)
    if std == 0.0:
        return mean, mean
    low, high = stats.t.interval(CONFIDENCE, len(values) - 1, loc=mean, scale=std / math.sqrt(len(values)))
    return float(low), float(high)


def _orders_apart(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when one case's own seeds span more than FAR_WORSE_RATIO (a run that blew up beside runs
    that did not): values on a log scale, where a t-test's mean and variance say little."""
    return any(min(v) > 0 and max(v) / min(v) > FAR_WORSE_RATIO for v in (a, b))


def _mann_whitney(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy import stats

    return float(stats.mannwhitneyu(list(a), list(b), alternative="two-sided").pvalue)


def _far_worse(values: Sequence[float], best: Sequence[float], direction: str) -> bool:
    """Every seed at least FAR_WORSE_RATIO times worse than every seed of the best (positive values)."""
    if not values or not best or min(*values, *best) <= 0:
        return False
    if direction == "min":
        return min(values) >= FAR_WORSE_RATIO * max(best)
    return max(values) * FAR_WORSE_RATIO <= min(best)


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
                                     steps_per_epoch=result.get("steps_per_epoch"),
                                     seconds_shared_by=int(result.get("seconds_shared_by") or 1)))
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
