"""Verdicts of the gallery: does a claim hold on this data, by how much, and how sure are we?

An entry measures a few numbers per case and seed (a *result table*: a name
-> one value per seed) and states what the claim predicts about them as
findings: "cosine ends with a higher validation accuracy than constant". Each
finding is tested with the study statistics of `trainlab.study.compare`:

- the effect is the difference of the means in the direction the claim
  predicts (positive: as claimed), with its 95% Welch interval and Welch's
  two-sided t-test (``scipy.stats.ttest_ind(equal_var=False)``);
- where a case's seeds span orders of magnitude, or some diverged (a
  non-finite value), the rank-based Mann-Whitney U test is used instead, and
  the effect is the difference of the medians;
- the p-values of an entry's findings are adjusted together by Holm's method.

The word of a finding:

- ``holds``: Holm-adjusted p < 0.05 and the effect has the claimed sign;
- ``does not hold here``: Holm-adjusted p < 0.05 against the claimed sign, or
  the whole 95% interval of the effect lies within the finding's margin (the
  seeds resolve it, and the effect is too small to matter);
- ``inconclusive``: neither: these seeds cannot tell.

An entry's verdict is ``holds`` when every finding about the claim holds,
``does not hold here`` when any does not hold (the sentence says which, and
when the literature says the claim holds), and ``inconclusive`` otherwise.
Findings marked `context` (a second condition tried for comparison) are
reported but do not decide the word.

Example:
    >>> table = {"cosine": [0.91, 0.92, 0.93], "constant": [0.85, 0.86, 0.84]}
    >>> finding = expect_better(table, "cosine", "constant", what="final val_accuracy", points=True)
    >>> verdict = combine([finding])
    >>> verdict.word, round(finding.effect * 100, 1)
    ('holds', 7.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from trainlab.errors import InputError
from trainlab.study.compare import ALPHA, FAR_WORSE_RATIO, holm, welch_t_test

__all__ = ["FAILS", "HOLDS", "INCONCLUSIVE", "WORDS", "Finding", "Table", "Verdict", "combine", "expect_better",
           "expect_larger_gain", "expect_less_spread", "per_seed"]

HOLDS = "holds"
FAILS = "does not hold here"
INCONCLUSIVE = "inconclusive"
WORDS = (HOLDS, FAILS, INCONCLUSIVE)

#: A result table: a name (usually a case, or "case:quantity") -> one value per seed.
Table = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Finding:
    """One testable prediction of a claim, with its measured effect and test.

    `effect` is mean(better) - mean(worse) in the direction the claim predicts
    (a positive effect supports the claim), in the table's unit (x100 when
    `points`); `low`, `high` its 95% Welch interval (NaN with a rank test).
    `p` is the two-sided p-value of `test`, `p_holm` after Holm's adjustment
    over the entry's findings. `word` is set by `combine`.
    """

    statement: str
    better: str
    worse: str
    what: str
    effect: float
    low: float
    high: float
    p: float | None
    n: tuple[int, int]
    test: str
    margin: float = 0.0
    points: bool = False
    unit: str = ""
    context: bool = False
    diverged: tuple[int, int] = (0, 0)
    higher: bool = True
    keys: tuple[str, ...] = ()
    kind: str = "mean"
    p_holm: float | None = None
    word: str = INCONCLUSIVE

    def effect_text(self) -> str:
        """'+7.0 ± 1.2 points' or '+0.031 ± 0.02' or '+0.8 (median difference)'."""
        scale = 100.0 if self.points else 1.0
        unit = " points" if self.points else (f" {self.unit}" if self.unit else "")
        if math.isinf(self.effect):
            loser = self.worse if self.effect > 0 else self.better
            k, n = self.diverged[1] if self.effect > 0 else self.diverged[0], self.n[1 if self.effect > 0 else 0]
            return f"{loser} diverged in {k} of {n} seeds"
        if not math.isfinite(self.effect):
            return "n/a"
        shown = f"{scale * self.effect:+.3g}"
        if math.isfinite(self.low) and math.isfinite(self.high):
            half = scale * (self.high - self.low) / 2
            return f"{shown} ± {half:.2g}{unit}"
        if self.kind == "spread":
            return f"{shown}{unit} (difference of the stds)"
        return f"{shown}{unit} (median difference)"

    def p_text(self) -> str:
        p = self.p_holm if self.p_holm is not None else self.p
        if p is None:
            return "p n/a"
        return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"

    def seeds_text(self) -> str:
        a, b = self.n
        return f"{a} seeds" if a == b else f"{a} and {b} seeds"

    def sentence(self) -> str:
        """'holds: cosine beat constant on final val_accuracy by +7 ± 1.2 points, p = 0.003 (Welch, 5 seeds)'."""
        extra = ""
        if any(self.diverged):
            extra = f"; diverged: {self.better} {self.diverged[0]}/{self.n[0]}, {self.worse} " \
                    f"{self.diverged[1]}/{self.n[1]}"
        return (f"{self.word}: {self.statement} — {self.what}, {self.better} vs {self.worse}: "
                f"{self.effect_text()}, {self.p_text()} ({self.test}, Holm-adjusted, {self.seeds_text()}{extra})")


@dataclass(frozen=True)
class Verdict:
    """An entry's verdict: its word, the findings behind it, the conditions and the literature."""

    word: str
    findings: tuple[Finding, ...]
    conditions: str = ""
    literature: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def headline(self) -> Finding | None:
        """The finding that decides the word: the first that does not hold, else the first."""
        deciding = [f for f in self.findings if not f.context]
        for finding in deciding:
            if finding.word == self.word:
                return finding
        return deciding[0] if deciding else None

    def sentence(self) -> str:
        """The verdict sentence: the word, the headline finding, the conditions, and the literature."""
        head = self.headline
        counts = [f for f in self.findings if not f.context]
        held = sum(f.word == HOLDS for f in counts)
        parts = [f"{self.word}" + (f" ({held} of {len(counts)} parts hold)" if len(counts) > 1 else "")]
        if head is not None:
            parts.append(f"{head.statement}: {head.better} vs {head.worse}, {head.effect_text()}, "
                         f"{head.p_text()} over {head.seeds_text()} ({head.test}, Holm-adjusted)")
        text = "; ".join(parts) + "."
        if self.conditions:
            text += f" Conditions: {self.conditions}."
        if self.word != HOLDS and self.literature:
            text += f" The literature reports it holds when {self.literature}."
        return text

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        from trainlab.index import json_safe

        out: dict[str, Any] = json_safe({"word": self.word, "sentence": self.sentence(),
                                         "conditions": self.conditions, "literature": self.literature,
                                         "notes": list(self.notes),
                                         "findings": [{**asdict(f), "sentence": f.sentence()}
                                                      for f in self.findings]})
        return out


