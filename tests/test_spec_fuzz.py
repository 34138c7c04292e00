"""Fuzzing the spec schema: a mutated spec is either valid or refused with InputError, never a traceback.

Seeded `hypothesis` runs (derandomized, no example database) mutate a valid
spec: they replace, delete or add fields anywhere in it, with values of every
TOML type, field names and technique names trainlab knows, and strings that
hold rich markup (``[/b]``). Two entry points are fuzzed: the library's
validation path (`parse_spec`, then the data and the checks made before
training) and the command line's `study --dry-run` (the TOML file read,
expanded and validated, nothing trained). Regression test for issue 17.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
import tomli_w

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from trainlab.api import check_before_training, dataset_from_spec  # noqa: E402
from trainlab.cli import main  # noqa: E402
from trainlab.errors import InputError  # noqa: E402
from trainlab.spec import parse_spec  # noqa: E402

BASE: dict[str, Any] = {
    "name": "fuzz",
    "data": {"name": "iris", "validation_split": 0.2, "scaling": "standardize"},
    "model": {"layers": [{"type": "Dense", "units": 4, "activation": "relu", "kernel_initializer": "he_normal"},
                         {"type": "Dropout", "rate": 0.1},
                         {"type": "Dense", "units": 3, "activation": "softmax"}]},
    "recipe": {"optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"name": "cosine"},
               "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"], "batch_size": 16,
               "num_epochs": 1, "seed": 0, "early_stopping": {"monitor": "val_loss", "patience": 2}},
}

# Words trainlab knows, so that mutations reach deep into the schema instead of stopping at "unknown field".
WORDS = ["name", "path", "type", "units", "rate", "activation", "lr", "momentum", "options", "target", "layers",
         "optimizer", "schedule", "loss", "metrics", "monitor", "patience", "mode", "device", "seed",
         "batch_size", "num_epochs", "validation_split", "stratify", "scaling", "early_stopping", "Dense",
         "Dropout", "Conv2D", "LSTM", "BatchNormalization", "Embedding", "relu", "softmax", "sigmoid", "adam",
         "sgd", "cosine", "step", "mse", "binary_crossentropy", "accuracy", "val_accuracy", "val_acc", "iris",
         "wine", "digits", "sequences", "cpu", "cuda", "tpu", "auto", "min", "max", "he_normal", "l2",
         "input_shape", "filters", "kernel_size", "x.npz", "d.csv", "../x", "/abs", "CON", "[/b]", "[red]x",
         "", " ", "é", "\u0000", "1e400"]

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-3, max_value=70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, 0.5, 2.0]),
    st.sampled_from(WORDS),
    st.text(alphabet=st.sampled_from(list("ab[]/\\.:_- \u00e9\u4e2d") + ["\n", "\t"]), max_size=8),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(WORDS), inner, max_size=3)),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out += _paths(inner, (*prefix, i))
    return out


PATHS = _paths(BASE)


@st.composite
def mutated_specs(draw: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        path = draw(st.sampled_from(PATHS))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        parent: Any = spec
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            if action == "delete":
                del parent[last]
            elif action == "add" and isinstance(parent, dict):
                parent[draw(st.sampled_from(WORDS))] = draw(values)
            else:
                parent[last] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return spec


def _validate(raw: dict[str, Any]) -> None:
    spec = parse_spec(raw, source="fuzzed spec")
    check_before_training(spec, dataset_from_spec(spec.data))


FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(raw=mutated_specs())
def test_mutated_specs_validate_or_raise_input_error(raw):
    try:
        _validate(raw)
    except InputError as error:
        assert str(error).strip(), "an InputError needs a message"


def _toml_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _toml_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_toml_ready(v) for v in value]
    return value


@settings(max_examples=80, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(raw=mutated_specs(), study=st.sampled_from([{}, {"seeds": 1}, {"vary": {"lr": [0.1, 0.01]}},
                                                   {"case": [{"name": "[/b]", "layers.activation": "tanh"}]}]))
def test_mutated_study_files_through_the_cli_exit_0_or_2(raw, study, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("fuzz")
    file = folder / "study.toml"
    try:
        file.write_text(tomli_w.dumps(_toml_ready({**raw, "study": study})), encoding="utf-8")
    except (TypeError, ValueError):
        return  # not expressible in TOML (e.g. a NUL in a key): a user cannot write it either
    code = 0
    try:
        main(["study", str(file), "--runs-dir", str(folder / "runs"), "--dry-run", "--json"])
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert not (folder / "runs").exists()


def test_dates_and_markup_in_a_layer_type_are_refused():
    for value in (datetime.date(2020, 1, 1), "[/b]", "[red]x"):
        raw = copy.deepcopy(BASE)
        raw["model"]["layers"][0]["type"] = value
        with pytest.raises(InputError):
            _validate(raw)
