"""The statistics of the study table, against hand-computed values and an independent t-distribution.

Welch's test is checked against a closed form (4 degrees of freedom) and against
a numerical integration of Student's t density (no scipy); the table's means,
standard deviations, intervals, Holm adjustment, best epochs, ranking and
verdicts against values worked out by hand (issue 10: intervals, effect sizes,
Holm, "inconclusive" instead of "n.s.", orders of magnitude never a tie).
"""

import math

import numpy as np
import pytest

from trainlab.errors import InputError
from trainlab.study.compare import RunRecord, compare, default_metric, holm, t_interval, welch_t_test


def t_two_sided_p(t, df):
    """2 * P(T_df > |t|) by Simpson's rule on the t density (an oracle independent of scipy)."""
    x = np.linspace(abs(t), 400.0, 400_001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_c - (df + 1) / 2 * np.log1p(x ** 2 / df))
    h = x[1] - x[0]
    tail = h / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum() + 2 * density[2:-1:2].sum())
    return 2 * tail


def test_welch_equal_sizes_and_variances_matches_the_closed_form_for_4_degrees_of_freedom():
    result = welch_t_test([1.0, 2.0, 3.0], [3.0, 4.0, 5.0])
    # means 2 and 4, variances 1 and 1: t = -2 / sqrt(1/3 + 1/3), df = 2 (n - 1) = 4.
    assert result.t == pytest.approx(-2 / math.sqrt(2 / 3), rel=1e-12)
    assert result.df == pytest.approx(4.0, rel=1e-12)
    # For 4 degrees of freedom, P(|T| > t) = 1 - (3/2)(x - x^3/3) with x = t / sqrt(t^2 + 4).
    x = abs(result.t) / math.sqrt(result.t ** 2 + 4)
    assert result.p == pytest.approx(1 - 1.5 * (x - x ** 3 / 3), rel=1e-9)
    assert result.p == pytest.approx(0.0705, abs=1e-4)


def test_welch_unequal_sizes_and_variances_matches_hand_values_and_the_integrated_density():
    result = welch_t_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0])
    # means 2 and 5.5; variances 1 and 5/3; s^2/n = 1/3 and 5/12, sum 3/4.
    assert result.t == pytest.approx(-3.5 / math.sqrt(0.75), rel=1e-12)
    assert result.df == pytest.approx(0.75 ** 2 / ((1 / 3) ** 2 / 2 + (5 / 12) ** 2 / 3), rel=1e-12)
    assert result.df == pytest.approx(243 / 49, rel=1e-12)
    assert result.p == pytest.approx(t_two_sided_p(result.t, result.df), rel=1e-6)
    assert 0.005 < result.p < 0.02
    assert welch_t_test([4.0, 5.0, 6.0, 7.0], [1.0, 2.0, 3.0]).p == pytest.approx(result.p, rel=1e-12)


def test_welch_needs_two_values_per_side_and_handles_no_spread():
    assert welch_t_test([1.0], [1.0, 2.0]) is None
    assert welch_t_test([0.9, 0.9], [0.9, 0.9]).p == 1.0  # identical deterministic runs
    assert welch_t_test([0.9, 0.9], [0.8, 0.8]).p == 0.0


def run(case, seed, values, key="val_accuracy", seconds=1.0, stop_reason=None):
    history = {"loss": [1.0] * len(values), key: values, "lr": [0.1] * len(values)}
    return RunRecord(run_id=f"{case}-s{seed}", case=case, seed=seed, history=history, seconds=seconds,
                     stop_reason=stop_reason)


RECORDS = [
    run("A", 0, [0.5, 0.8, 0.7], seconds=2.0), run("A", 1, [0.6, 0.9, 0.9], seconds=4.0),
    run("B", 0, [0.4, 0.5, 0.6]), run("B", 1, [0.5, 0.5, 0.5]),
    run("C", 0, [0.1, 0.1, 0.1], stop_reason="training diverged: the loss became nan"),
    run("C", 1, [0.1, 0.1, 0.1], stop_reason="training diverged: the loss became inf"),
]