def per_seed(table: Table, name: str) -> list[float]:
    """The values of `name` in `table`, as floats; a missing name is an error naming the known ones."""
    if name not in table:
        raise InputError(f"the result table has no '{name}' (it has {', '.join(table)}); the entry's "
                         "measurements and its verdict disagree on the case names")
    return [float(v) for v in table[name]]


def expect_better(table: Table, better: str, worse: str, *, what: str, higher: bool = True,
                  statement: str | None = None, margin: float | None = None, points: bool = False, unit: str = "",
                  context: bool = False) -> Finding:
    """The claim predicts `better`'s values beat `worse`'s (higher, or lower with ``higher=False``).

    Args:
        table: the result table (name -> values per seed).
        better, worse: the names the claim orders.
        what: the measured quantity, for the sentence ("final val_accuracy").
        higher: True when a higher value is better.
        statement: the prediction in words (default: "<better> beats <worse>").
        margin: an effect whose whole 95% interval lies within ±margin counts as no effect
            ("does not hold here"); 0 disables it. Default: the study's equivalence margin
            (`trainlab.study.compare`): 1 point for a score shown in points, else 5% of |mean(worse)|.
        points: the values are fractions shown as points (x100).
        unit: the unit shown after the effect.
        context: a second condition, reported without deciding the verdict.
    """
    a, b = per_seed(table, better), per_seed(table, worse)
    if margin is None:
        finite = [v for v in b if math.isfinite(v)]
        margin = 0.01 if points else (0.05 * abs(_mean(finite)) if finite else 0.0)
    sign = 1.0 if higher else -1.0
    finite_a = [v for v in a if math.isfinite(v)]
    finite_b = [v for v in b if math.isfinite(v)]
    diverged = (len(a) - len(finite_a), len(b) - len(finite_b))
    low = high = math.nan
    p: float | None
    if any(diverged) or _orders_apart(finite_a, finite_b):
        # A diverged run is worse than any finite one: rank it last, in the direction of "worse".
        bad = -math.inf if higher else math.inf
        ranked_a = [v if math.isfinite(v) else bad for v in a]
        ranked_b = [v if math.isfinite(v) else bad for v in b]
        p = _mann_whitney(ranked_a, ranked_b)
        effect = sign * (_median(ranked_a) - _median(ranked_b))
        test = "Mann-Whitney U"
        if not math.isfinite(effect):
            effect = math.copysign(math.inf, effect) if not math.isnan(effect) else math.nan
    else:
        welch = welch_t_test(a, b)
        effect = sign * (_mean(a) - _mean(b))
        if welch is None:
            p, test = None, "no test (fewer than 2 seeds)"
        else:
            p, test = welch.p, "Welch's t-test"
            low, high = sorted((sign * welch.low, sign * welch.high))
    return Finding(statement=statement or f"{better} beats {worse}", better=better, worse=worse, what=what,
                   effect=effect, low=low, high=high, p=p, n=(len(a), len(b)), test=test, margin=margin,
                   points=points, unit=unit, context=context, diverged=diverged, higher=higher,
                   keys=(better, worse))


