"""Schedules: each multiplier equals its formula, or torch's scheduler step by step."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from trainlab.errors import InputError, InputTypeError
from trainlab.schedules import SCHEDULES, Schedule, plot_schedule, schedule, with_warmup


def values(spec: Any, steps_per_epoch: int, num_epochs: int, **kwargs: Any) -> list[float]:
    s = schedule(spec, steps_per_epoch=steps_per_epoch, num_epochs=num_epochs, **kwargs)
    return [s(step) for step in range(steps_per_epoch * num_epochs)]


def torch_lrs(make, total: int, per_step: bool = True) -> list[float]:
    """The lr torch's scheduler sets before each of `total` steps, on a dummy SGD with lr 1."""
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)
    scheduler = make(opt)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


# --- Formulas


def test_constant_is_one_everywhere_and_none_means_constant():
    assert values(None, 3, 2) == [1.0] * 6
    assert values("constant", 3, 2) == [1.0] * 6


def test_step_decay_is_gamma_to_the_whole_periods_done_and_constant_within_an_epoch():
    spe, epochs = 4, 7
    got = values({"name": "step", "step_size": 2, "gamma": 0.5}, spe, epochs)
    assert got == [0.5 ** ((s // spe) // 2) for s in range(spe * epochs)]
    # Default step_size: a third of the run, so two decays (here after epochs 3.33 and 6.67).
    got = values("step", 5, 10)
    assert got == pytest.approx([0.1 ** ((s // 5 >= 4) + (s // 5 >= 7)) for s in range(50)], rel=1e-12)
    # per="step" reads every update: a fractional period of 1.5 epochs = 6 updates.
    got = values({"name": "step", "step_size": 1.5, "gamma": 0.5, "per": "step"}, 4, 4)
    assert got == [0.5 ** (s // 6) for s in range(16)]


def test_multistep_multiplies_by_gamma_at_each_milestone_as_torch_multisteplr():
    spe, epochs = 3, 8
    got = values({"name": "multistep", "milestones": [2, 5], "gamma": 0.2}, spe, epochs)
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5], gamma=0.2), epochs)
    assert got == pytest.approx([expected[s // spe] for s in range(spe * epochs)], rel=1e-12)
    # Default milestones: 50% and 75% of the run.
    got = values({"name": "multistep", "gamma": 0.5}, 2, 8)
    assert got == [0.5 ** ((s // 2 >= 4) + (s // 2 >= 6)) for s in range(16)]


def test_exponential_is_gamma_per_epoch_whole_or_fractional():
    spe = 4
    assert values({"name": "exponential", "gamma": 0.9}, spe, 3) == pytest.approx(
        [0.9 ** (s // spe) for s in range(12)], rel=1e-12)
    assert values({"name": "exponential", "gamma": 0.9, "per": "step"}, spe, 3) == pytest.approx(
        [0.9 ** (s / spe) for s in range(12)], rel=1e-12)


def test_cosine_is_keras_cosine_decay_to_alpha_over_the_run():
    spe, epochs, alpha = 5, 4, 0.1
    total = spe * epochs
    s = schedule({"name": "cosine", "alpha": alpha}, steps_per_epoch=spe, num_epochs=epochs)
    for step in range(total + 3):
        t = min(step, total)
        expected = alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * t / total))
        assert s(step) == pytest.approx(expected, abs=1e-12)
    assert s(total) == pytest.approx(alpha) and s(total + 100) == pytest.approx(alpha)
    # per="epoch": torch's CosineAnnealingLR stepped once per epoch.
    got = values({"name": "cosine", "alpha": alpha, "per": "epoch"}, spe, epochs)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs, eta_min=alpha),
                    epochs)
    assert got == pytest.approx([ref[s // spe] for s in range(total)], abs=1e-12)


def test_linear_goes_from_one_to_end_factor_as_torch_linearlr():
    got = values({"name": "linear", "end_factor": 0.2}, 3, 4)
    assert got == pytest.approx([1 + (0.2 - 1) * s / 12 for s in range(12)], abs=1e-12)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.2, total_iters=12), 12)
    assert got == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("settings, torch_settings", [
    ({"mode": "triangular"}, {"mode": "triangular"}),
    ({"mode": "triangular2", "step_size_down": 1.5}, {"mode": "triangular2", "step_size_down": 6}),
    ({"mode": "exp_range", "gamma": 0.97}, {"mode": "exp_range", "gamma": 0.97}),
    ({"mode": "triangular", "step_size_up": 0.75}, {"mode": "triangular", "step_size_up": 3}),
])
def test_cyclic_equals_torch_cycliclr_step_by_step(settings, torch_settings):
    spe, epochs = 4, 10
    ours = {"name": "cyclic", "min_factor": 0.2, "max_factor": 1.5, "step_size_up": 2, **settings}
    theirs = {"step_size_up": 8, **torch_settings}
    got = values(ours, spe, epochs)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CyclicLR(
        o, base_lr=0.2, max_lr=1.5, cycle_momentum=False, **theirs), spe * epochs)
    assert got == pytest.approx(ref, abs=1e-12)
    assert min(got) == pytest.approx(0.2) and 1.2 < max(got) <= 1.5 + 1e-12


@pytest.mark.parametrize("period, period_mult, alpha", [(2, 1, 0.0), (1, 2, 0.05), (1.5, 3, 0.1)])
def test_cosine_restarts_equals_torch_cosine_annealing_warm_restarts(period, period_mult, alpha):
    spe, epochs = 4, 20
    got = values({"name": "cosine_restarts", "period": period, "period_mult": period_mult, "alpha": alpha},
                 spe, epochs)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=int(period * spe), T_mult=period_mult, eta_min=alpha), spe * epochs)
    assert got == pytest.approx(ref, abs=1e-12)
    assert got.count(1.0) >= 3  # it did restart


def test_cosine_restarts_per_epoch_equals_torch_stepped_once_per_epoch():
    spe, epochs = 3, 15
    got = values({"name": "cosine_restarts", "period": 2, "period_mult": 2, "per": "epoch"}, spe, epochs)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
                    epochs)
    assert got == pytest.approx([ref[s // spe] for s in range(spe * epochs)], abs=1e-12)


@pytest.mark.parametrize("settings", [
    {},
    {"pct_start": 0.4, "div_factor": 10.0, "final_div_factor": 100.0, "anneal": "linear"},
    {"pct_start": 0.25, "three_phase": True},
])
def test_one_cycle_equals_torch_onecyclelr_step_by_step(settings):
    spe, epochs = 7, 5
    total = spe * epochs
    got = values({"name": "one_cycle", **settings}, spe, epochs)
    torch_settings = {("anneal_strategy" if k == "anneal" else k): v for k, v in settings.items()}
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=1.0, total_steps=total, cycle_momentum=False, **torch_settings), total)
    assert got == pytest.approx(ref, abs=1e-12)
    assert 0.99 < max(got) <= 1.0  # the optimizer's lr is the peak


# --- Warmup composition


def test_warmup_ramps_linearly_then_the_inner_schedule_runs_on_the_remaining_steps():
    spe, epochs, warm = 4, 5, 8  # 2 warmup epochs, then cosine over the last 12 steps
    got = values({"name": "cosine", "warmup_epochs": 2}, spe, epochs)
    inner = 20 - warm
    expected = [s / warm for s in range(warm)] + [
        0.5 * (1 + math.cos(math.pi * (s - warm) / inner)) for s in range(warm, 20)]
    assert got == pytest.approx(expected, abs=1e-12)
    assert values({"name": "cosine", "warmup_steps": 8}, spe, epochs) == got
    # The same thing through with_warmup on a cosine built for the remaining steps.
    inner_schedule = SCHEDULES.build("cosine", steps_per_epoch=spe, num_epochs=epochs, total_steps=inner)
    composed = with_warmup(inner_schedule, warmup_steps=warm)
    assert [composed(s) for s in range(20)] == got


def test_warmup_start_sets_the_first_multiplier_and_targets_the_inner_first_value():
    got = values({"name": "exponential", "gamma": 0.5, "warmup_steps": 4, "warmup_start": 0.2}, 2, 4)
    assert got == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.5, 0.5], abs=1e-12)


def test_warmup_shifts_the_clock_of_epoch_schedules():
    # Step decay every 2 epochs after a 1-epoch warmup: decays after epochs 3 and 5 of the run.
    got = values({"name": "step", "step_size": 2, "gamma": 0.1, "warmup_epochs": 1}, 2, 6)
    assert got == pytest.approx([0.0, 0.5, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01], abs=1e-12)


def test_warmup_cosine_defaults_to_ten_percent_of_the_run_and_takes_its_own_warmup():
    got = values("warmup_cosine", 10, 5)  # 50 steps: 5 warmup steps, cosine over 45
    expected = [s / 5 for s in range(5)] + [
        0.5 * (1 + math.cos(math.pi * (s - 5) / 45)) for s in range(5, 50)]
    assert got == pytest.approx(expected, abs=1e-12)
    assert values({"name": "warmup_cosine", "warmup_epochs": 2}, 10, 5) == values(
        {"name": "cosine", "warmup_epochs": 2}, 10, 5)


def test_warmup_passes_epoch_ends_and_state_to_plateau():
    s = schedule({"name": "plateau", "patience": 0, "warmup_steps": 2}, steps_per_epoch=2, num_epochs=4)
    assert [s(0), s(1), s(2)] == [0.0, 0.5, 1.0]
    s.on_epoch_end(0, {"val_loss": 1.0})
    s.on_epoch_end(1, {"val_loss": 2.0})
    assert s(2) == pytest.approx(0.1)
    fresh = schedule({"name": "plateau", "patience": 0, "warmup_steps": 2}, steps_per_epoch=2, num_epochs=4)
    fresh.load_state_dict(s.state_dict())
    assert fresh(3) == s(3)


def test_a_callable_is_wrapped_with_an_empty_state():
    s = schedule(lambda step: 0.5**step, steps_per_epoch=2, num_epochs=2)
    assert isinstance(s, Schedule) and s(3) == 0.125 and s.state_dict() == {}


# --- Plateau against Keras 3's ReduceLROnPlateau (expected epochs derived by hand)


def reductions(monitored: list[float], **settings: Any) -> tuple[list[int], list[float]]:
    """Epochs at whose end the multiplier dropped, and the multiplier after each epoch."""
    base_lr = settings.pop("base_lr", None)
    s = schedule({"name": "plateau", **settings}, steps_per_epoch=1, num_epochs=len(monitored),
                 base_lr=base_lr)
    monitor = settings.get("monitor", "val_loss")
    dropped, after = [], []
    for epoch, value in enumerate(monitored):
        before = s(epoch)
        s.on_epoch_end(epoch, {monitor: value, "loss": 0.0})
        after.append(s(epoch + 1))
        if after[-1] < before:
            dropped.append(epoch)
    return dropped, after


def test_plateau_reduces_once_patience_epochs_pass_without_improvement():
    # e0 best=5; e1 best=4; e2 wait 1; e3 wait 2 -> cut; e4 best=3; e5 wait 1; e6 wait 2 -> cut; e7 wait 1.
    dropped, after = reductions([5, 4, 4, 4, 3, 3, 3, 3], patience=2, factor=0.5, min_delta=0)
    assert dropped == [3, 6]
    assert after == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_plateau_min_delta_means_current_below_best_minus_min_delta():
    # e0 best=1; e1 0.95 !< 0.9 -> cut; e2 0.85 < 0.9 -> best; e3 0.8 !< 0.75 -> cut.
    assert reductions([1.0, 0.95, 0.85, 0.8], patience=1, min_delta=0.1)[0] == [1, 3]
    # With min_delta=0 every decrease is an improvement.
    assert reductions([1.0, 0.95, 0.85, 0.8], patience=1, min_delta=0)[0] == []


def test_plateau_cooldown_counts_down_before_wait_resumes_as_in_keras():
    # patience 1, cooldown 2, flat: cut at e1; e2 cooldown 2->1 (skip); e3 1->0, then wait=1 -> cut; ...
    assert reductions([1.0] * 8, patience=1, cooldown=2)[0] == [1, 3, 5, 7]
    assert reductions([1.0] * 8, patience=1, cooldown=0)[0] == [1, 2, 3, 4, 5, 6, 7]
    # An improvement right after a cut resets wait: e2 cut (cooldown 1); e3 cooldown ends and
    # 0.5 is a new best; e4, e5 wait 1, 2 -> cut; e6 cooldown ends, wait 1; e7 wait 2 -> cut.
    assert reductions([1, 2, 2, 0.5, 2, 2, 2, 2], patience=2, cooldown=1)[0] == [2, 5, 7]


def test_plateau_patience_zero_cuts_at_every_epoch_that_does_not_improve():
    assert reductions([3, 2, 2, 1, 1], patience=0, factor=0.5)[0] == [2, 4]


def test_plateau_min_lr_is_an_absolute_floor_like_keras():
    # base 1.0, floor 0.3: 1 -> 0.5 (e1) -> max(0.25, 0.3) = 0.3 (e2) -> no further cut.
    dropped, after = reductions([1.0] * 5, patience=1, factor=0.5, min_lr=0.3, base_lr=1.0)
    assert dropped == [1, 2]
    assert after == pytest.approx([1.0, 0.5, 0.3, 0.3, 0.3])
    # min_lr is absolute: with base lr 0.01 a floor of 0.001 is the multiplier 0.1.
    dropped, after = reductions([1.0] * 6, patience=1, factor=0.1, min_lr=0.001, base_lr=0.01)
    assert dropped == [1] and after[-1] == pytest.approx(0.1)


def test_plateau_max_mode_and_auto_direction():
    seq = [0.5, 0.6, 0.6, 0.59, 0.7, 0.7, 0.7]
    # e0 best .5; e1 best .6; e2 wait 1; e3 wait 2 -> cut; e4 best .7; e5 wait 1; e6 wait 2 -> cut.
    assert reductions(seq, monitor="val_accuracy", patience=2)[0] == [3, 6]  # auto -> max
    assert reductions(seq, monitor="val_score", mode="max", patience=2)[0] == [3, 6]
    # Read as a loss (min mode), 0.5 at e0 is never beaten: cuts at e2, e4, e6.
    assert reductions(seq, monitor="val_score", mode="min", patience=2)[0] == [2, 4, 6]
    assert reductions(seq, monitor="val_loss", patience=2)[0] == [2, 4, 6]  # auto -> min


def test_plateau_state_dict_resumes_exactly():
    seq = [1.0, 0.9, 0.95, 0.97, 0.99, 0.8, 0.85, 0.9, 0.91, 0.92]
    settings = {"name": "plateau", "patience": 2, "cooldown": 1, "factor": 0.5}
    whole = schedule(settings, steps_per_epoch=1, num_epochs=10)
    first = schedule(settings, steps_per_epoch=1, num_epochs=10)
    for epoch, value in enumerate(seq):
        whole.on_epoch_end(epoch, {"val_loss": value})
        if epoch < 4:
            first.on_epoch_end(epoch, {"val_loss": value})
    resumed = schedule(settings, steps_per_epoch=1, num_epochs=10)
    resumed.load_state_dict(first.state_dict())
    for epoch, value in list(enumerate(seq))[4:]:
        resumed.on_epoch_end(epoch, {"val_loss": value})
    assert resumed.state_dict() == whole.state_dict()
    assert whole(0) < 1.0  # it did reduce


def test_plateau_missing_monitor_is_an_error_listing_the_logged_names():
    s = schedule("plateau", steps_per_epoch=1, num_epochs=3)
    message = r"plateau: monitor 'val_loss' is not among this epoch's logs \(loss\)"
    with pytest.raises(InputError, match=message):
        s.on_epoch_end(0, {"loss": 1.0})


# --- Bad input


BAD = [
    ({"name": "cosine", "alpha": 2}, r"cosine: alpha must be in \[0, 1\], got 2"),
    ({"name": "cosine", "per": "batch"}, r"cosine: per must be one of 'epoch', 'step', got 'batch'"),
    ({"name": "step", "step_size": 0}, "step: step_size must be > 0, got 0"),
    ({"name": "step", "gamma": 0}, r"step: gamma must be in \(0, 1\], got 0"),
    ({"name": "multistep", "milestones": [5, 2]}, r"multistep: milestones must be strictly increasing"),
    ({"name": "multistep", "milestones": 5}, "multistep: milestones must be a non-empty list"),
    ({"name": "exponential", "gamma": 1.5}, r"exponential: gamma must be in \(0, 1\], got 1.5"),
    ({"name": "linear", "end_factor": -1}, "linear: end_factor must be >= 0"),
    ({"name": "cyclic", "min_factor": 1.0, "max_factor": 0.5}, "cyclic: max_factor must be >= 1.0, got 0.5"),
    ({"name": "cyclic", "mode": "triangle"}, "cyclic: mode must be one of .*Did you mean 'triangular'"),
    ({"name": "cyclic", "step_size_up": 0}, "cyclic: step_size_up must be > 0"),
    ({"name": "cosine_restarts", "period_mult": 0.5}, "cosine_restarts: period_mult must be >= 1, got 0.5"),
    ({"name": "cosine_restarts", "period": -1}, "cosine_restarts: period must be > 0"),
    ({"name": "one_cycle", "pct_start": 1.0}, r"one_cycle: pct_start must be in \(0, 1\), got 1.0"),
    ({"name": "one_cycle", "anneal": "cosine"}, "one_cycle: anneal must be one of 'cos', 'linear'"),
    ({"name": "plateau", "factor": 1.0}, r"plateau: factor must be in \[0, 1\), got 1.0"),
    ({"name": "plateau", "patience": -1}, "plateau: patience must be an int >= 0, got -1"),
    ({"name": "plateau", "mode": "minimum"}, "plateau: mode must be one of"),
    ({"name": "plateau", "min_lr": 1e-5}, "plateau: min_lr=1e-05 is an absolute learning rate.*base_lr"),
    ({"name": "cosine", "warmup_epochs": 1, "warmup_steps": 3}, "cosine: give warmup_epochs or warmup_steps"),
    ({"name": "cosine", "warmup_epochs": -1}, "cosine: warmup_epochs must be >= 0, got -1"),
    ({"name": "cosine", "warmup_steps": 2.5}, "cosine: warmup_steps must be an int >= 0"),
    ({"name": "cosine", "warmup_steps": 2, "warmup_start": 1.5}, r"cosine: warmup_start must be in \[0, 1\]"),
    ({"name": "cosine", "warmup_start": 0.1}, "cosine: warmup_start=0.1 needs warmup_epochs or warmup_steps"),
    ({"name": "cosine", "warmup_epoch": 2},
     "schedule 'cosine' has no setting 'warmup_epoch'.*Did you mean 'warmup_epochs'"),
    ({"name": "cosine", "num_epochs": 2}, "cosine: 'num_epochs' is set by trainlab"),
    ({"name": "cosin"}, "unknown schedule 'cosin' \\(from recipe.schedule\\).*Did you mean 'cosine'"),
    ({"alpha": 0.1}, "a schedule given as a table needs a 'name' key"),
]


@pytest.mark.parametrize("spec, message", BAD)
def test_bad_setting_names_the_schedule_and_the_setting(spec, message):
    with pytest.raises(InputError, match=message):
        schedule(spec, steps_per_epoch=10, num_epochs=10, source="recipe.schedule")


def test_bad_run_shape_and_spec_type():
    with pytest.raises(InputError, match="schedule: steps_per_epoch must be an int >= 1, got 0"):
        schedule("cosine", steps_per_epoch=0, num_epochs=3)
    with pytest.raises(InputTypeError, match="schedule must be a name"):
        schedule(3.5, steps_per_epoch=1, num_epochs=3)


def test_a_stateless_schedule_refuses_a_foreign_state():
    with pytest.raises(InputError, match="Cosine keeps no state"):
        schedule("cosine", steps_per_epoch=2, num_epochs=2).load_state_dict({"wait": 1})


# --- Plot and contract


def test_plot_schedule_writes_a_png(tmp_path):
    out = plot_schedule({"name": "one_cycle"}, tmp_path / "plots" / "lr.png",
                        steps_per_epoch=10, num_epochs=5)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


@pytest.mark.parametrize("name", SCHEDULES.names())
@pytest.mark.parametrize("steps_per_epoch, num_epochs", [(7, 5), (1, 3)])
def test_every_schedule_gives_a_finite_nonnegative_multiplier_over_the_run(name, steps_per_epoch, num_epochs):
    entry = SCHEDULES.entry(name)
    assert entry.claim and entry.summary
    s = schedule(name, steps_per_epoch=steps_per_epoch, num_epochs=num_epochs)
    total = steps_per_epoch * num_epochs
    for step in range(total + 2):  # a step or two past the end too
        value = s(step)
        assert isinstance(value, float) and math.isfinite(value) and value >= 0, (name, step, value)
        if step % steps_per_epoch == steps_per_epoch - 1:
            s.on_epoch_end(step // steps_per_epoch, {"val_loss": 1.0, "loss": 1.0})
    again = schedule(name, steps_per_epoch=steps_per_epoch, num_epochs=num_epochs)
    again.load_state_dict(s.state_dict())
    assert again(total - 1) == s(total - 1)
    assert again.state_dict() == s.state_dict()


@pytest.mark.parametrize("settings, values", [
    ({"patience": 1}, [float("nan"), 1.0, 0.5, 0.4]),
    ({"patience": 2, "cooldown": 1}, [1.0, 1.1, 1.2, 1.3, 0.9, 1.0, 1.0, 1.0, 1.0]),
    ({"patience": 0, "min_delta": 0.1}, [1.0, 0.95, 0.8, 0.79, 0.5]),
    ({"patience": 1, "mode": "max"}, [0.5, 0.4, 0.6, 0.6, 0.6]),
])
def test_plateau_schedule_and_callback_make_the_same_decisions(settings, values):
    """One plateau rule: the schedule's multiplier follows ReduceLROnPlateau's lr / base lr epoch for epoch."""
    from trainlab.callbacks import CallbackList, RunState
    from trainlab.callbacks.lr import PlateauRule, ReduceLROnPlateau

    s = schedule({"name": "plateau", "monitor": "val_loss", "factor": 0.5, **settings},
                 steps_per_epoch=1, num_epochs=len(values))
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    callback = ReduceLROnPlateau(monitor="val_loss", factor=0.5, **settings)
    assert isinstance(callback.rule, PlateauRule) and isinstance(s.rule, PlateauRule)
    run = RunState(model=model, num_epochs=len(values), steps_per_epoch=1, optimizer=optimizer)
    callbacks = CallbackList([callback], model=model, run=run, params={})
    callbacks.on_train_begin()
    multipliers, lrs = [], []
    for epoch, value in enumerate(values):
        s.on_epoch_end(epoch, {"val_loss": value})
        callbacks.on_epoch_end(epoch, {"val_loss": value})
        multipliers.append(s(epoch + 1))
        lrs.append(optimizer.param_groups[0]["lr"])
    assert multipliers == lrs
    assert len(set(lrs)) > 1  # each case reduces at least once
