"""The statistics of the study table, against hand-computed values and an independent t-distribution.

Welch's test is checked against a closed form (4 degrees of freedom) and against
a numerical integration of Student's t density (no scipy); the table's means,
standard deviations, best epochs, ranking and flags against values worked out by hand.
"""

import math

import numpy as np
import pytest

from trainlab.errors import InputError
from trainlab.study.compare import RunRecord, compare, default_metric, row_cells, welch_t_test


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
    assert row_cells(a) == ["1", "A", "0.8 ± 0.14", "0.85 ± 0.071", "2", "3.00", "", "best"]


def test_significance_flags_use_welch_against_the_best_and_diverged_cases_rank_last_untested():
    table = compare(RECORDS, metric="val_accuracy")
    a, b, c = table.cases
    expected = welch_t_test([0.6, 0.5], [0.7, 0.9])
    # t = -0.25 / sqrt(0.005/2 + 0.02/2); df = 0.0125^2 / (0.0025^2 + 0.01^2) = 1.4706.
    assert expected.t == pytest.approx(-0.25 / math.sqrt(0.0125))
    assert expected.df == pytest.approx(0.0125 ** 2 / (0.0025 ** 2 + 0.01 ** 2))
    assert b.p_value == pytest.approx(expected.p) and b.p_value >= 0.05
    assert (b.significant, b.note) == (False, "n.s.")
    assert (c.case, c.diverged, c.p_value, c.significant, c.note) == ("C", 2, None, None, "diverged 2/2")
    assert a.note == "best" and a.significant is None
    assert "Welch's two-sided t-test over seeds" in table.caption() and "p >= 0.05" in table.caption()


def test_a_clear_difference_is_significant_and_one_seed_is_never_significant():
    clear = [run("good", s, [0.9 + 0.001 * s]) for s in range(3)] + \
        [run("bad", s, [0.5 + 0.001 * s]) for s in range(3)]
    table = compare(clear, metric="val_accuracy")
    assert [c.case for c in table.cases] == ["good", "bad"]
    assert table.cases[1].significant is True and table.cases[1].note == ""
    single = compare([run("good", 0, [0.9]), run("bad", 0, [0.1])], metric="val_accuracy")
    assert single.cases[1].p_value is None and single.cases[1].note == "n.s."
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