def test_table_means_stds_best_epochs_and_times_match_hand_values():
    table = compare(RECORDS, metric="val_accuracy", case_order=["A", "B", "C", "D"])
    a, b, c = table.cases
    assert (a.case, a.rank, a.n) == ("A", 1, 2)
    # finals 0.7 and 0.9; bests 0.8 (epoch 2) and 0.9 (epochs 2 and 3: the earliest counts).
    assert a.final_mean == pytest.approx(0.8) and a.final_std == pytest.approx(math.sqrt(0.02))
    assert a.best_mean == pytest.approx(0.85) and a.best_std == pytest.approx(math.sqrt(0.005))
    assert a.best_epoch_mean == 2.0 and a.seconds_mean == 3.0
    # B: finals 0.6 and 0.5; bests 0.6 (epoch 3) and 0.5 (epoch 1).
    assert b.final_mean == pytest.approx(0.55) and b.best_epoch_mean == 2.0
    assert table.mode == "max" and table.missing == ["D"]
    # final 0.8 ± t(0.975, 1) * sqrt(0.02) / sqrt(2) = 0.8 ± 12.706 * 0.1
    assert table.cells(a) == ["1", "A", "0.8 ± 1.3", "", "", "3", "best"]


def test_verdicts_use_welch_against_the_best_and_diverged_cases_rank_last_untested():
    table = compare(RECORDS, metric="val_accuracy")
    a, b, c = table.cases
    expected = welch_t_test([0.6, 0.5], [0.7, 0.9])
    # t = -0.25 / sqrt(0.005/2 + 0.02/2); df = 0.0125^2 / (0.0025^2 + 0.01^2) = 1.4706.
    assert expected.t == pytest.approx(-0.25 / math.sqrt(0.0125))
    assert expected.df == pytest.approx(0.0125 ** 2 / (0.0025 ** 2 + 0.01 ** 2))
    assert b.p_value == pytest.approx(expected.p) and b.p_value >= 0.05
    assert b.p_holm == pytest.approx(b.p_value)  # one comparison: Holm changes nothing
    # Two seeds cannot tell a difference of 0.25 with this spread: inconclusive, not "the same".
    assert (b.significant, b.note) == (False, "inconclusive")
    assert (b.diff, b.diff_low, b.diff_high) == pytest.approx((-0.25, expected.low, expected.high))
    assert (c.case, c.diverged, c.p_value, c.significant, c.note) == ("C", 2, None, None, "diverged 2/2")
    assert a.note == "best" and a.significant is None
    assert "Welch's t-test" in table.caption() and "Holm" in table.caption()
    verdict = table.verdict()
    assert verdict.startswith("Best: A, final val_accuracy 0.8 [")
    assert "Inconclusive with n = 2 (try --seeds 10): B." in verdict
    assert "Diverged: C in 2 of 2 seeds." in verdict


def test_a_clear_difference_is_significant_and_one_seed_is_never_significant():
    clear = [run("good", s, [0.9 + 0.001 * s]) for s in range(3)] + \
        [run("bad", s, [0.5 + 0.001 * s]) for s in range(3)]
    table = compare(clear, metric="val_accuracy")
    assert [c.case for c in table.cases] == ["good", "bad"]
    assert table.cases[1].significant is True and table.cases[1].note == "worse"
    assert "Worse (Holm-adjusted p): bad by 40 points (p < 0.001)." in table.verdict()
    single = compare([run("good", 0, [0.9]), run("bad", 0, [0.1])], metric="val_accuracy")
    assert single.cases[1].p_value is None and single.cases[1].note == "inconclusive"
    assert math.isnan(single.cases[1].final_std)


def test_lower_is_better_for_losses_non_finite_ranks_last_and_rank_by_best_uses_the_best_epoch():
    curves = {("fast", 0): [0.5, 0.2, 0.4], ("fast", 1): [0.5, 0.3, 0.5],
              ("steady", 0): [0.5, 0.4, 0.3], ("steady", 1): [0.5, 0.4, 0.3],
              ("nan", 0): [0.5, float("nan"), float("nan")], ("nan", 1): [0.4, 0.3, 0.2]}
    records = [run(case, seed, values, key="val_loss") for (case, seed), values in curves.items()]
    final = compare(records, metric="val_loss")
    assert final.mode == "min"
    assert [c.case for c in final.cases] == ["steady", "fast", "nan"]
    assert final.cases[2].diverged == 1 and math.isnan(final.cases[2].final_mean)
    best = compare(records, metric="val_loss", rank_by="best")
    # bests: fast 0.2 and 0.3 (epoch 2), steady 0.3, nan 0.5 (its only finite value) and 0.2.
    assert [c.case for c in best.cases] == ["fast", "steady", "nan"]
    assert best.cases[0].best_mean == pytest.approx(0.25) and best.cases[0].best_epoch_mean == 2.0
    assert best.cases[2].best_mean == pytest.approx(0.35) and best.cases[2].best_epoch_mean == 2.0