def expect_larger_gain(table: Table, first: tuple[str, str], second: tuple[str, str], *, what: str,
                       higher: bool = True, statement: str, margin: float | None = None, points: bool = False,
                       unit: str = "", context: bool = False) -> Finding:
    """The claim predicts the gain of ``first[0]`` over ``first[1]`` exceeds that of ``second[0]`` over
    ``second[1]`` (a difference of differences: "batch norm helps deep stacks more than shallow ones").

    The four groups are independent samples: the effect's standard error adds their variances over
    their sizes, with Welch-Satterthwaite degrees of freedom, and a two-sided t-test.
    """
    from scipy import stats

    groups = [per_seed(table, name) for name in (*first, *second)]
    if margin is None:
        margin = 0.01 if points else 0.0
    sign = 1.0 if higher else -1.0
    better = f"{first[0]} - {first[1]}"
    worse = f"{second[0]} - {second[1]}"
    sizes = (min(len(groups[0]), len(groups[1])), min(len(groups[2]), len(groups[3])))
    if any(len(g) < 2 or not all(math.isfinite(v) for v in g) for g in groups):
        means = [_mean([v for v in g if math.isfinite(v)]) for g in groups]
        effect = sign * ((means[0] - means[1]) - (means[2] - means[3]))
        return Finding(statement=statement, better=better, worse=worse, what=what, effect=effect,
                       low=math.nan, high=math.nan, p=None, n=sizes, test="no test (a diverged run or "
                       "fewer than 2 seeds)", margin=margin, points=points, unit=unit, context=context,
                       higher=higher, keys=(*first, *second), kind="gain")
    means = [_mean(g) for g in groups]
    terms = [_variance(g) / len(g) for g in groups]
    effect = sign * ((means[0] - means[1]) - (means[2] - means[3]))
    se = math.sqrt(sum(terms))
    if se == 0.0:
        p = 1.0 if effect == 0 else 0.0
        low = high = effect
    else:
        df = se ** 4 / sum(t * t / (len(g) - 1) for t, g in zip(terms, groups) if t > 0)
        p = float(2 * stats.t.sf(abs(effect) / se, df))
        half = float(stats.t.ppf(0.975, df)) * se
        low, high = effect - half, effect + half
    return Finding(statement=statement, better=better, worse=worse, what=what, effect=effect, low=low,
                   high=high, p=p, n=sizes, test="Welch t-test on a difference of differences", margin=margin,
                   points=points, unit=unit, context=context, higher=higher, keys=(*first, *second),
                   kind="gain")


