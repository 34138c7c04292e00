"""Optimizers: each update equals its published formula, computed here by hand in numpy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from trainlab.errors import InputError, InputTypeError
from trainlab.optimizers import OPTIMIZERS, optimizer

# A 3x2 weight and two fixed gradients of mixed signs and scales.
W0 = np.array([[0.5, -1.0], [2.0, 0.1], [-0.3, 0.0]])
GRADS = [
    np.array([[0.2, -0.4], [1.5, 0.01], [-3.0, 0.5]]),
    np.array([[-0.1, -0.3], [0.7, -0.02], [-1.0, 2.0]]),
]


def torch_steps(name: str, settings: dict[str, Any], *, fused: bool | None = None) -> list[np.ndarray]:
    """The weight after each step of the optimizer `name`, fed GRADS (float64)."""
    w = torch.nn.Parameter(torch.tensor(W0))
    opt = optimizer({"name": name, **settings, "fused": fused}, [w])
    out = []
    for g in GRADS:
        w.grad = torch.tensor(g)
        opt.step()
        out.append(w.detach().numpy().copy())
    return out


# --- The formulas, one step at a time; `state` carries the accumulators, t counts from 1.


def sgd_rule(s: dict[str, Any]) -> Callable[..., np.ndarray]:
    def step(p: np.ndarray, g: np.ndarray, state: dict[str, Any], t: int) -> np.ndarray:
        d = g + s.get("weight_decay", 0.0) * p
        return p - s["lr"] * d
    return step


def momentum_rule(s: dict[str, Any], nesterov: bool) -> Callable[..., np.ndarray]:
    def step(p: np.ndarray, g: np.ndarray, state: dict[str, Any], t: int) -> np.ndarray:
        d = g + s.get("weight_decay", 0.0) * p
        state["v"] = d.copy() if t == 1 else s["momentum"] * state["v"] + d
        direction = d + s["momentum"] * state["v"] if nesterov else state["v"]
        return p - s["lr"] * direction
    return step


def adagrad_rule(s: dict[str, Any]) -> Callable[..., np.ndarray]:
    def step(p: np.ndarray, g: np.ndarray, state: dict[str, Any], t: int) -> np.ndarray:
        d = g + s["weight_decay"] * p
        state["sum"] = state.get("sum", np.full_like(p, s["initial_accumulator_value"])) + d**2
        return p - s["lr"] * d / (np.sqrt(state["sum"]) + s["eps"])
    return step


def adadelta_rule(s: dict[str, Any]) -> Callable[..., np.ndarray]:
    def step(p: np.ndarray, g: np.ndarray, state: dict[str, Any], t: int) -> np.ndarray:
        rho, eps = s["rho"], s["eps"]
        d = g + s["weight_decay"] * p
        state["sq"] = rho * state.get("sq", 0.0) + (1 - rho) * d**2
        update = np.sqrt(state.get("acc", 0.0) + eps) / np.sqrt(state["sq"] + eps) * d
        state["acc"] = rho * state.get("acc", 0.0) + (1 - rho) * update**2
        return p - s["lr"] * update
    return step


def rmsprop_rule(s: dict[str, Any]) -> Callable[..., np.ndarray]:
    def step(p: np.ndarray, g: np.ndarray, state: dict[str, Any], t: int) -> np.ndarray:
        rho = s["rho"]
        d = g + s["weight_decay"] * p
        state["sq"] = rho * state.get("sq", 0.0) + (1 - rho) * d**2
        if s.get("centered"):
            state["mean"] = rho * state.get("mean", 0.0) + (1 - rho) * d
            denom = np.sqrt(state["sq"] - state["mean"] ** 2) + s["eps"]
        else:
            denom = np.sqrt(state["sq"]) + s["eps"]
        if s.get("momentum", 0.0):
            state["buf"] = s["momentum"] * state.get("buf", 0.0) + d / denom
            return p - s["lr"] * state["buf"]
        return p - s["lr"] * d / denom
    return step


def adam_rule(s: dict[str, Any], decoupled: bool) -> Callable[..., np.ndarray]:
    def step(p: np.ndarray, g: np.ndarray, state: dict[str, Any], t: int) -> np.ndarray:
        b1, b2 = s["betas"]
        lr, wd = s["lr"], s["weight_decay"]
        if decoupled:
            p = p * (1 - lr * wd)  # decay the weight itself, outside the adaptive step
            d = g
        else:
            d = g + wd * p  # L2 in the gradient: goes through the moments
        state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * d
        state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * d**2
        v = state["v"]
        if s.get("amsgrad"):
            state["vmax"] = v = np.maximum(state.get("vmax", 0.0), v)
        m_hat = state["m"] / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        return p - lr * m_hat / (np.sqrt(v_hat) + s["eps"])
    return step


def nadam_rule(s: dict[str, Any]) -> Callable[..., np.ndarray]:
    def step(p: np.ndarray, g: np.ndarray, state: dict[str, Any], t: int) -> np.ndarray:
        b1, b2 = s["betas"]
        lr, psi = s["lr"], s["momentum_decay"]
        d = g + s["weight_decay"] * p
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        state["prod"] = state.get("prod", 1.0) * mu
        state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * d
        state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * d**2
        denom = np.sqrt(state["v"] / (1 - b2**t)) + s["eps"]
        return p - lr * ((1 - mu) / (1 - state["prod"]) * d
                         + mu_next / (1 - state["prod"] * mu_next) * state["m"]) / denom
    return step


CASES: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], Callable[..., np.ndarray]]]] = [
    ("sgd", {"lr": 0.1}, sgd_rule),
    ("sgd", {"lr": 0.1, "weight_decay": 0.05}, sgd_rule),
    ("momentum", {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.01}, lambda s: momentum_rule(s, False)),
    ("nesterov", {"lr": 0.1, "momentum": 0.7, "weight_decay": 0.01}, lambda s: momentum_rule(s, True)),
    ("sgd", {"lr": 0.1, "momentum": 0.7, "nesterov": True}, lambda s: momentum_rule(s, True)),
    ("adagrad", {"lr": 0.05, "eps": 1e-10, "initial_accumulator_value": 0.1, "weight_decay": 0.02},
     adagrad_rule),
    ("adadelta", {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.01}, adadelta_rule),
    ("rmsprop", {"lr": 0.01, "rho": 0.8, "eps": 1e-8, "weight_decay": 0.01}, rmsprop_rule),
    ("rmsprop", {"lr": 0.01, "rho": 0.8, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.5, "centered": True},
     rmsprop_rule),
    ("adam", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-8, "weight_decay": 0.1},
     lambda s: adam_rule(s, False)),
    ("adam", {"lr": 0.01, "betas": [0.8, 0.95], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": True},
     lambda s: adam_rule(s, False)),
    ("adamw", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-8, "weight_decay": 0.1},
     lambda s: adam_rule(s, True)),
    ("nadam", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-8, "momentum_decay": 0.004, "weight_decay": 0.01},
     nadam_rule),
]


@pytest.mark.parametrize("name, settings, rule", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("fused", [None, False])
def test_two_steps_equal_the_published_formula(name, settings, rule, fused):
    step = rule(settings)
    p, state, expected = W0.copy(), {}, []
    for t, g in enumerate(GRADS, start=1):
        p = step(p, g, state, t)
        expected.append(p)
    got = torch_steps(name, settings, fused=fused)
    # torch keeps NAdam's momentum product mu_1 * ... * mu_t in float32 (its scalar dtype), so
    # that update is exact to ~1e-8 relative; everything else is float64 throughout.
    rtol = 1e-6 if name == "nadam" else 1e-10
    for t, (ours, theirs) in enumerate(zip(got, expected), start=1):
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-12, err_msg=f"{name} step {t}")
    assert not np.allclose(got[0], W0) and not np.allclose(got[1], got[0])  # both steps moved


def test_cases_cover_every_registered_optimizer():
    assert {name for name, _, _ in CASES} == set(OPTIMIZERS.names())


def test_coupled_l2_moves_each_weight_by_about_lr_but_decoupled_decay_shrinks_all_by_one_factor():
    # With zero gradient only the decay acts. Adam's coupled L2 goes through the moments, so every
    # weight moves by ~lr whatever its size; AdamW multiplies every weight by (1 - lr * wd).
    lr, wd = 0.01, 0.1
    w = torch.tensor([[10.0, 0.1], [-5.0, 1.0]], dtype=torch.float64)
    moved = {}
    for name in ("adam", "adamw"):
        p = torch.nn.Parameter(w.clone())
        opt = optimizer({"name": name, "lr": lr, "weight_decay": wd}, [p])
        p.grad = torch.zeros_like(p)
        opt.step()
        moved[name] = p.detach()
    torch.testing.assert_close((w - moved["adam"]).abs(), torch.full_like(w, lr), rtol=1e-4, atol=0)
    torch.testing.assert_close(moved["adamw"], w * (1 - lr * wd), rtol=1e-12, atol=0)


FUSABLE = ["sgd", "momentum", "nesterov", "adagrad", "adam", "adamw"]


@pytest.mark.parametrize("name", FUSABLE)
def test_fused_kernel_gives_the_same_weights_as_the_foreach_path(name):
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(4, 5, generator=gen)
    grads = [torch.randn(4, 5, generator=gen) for _ in range(5)]
    results = []
    for fused in (True, False):
        w = torch.nn.Parameter(start.clone())
        opt = optimizer({"name": name, "lr": 0.05, "fused": fused}, [w])
        assert bool(opt.defaults.get("fused")) is fused
        for g in grads:
            w.grad = g.clone()
            opt.step()
        results.append(w.detach())
    assert not torch.equal(results[0], start)
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-6)


def test_automatic_kernel_is_fused_where_torch_has_one_and_foreach_elsewhere():
    w = torch.nn.Parameter(torch.zeros(3))
    assert optimizer("adam", [w]).defaults["fused"] is True
    rms = optimizer("rmsprop", [w]).defaults
    assert rms["foreach"] is True and not rms.get("fused")
    # Complex parameters have no fused kernel: automatic falls back, fused=True is refused.
    z = torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))
    assert not optimizer("adam", [z]).defaults["fused"]
    with pytest.raises(InputError, match="adam: fused=True needs floating-point parameters"):
        optimizer({"name": "adam", "fused": True}, [z])


@pytest.mark.parametrize("name", ["adadelta", "rmsprop", "nadam"])
def test_fused_true_is_refused_where_torch_has_no_fused_kernel(name):
    with pytest.raises(InputError, match=f"{name}: fused=True is not available"):
        optimizer({"name": name, "fused": True}, [torch.nn.Parameter(torch.zeros(2))])


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_same_seed_gives_bitwise_identical_weights(name):
    def train() -> torch.Tensor:
        gen = torch.Generator().manual_seed(1)
        w = torch.nn.Parameter(torch.randn(8, 8, generator=gen))
        opt = optimizer({"name": name, "lr": 0.01}, [w])
        for _ in range(5):
            w.grad = torch.randn(8, 8, generator=gen)
            opt.step()
        return w.detach()

    assert torch.equal(train(), train())


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_with_its_defaults_reduces_a_convex_quadratic(name):
    # Contract: loss = sum(c * (w - target)^2), condition number 10, from a fixed start. The bar is
    # low because some defaults are small on purpose (adagrad's lr 0.001 moves ~0.02 in 100 steps).
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(2, 3, generator=gen)
    scale = torch.linspace(1.0, 10.0, 6).reshape(2, 3)
    w = torch.nn.Parameter(torch.zeros(2, 3))
    opt = optimizer(name, [w])
    entry = OPTIMIZERS.entry(name)
    assert entry.claim and entry.summary

    def loss() -> torch.Tensor:
        return (scale * (w - target) ** 2).sum()

    first = loss().item()
    for _ in range(100):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    last = loss().item()
    assert last < 0.99 * first, f"{name}: loss {first:.4f} -> {last:.4f}"


BAD = [
    ("sgd", {"lr": -0.1}, "sgd: lr must be >= 0, got -0.1"),
    ("adam", {"lr": -1}, "adam: lr must be >= 0"),
    ("sgd", {"momentum": 1.0}, r"sgd: momentum must be in \[0, 1\), got 1.0"),
    ("momentum", {"momentum": -0.1}, r"momentum: momentum must be in \[0, 1\), got -0.1"),
    ("momentum", {"momentum": 1.5}, r"momentum: momentum must be in \[0, 1\)"),
    ("nesterov", {"momentum": 0.0}, r"nesterov: momentum must be in \(0, 1\), got 0.0"),
    ("sgd", {"momentum": 0.0, "nesterov": True}, "sgd: nesterov=True needs momentum"),
    ("rmsprop", {"momentum": 1.0}, r"rmsprop: momentum must be in \[0, 1\)"),
    ("rmsprop", {"rho": 1.0}, r"rmsprop: rho must be in \[0, 1\)"),
    ("adadelta", {"rho": -0.5}, r"adadelta: rho must be in \[0, 1\)"),
    ("adadelta", {"eps": 0.0}, "adadelta: eps must be > 0"),
    ("adam", {"betas": (1.0, 0.999)}, r"adam: betas\[0\] must be in \[0, 1\), got 1.0"),
    ("adamw", {"betas": (0.9, -0.1)}, r"adamw: betas\[1\] must be in \[0, 1\), got -0.1"),
    ("nadam", {"betas": (0.9, 1.2)}, r"nadam: betas\[1\] must be in \[0, 1\)"),
    ("adam", {"betas": 0.9}, r"adam: betas must be a pair"),
    ("adam", {"eps": -1e-8}, "adam: eps must be >= 0"),
    ("adamw", {"weight_decay": -0.01}, "adamw: weight_decay must be >= 0"),
    ("adagrad", {"initial_accumulator_value": -1}, "adagrad: initial_accumulator_value must be >= 0"),
    ("nadam", {"momentum_decay": -1}, "nadam: momentum_decay must be >= 0"),
    ("adam", {"amsgrad": "yes"}, "adam: amsgrad must be true or false"),
    ("adam", {"fused": 1}, "adam: fused must be true or false"),
    ("adam", {"lr": "0.1"}, "adam: lr must be a number"),
    ("adam", {"betas1": 0.9}, "optimizer 'adam' has no setting 'betas1'.*Did you mean 'betas'"),
]


@pytest.mark.parametrize("name, settings, message", BAD)
def test_bad_setting_names_the_optimizer_and_the_setting(name, settings, message):
    with pytest.raises(InputError, match=message):
        optimizer({"name": name, **settings}, [torch.nn.Parameter(torch.zeros(2))])


def test_unknown_name_lists_the_close_match():
    with pytest.raises(InputError, match="unknown optimizer 'adma' \\(from recipe.optimizer\\).*'adam'"):
        optimizer("adma", [torch.nn.Parameter(torch.zeros(2))], source="recipe.optimizer")


def test_optimizer_accepts_a_class_a_factory_and_a_module():
    model = torch.nn.Linear(2, 1)
    assert isinstance(optimizer(torch.optim.Adamax, model), torch.optim.Adamax)
    built = optimizer(lambda params: torch.optim.SGD(params, lr=0.3), model.parameters())
    assert built.defaults["lr"] == 0.3
    assert len(built.param_groups[0]["params"]) == 2
    groups = optimizer("adam", [{"params": [model.weight], "lr": 0.1}, {"params": [model.bias]}])
    assert [g["lr"] for g in groups.param_groups] == [0.1, 0.001]
    # A generator inside a param group is read once, not drained by the kernel choice.
    drained = optimizer("adam", [{"params": model.parameters(), "lr": 0.1}])
    assert len(drained.param_groups[0]["params"]) == 2 and drained.defaults["fused"] is True


def test_optimizer_rejects_a_foreign_built_optimizer_and_a_factory_that_returns_something_else():
    w = torch.nn.Parameter(torch.zeros(2))
    mine = torch.optim.SGD([w])
    assert optimizer(mine, [w]) is mine  # built on the model's parameters: used as it is (issue 11)
    with pytest.raises(InputTypeError, match="already built SGD"):
        optimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))]), [w])
    with pytest.raises(InputTypeError, match="must return a torch.optim.Optimizer, got str"):
        optimizer(lambda params: "adam", [w])
    with pytest.raises(InputTypeError, match="optimizer must be a name"):
        optimizer(3, [w])


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_each_registered_optimizer_has_a_stacked_form_that_matches_what_it_builds(name):
    # The capability the stacked path asks for: the torch class the entry builds, and the per-element
    # state it keeps (counted after one step: tensors shaped like the parameter).
    from trainlab.optimizers import StackedForm, stacked_form

    form = OPTIMIZERS.entry(name).capabilities["stacked"]
    assert isinstance(form, StackedForm)
    w = torch.nn.Parameter(torch.ones(5))
    built = optimizer(name, [w])
    assert type(built) is form.torch_class and stacked_form(built) is not None
    assert stacked_form(built).weight_decay == form.weight_decay
    w.grad = torch.full((5,), 0.5)
    built.step()
    per_element = [v for v in built.state[w].values() if torch.is_tensor(v) and v.shape == w.shape]
    assert form.state_slots(built.param_groups[0]) == len(per_element)