def test_default_metric_is_the_first_validation_metric_and_a_missing_metric_is_an_input_error():
    assert default_metric({"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "lr": []}) == \
        "val_accuracy"
    assert default_metric({"loss": [], "val_loss": [], "lr": []}) == "val_loss"
    assert compare(RECORDS).metric == "val_accuracy"
    with pytest.raises(InputError, match=r"run 'A-s0' has no 'val_f1' in its history"):
        compare(RECORDS, metric="val_f1")
    with pytest.raises(InputError, match=r"no finished runs to compare"):
        compare([])


def test_welch_interval_of_the_difference_matches_the_hand_formula():
    a, b = [1.0, 2.0, 3.0], [3.0, 4.0, 5.0]
    result = welch_t_test(a, b)
    # diff -2, se = sqrt(1/3 + 1/3), df 4, t(0.975, 4) = 2.7764451051977987.
    half = 2.7764451051977987 * math.sqrt(2 / 3)
    assert (result.low, result.high) == pytest.approx((-2 - half, -2 + half), rel=1e-9)


def test_t_interval_matches_the_closed_form():
    low, high = t_interval([0.9, 0.92, 0.94])
    # mean 0.92, s = 0.02, t(0.975, 2) = 4.302652729911275
    half = 4.302652729911275 * 0.02 / math.sqrt(3)
    assert (low, high) == pytest.approx((0.92 - half, 0.92 + half), rel=1e-9)
    assert all(math.isnan(v) for v in t_interval([0.9]))


def test_holm_adjusts_step_down_by_hand():
    # sorted p: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> kept monotone at 0.06)
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_holm_correction_reaches_the_table_over_several_cases():
    records = [run("best", s, [0.90 + 0.002 * s]) for s in range(3)]
    offsets = {"x": 0.01, "y": 0.012, "z": 0.3}
    for name, off in offsets.items():
        records += [run(name, s, [0.90 - off + 0.002 * s + 0.001 * (s == 1)]) for s in range(3)]
    table = compare(records, metric="val_accuracy")
    raw = [c.p_value for c in table.cases[1:]]
    assert [c.p_holm for c in table.cases[1:]] == pytest.approx(holm(raw))
    assert all(c.p_holm >= c.p_value for c in table.cases[1:])


def test_orders_of_magnitude_are_never_a_tie():
    best = [run("good", s, [0.04 + 0.005 * s], key="val_loss") for s in range(3)]
    blown = [run("lr=10", s, [2e3, 1e4, 3e4][s:s + 1], key="val_loss") for s in range(3)]
    table = compare(best + blown, metric="val_loss")
    far = table.cases[1]
    assert far.case == "lr=10" and far.verdict == "far worse" and far.significant is True
    # One case's seeds span an order of magnitude: the rank test replaces Welch's.
    assert far.test == "mann-whitney"
    verdict = table.verdict()
    assert "Far worse in every seed" in verdict and "lr=10 3.1e5x" in verdict
    assert "tied" not in verdict.lower() and "inconclusive" not in verdict.lower()


def test_a_difference_resolved_within_the_margin_is_tied():
    # 10 seeds each, means 0.03 points apart: the interval of the difference is well inside ±1 point.
    records = [run("a", s, [0.950 + 0.001 * (s % 3)]) for s in range(10)] + \
        [run("b", s, [0.9496 + 0.001 * ((s + 1) % 3)]) for s in range(10)]
    table = compare(records, metric="val_accuracy")
    assert table.points and table.margin == 0.01
    assert table.cases[1].verdict == "tied"
    assert "1 case is within 1 point of it: b." in table.verdict()


def test_the_table_fits_80_columns_and_prints_case_names_literally():
    from rich.console import Console

    records = [run(f"optimizer={name}, lr=0.001", s, [0.9 - 0.01 * i + 0.001 * s])
               for i, name in enumerate(["[red]x", "[/b]", "nesterov_momentum_long"]) for s in range(3)]
    table = compare(records, metric="val_accuracy")
    console = Console(width=80, record=True, markup=False)
    console.print(table.table())
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "[red]x" in text and "[/b]" in text and "optimizer, lr" in text
    assert "nesterov_momentum_long" in text.replace("\n", "")  # never cut inside the word