def expect_less_spread(table: Table, steadier: str, noisier: str, *, what: str, statement: str,
                       points: bool = False, unit: str = "", context: bool = False) -> Finding:
    """The claim predicts `steadier`'s values vary less from seed to seed than `noisier`'s.

    The test is the Brown-Forsythe test of equal spread (``scipy.stats.levene(center="median")``),
    robust to non-normal values; the effect is std(noisier) - std(steadier) (positive: as claimed),
    without an interval.
    """
    from scipy import stats

    a, b = per_seed(table, steadier), per_seed(table, noisier)
    effect = _std(b) - _std(a)
    p: float | None = None
    if len(a) >= 2 and len(b) >= 2 and all(math.isfinite(v) for v in (*a, *b)):
        if _std(a) == 0.0 and _std(b) == 0.0:
            p = 1.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                p = float(stats.levene(a, b, center="median").pvalue)
            p = p if math.isfinite(p) else 1.0
    return Finding(statement=statement, better=steadier, worse=noisier, what=f"{what} (std over seeds)",
                   effect=effect, low=math.nan, high=math.nan, p=p, n=(len(a), len(b)),
                   test="Brown-Forsythe test of equal spread", points=points, unit=unit, context=context,
                   keys=(steadier, noisier), kind="spread")


def combine(findings: Sequence[Finding], *, conditions: str = "", literature: str = "",
            notes: Sequence[str] = ()) -> Verdict:
    """Holm-adjust the findings' p-values together, give each its word, and decide the entry's word."""
    tested = [i for i, f in enumerate(findings) if f.p is not None]
    adjusted = dict(zip(tested, holm([findings[i].p for i in tested])))  # type: ignore[misc]
    worded = []
    for i, finding in enumerate(findings):
        p_holm = adjusted.get(i)
        worded.append(replace(finding, p_holm=p_holm, word=_word(finding, p_holm)))
    deciding = [f.word for f in worded if not f.context]
    if deciding and all(w == HOLDS for w in deciding):
        word = HOLDS
    elif FAILS in deciding:
        word = FAILS
    else:
        word = INCONCLUSIVE
    return Verdict(word=word, findings=tuple(worded), conditions=conditions, literature=literature,
                   notes=tuple(notes))


def _word(finding: Finding, p_holm: float | None) -> str:
    if p_holm is not None and p_holm < ALPHA and not math.isnan(finding.effect) and finding.effect != 0:
        return HOLDS if finding.effect > 0 else FAILS
    if finding.margin > 0 and math.isfinite(finding.low) and -finding.margin <= finding.low \
            and finding.high <= finding.margin:
        return FAILS
    return INCONCLUSIVE


def _orders_apart(a: Sequence[float], b: Sequence[float]) -> bool:
    return any(v and min(v) > 0 and max(v) / min(v) > FAR_WORSE_RATIO for v in (a, b))


def _mann_whitney(a: Sequence[float], b: Sequence[float]) -> float | None:
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.mannwhitneyu(list(a), list(b), alternative="two-sided").pvalue)
    return p if math.isfinite(p) else 1.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _std(values: Sequence[float]) -> float:
    return math.sqrt(_variance(values)) if len(values) > 1 else math.nan


def _variance(values: Sequence[float]) -> float:
    m = _mean(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    low, high = ordered[middle - 1], ordered[middle]
    if math.isinf(low) and math.isinf(high) and low != high:
        return math.nan
    return (low + high) / 2
