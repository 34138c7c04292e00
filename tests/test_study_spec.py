"""Study specs: grid and case expansion, seeds, aliases and nested paths, and each bad-spec error.

Nothing here trains: expansion and validation happen before anything runs.
"""

import copy
from pathlib import Path

import pytest

from trainlab.errors import InputError
from trainlab.study import load_study, parse_study

BASE = {
    "name": "demo",
    "data": {"name": "iris"},
    "model": {"layers": [
        {"type": "Dense", "units": 8, "activation": "relu", "kernel_initializer": "he_normal"},
        {"type": "Dense", "units": 8, "activation": "relu"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    ]},
    "recipe": {"optimizer": {"name": "momentum", "lr": 0.05, "momentum": 0.8}, "num_epochs": 2, "seed": 10},
}


def study(**settings):
    raw = copy.deepcopy(BASE)
    raw["study"] = settings
    return raw


def test_a_grid_is_the_product_of_its_axes_first_axis_outermost_and_each_case_repeats_over_seeds():
    s = parse_study(study(seeds=3, vary={"optimizer": ["sgd", "adam"], "batch_size": [8, 16, 32]}))
    assert [c.label for c in s.cases] == [
        "optimizer=sgd, batch_size=8", "optimizer=sgd, batch_size=16", "optimizer=sgd, batch_size=32",
        "optimizer=adam, batch_size=8", "optimizer=adam, batch_size=16", "optimizer=adam, batch_size=32",
    ]
    assert len(s.runs) == 6 * 3
    # Repeat r trains with the base seed + r; the run id is <case-slug>-s<seed>.
    first = [r for r in s.runs if r.case is s.cases[0]]
    assert [(r.seed, r.run_id) for r in first] == [(10, "optimizer-sgd-batch_size-8-s10"),
                                                  (11, "optimizer-sgd-batch_size-8-s11"),
                                                  (12, "optimizer-sgd-batch_size-8-s12")]
    assert [r.spec.recipe.seed for r in first] == [10, 11, 12]
    assert s.cases[5].spec.recipe.batch_size == 32
    assert s.axes == {"optimizer": ["sgd", "adam"], "batch_size": [8, 16, 32]}
    assert len({r.spec_hash for r in s.runs}) == 18


def test_lr_alias_turns_a_technique_name_into_a_table_and_a_new_optimizer_name_drops_the_old_settings():
    s = parse_study(study(seeds=1, vary={"optimizer": ["momentum", "adam"], "lr": [0.1]}))
    # The same optimizer keeps the base's settings (momentum = 0.8); another starts from its defaults.
    assert s.cases[0].spec.recipe.optimizer == {"name": "momentum", "lr": 0.1, "momentum": 0.8}
    assert s.cases[1].spec.recipe.optimizer == {"name": "adam", "lr": 0.1}
    raw = study(seeds=1, vary={"lr": [0.5]})
    raw["recipe"]["optimizer"] = "adam"
    assert parse_study(raw).cases[0].spec.recipe.optimizer == {"name": "adam", "lr": 0.5}
    del raw["recipe"]["optimizer"]  # the default optimizer ("adam") is what the lr goes into
    assert parse_study(raw).cases[0].spec.recipe.optimizer == {"name": "adam", "lr": 0.5}


def test_dotted_paths_nested_tables_and_quoted_keys_mean_the_same_field():
    quoted = parse_study(study(seeds=1, vary={"recipe.schedule.name": ["cosine", "step"]}))
    nested = parse_study(study(seeds=1, vary={"recipe": {"schedule": {"name": ["cosine", "step"]}}}))
    alias = parse_study(study(seeds=1, vary={"schedule": ["cosine", "step"]}))
    for s in (quoted, nested, alias):
        assert [c.spec.recipe.schedule for c in s.cases] == ["cosine", "step"]
    assert [r.spec_hash for r in quoted.runs] == [r.spec_hash for r in nested.runs] == \
        [r.spec_hash for r in alias.runs]
    s = parse_study(study(seeds=1, vary={"recipe.early_stopping.patience": [2, 4],
                                         "data.validation_split": [0.3]}))
    assert [c.spec.recipe.early_stopping.patience for c in s.cases] == [2, 4]
    assert s.cases[0].spec.data.validation_split == 0.3


def test_layers_shortcut_sets_every_hidden_layer_but_not_the_output_layer_and_an_index_reaches_one():
    normal = {"name": "normal", "std": 1.0}
    s = parse_study(study(seeds=1, vary={"activation": ["tanh"], "initializer": [normal]}))
    layers = s.cases[0].spec.model.layers
    assert [layer["activation"] for layer in layers] == ["tanh", "tanh", "softmax"]
    assert [layer.get("kernel_initializer") for layer in layers] == [
        {"name": "normal", "std": 1.0}, {"name": "normal", "std": 1.0}, None]
    assert s.cases[0].label == "activation=tanh, initializer=normal(std=1)"
    s = parse_study(study(seeds=1, vary={"model.layers[2].units": [3], "model.layers[0].units": [4, 16]}))
    assert [c.spec.model.layers[0]["units"] for c in s.cases] == [4, 16]
    assert s.cases[0].spec.model.layers[1]["units"] == 8


def test_named_cases_override_fields_and_are_crossed_with_a_grid():
    s = parse_study(study(seeds=2, case=[
        {"name": "base"},
        {"name": "l2", "layers": {"kernel_regularizer": {"name": "l2", "l2": 0.001}}},
        {"name": "wide", "model.layers": [{"type": "Dense", "units": 64, "activation": "relu"},
                                          {"type": "Dense", "units": 3, "activation": "softmax"}]},
        {"name": "sgd", "optimizer": {"name": "sgd", "lr": 0.2}},
    ], vary={"num_epochs": [1, 3]}))
    assert [c.label for c in s.cases] == ["base, num_epochs=1", "base, num_epochs=3", "l2, num_epochs=1",
                                          "l2, num_epochs=3", "wide, num_epochs=1", "wide, num_epochs=3",
                                          "sgd, num_epochs=1", "sgd, num_epochs=3"]
    by_label = {c.label: c.spec for c in s.cases}
    assert by_label["base, num_epochs=3"].recipe.num_epochs == 3
    assert [layer.get("kernel_regularizer") for layer in by_label["l2, num_epochs=1"].model.layers] == \
        [{"name": "l2", "l2": 0.001}, {"name": "l2", "l2": 0.001}, None]
    assert len(by_label["wide, num_epochs=1"].model.layers) == 2
    # A table value sets its fields, name first: momentum's settings do not leak into sgd.
    assert by_label["sgd, num_epochs=1"].recipe.optimizer == {"name": "sgd", "lr": 0.2}
    assert s.cases[2].values == {"case": "l2", "num_epochs": 1}
    assert len(s.runs) == 16


def test_load_study_reads_toml_with_unquoted_dotted_keys(tmp_path):
    file = tmp_path / "s.toml"
    file.write_text("""
name = "toml-study"
[data]
name = "iris"
[[model.layers]]
type = "Dense"
units = 3
activation = "softmax"
[recipe]
num_epochs = 1
[study]
seeds = 2
[study.vary]
recipe.optimizer.lr = [0.01, 0.1]
[[study.case]]
name = "he+relu"
recipe.batch_size = 8
""")
    s = load_study(file)
    assert s.name == "toml-study"
    assert [c.label for c in s.cases] == ["he+relu, recipe.optimizer.lr=0.01",
                                          "he+relu, recipe.optimizer.lr=0.1"]
    assert s.cases[1].spec.recipe.optimizer == {"name": "adam", "lr": 0.1}
    assert s.cases[0].spec.recipe.batch_size == 8
    assert s.runs[0].run_id == "he+relu-recipe.optimizer.lr-0.01-s0"


# --------------------------------------------------------------------------- bad specs


def test_unknown_field_is_rejected_with_a_suggestion():
    with pytest.raises(InputError, match=r"study.vary: 'recipe.optimzer.lr' is not a field of the spec.*"
                                         r"Did you mean 'recipe.optimizer'"):
        parse_study(study(vary={"recipe.optimzer.lr": [0.1]}))
    with pytest.raises(InputError, match=r"'optimzer' is not a field.*Did you mean 'optimizer'"):
        parse_study(study(vary={"optimzer": ["sgd"]}))
    with pytest.raises(InputError, match=r"case 'x': 'recipe.early_stopping.patiense'.*has no field "
                                         r"'patiense'.*Did you mean 'recipe.early_stopping.patience'"):
        parse_study(study(case=[{"name": "x", "recipe.early_stopping.patiense": 3}]))
    with pytest.raises(InputError, match=r"case 'x': layers.unitz matches no hidden layer"):
        parse_study(study(case=[{"name": "x", "layers.unitz": 3}]))


def test_empty_or_scalar_axis_is_rejected_naming_the_axis():
    with pytest.raises(InputError, match=r"study.vary.lr is an empty list: an axis needs at least one value"):
        parse_study(study(vary={"optimizer": ["sgd"], "lr": []}))
    with pytest.raises(InputError, match=r"study.vary.lr must be a list of values.*got '0.1'"):
        parse_study(study(vary={"lr": 0.1}))
    with pytest.raises(InputError, match=r"study.vary.lr lists the value 0.1 twice"):
        parse_study(study(vary={"lr": [0.1, 0.1]}))


def test_a_value_that_does_not_validate_is_rejected_naming_the_case():
    with pytest.raises(InputError, match=r"2 of 4 cases do not validate, nothing was trained\. "
                                         r"case 'optimizer=sgd, lr=-1' is not a valid spec: recipe: sgd: lr "
                                         r"must be >= 0, got -1.*case 'optimizer=adam, lr=-1'"):
        parse_study(study(vary={"optimizer": ["sgd", "adam"], "lr": [-1, 0.1]}))
    with pytest.raises(InputError, match=r"case 'he\+relu' is not a valid spec: model.layers: layer 0: "
                                         r".*'rellu'"):
        parse_study(study(case=[{"name": "he+relu", "layers.activation": "rellu"}]))
    with pytest.raises(InputError, match=r"case 'schedule=cosin' is not a valid spec.*Did you mean 'cosine'"):
        parse_study(study(vary={"schedule": ["cosin"]}))


def test_cases_need_unique_names_and_paths_must_fit_the_spec():
    with pytest.raises(InputError, match=r"study.case\[1\] needs a name"):
        parse_study(study(case=[{"name": "a"}, {"lr": 0.1}]))
    with pytest.raises(InputError, match=r"two cases are named 'a'"):
        parse_study(study(case=[{"name": "a"}, {"name": "a", "lr": 0.1}]))
    with pytest.raises(InputError, match=r"case 'a': 'model.layers\[7\].units': model.layers has 3 entries"):
        parse_study(study(case=[{"name": "a", "model.layers[7].units": 4}]))
    with pytest.raises(InputError, match=r"'recipe.batch_size.x' goes inside recipe.batch_size, which "
                                         r"holds a single value"):
        parse_study(study(vary={"recipe.batch_size.x": [1]}))
    with pytest.raises(InputError, match=r"'recipe.seed' cannot vary: the seeds come from study.seeds"):
        parse_study(study(vary={"recipe.seed": [1, 2]}))


def test_bad_study_settings_are_rejected():
    with pytest.raises(InputError, match=r"study.sedes is not a study setting. Did you mean 'seeds'"):
        parse_study(study(sedes=3))
    with pytest.raises(InputError, match=r"study.seeds: Input should be greater than or equal to 1"):
        parse_study(study(seeds=0))
    with pytest.raises(InputError, match=r"study.metric 'val_acc' is not recorded by case 'base'.*"
                                         r"Did you mean 'val_accuracy'"):
        parse_study(study(metric="val_acc"))
    with pytest.raises(InputError, match=r"the base spec, without \[study\]\) is not a valid spec: data: "
                                         r"give exactly one"):
        parse_study(study() | {"data": {"validation_split": 0.2}})


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("example, cases, seeds", [
    ("optimizers", 7, 3), ("learning_rate", 12, 3), ("schedules", 5, 3), ("init_activation", 9, 2),
    ("regularization", 6, 3),
])
def test_the_example_studies_validate_and_expand(example, cases, seeds):
    s = load_study(EXAMPLES / f"{example}.toml")
    assert (len(s.cases), s.settings.seeds, len(s.runs)) == (cases, seeds, cases * seeds)
    assert all(r.spec.data.name in ("iris", "digits", "wine", "breast_cancer") for r in s.runs)
