"""The override-path language (`trainlab.overrides`): what each kind of key sets, and the paths it refuses."""

import pytest

from trainlab.errors import InputError
from trainlab.overrides import ALIASES, apply_overrides, flatten, format_path, parse_path, resolve_key

BASE = {
    "data": {"name": "iris"},
    "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                         {"type": "Dropout", "rate": 0.1},
                         {"type": "Dense", "units": 3, "activation": "softmax"}]},
    "recipe": {"optimizer": {"name": "momentum", "lr": 0.1, "momentum": 0.8}, "num_epochs": 3},
}


def test_paths_parse_into_fields_and_list_positions_and_print_back():
    parts = parse_path("model.layers[0].activation", "test")
    assert parts == ["model", "layers", 0, "activation"]
    assert format_path(parts) == "model.layers[0].activation"


def test_short_names_expand_to_their_full_paths():
    assert resolve_key("lr", "test") == (["recipe", "optimizer", "lr"], False)
    assert resolve_key("patience", "test") == (["recipe", "early_stopping", "patience"], False)
    assert resolve_key("activation", "test") == (["layers", "activation"], True)
    assert set(ALIASES) >= {"optimizer", "lr", "epochs", "dataset", "initializer"}


def test_nested_tables_mean_the_same_as_dotted_keys():
    assert flatten({"recipe": {"optimizer": {"lr": 0.1}}, "seeds": 3}, stop_at_lists=True) == {
        "recipe.optimizer.lr": 0.1, "seeds": 3}


def test_the_base_is_not_changed():
    before = repr(BASE)
    apply_overrides(BASE, {"lr": 0.5, "activation": "tanh"}, "test")
    assert repr(BASE) == before


def test_a_new_technique_name_drops_the_old_settings_but_the_same_name_keeps_them():
    assert apply_overrides(BASE, {"optimizer": "adam"}, "test")["recipe"]["optimizer"] == "adam"
    kept = apply_overrides(BASE, {"optimizer": "momentum"}, "test")["recipe"]["optimizer"]
    assert kept == {"name": "momentum", "lr": 0.1, "momentum": 0.8}
    # a name with a setting: the name first, then the setting on the new technique
    assert apply_overrides(BASE, {"optimizer": "sgd", "lr": 0.01}, "test")["recipe"]["optimizer"] == {
        "name": "sgd", "lr": 0.01}


def test_layers_shortcut_sets_every_hidden_layer_that_takes_the_field_but_not_the_output_layer():
    layers = apply_overrides(BASE, {"activation": "tanh"}, "test")["model"]["layers"]
    assert [layer.get("activation") for layer in layers] == ["tanh", None, "softmax"]
    indexed = apply_overrides(BASE, {"model.layers[2].activation": "sigmoid"}, "test")["model"]["layers"]
    assert indexed[2]["activation"] == "sigmoid"


@pytest.mark.parametrize("key, message", [
    ("recipe.optimiser", r"has no field 'optimiser'.*Did you mean 'recipe.optimizer'"),
    ("model.layers[7].units", r"has 3 entries, so \[7\] does not exist"),
    ("model.layers.units", r"model.layers is a list; index a layer"),
    ("recipe.num_epochs.value", r"holds a single value"),
    ("recipe.seed", r"cannot vary: the seeds come from study.seeds"),
    ("name", r"'name' is the study's name and cannot vary"),
    ("model.layers[0]..units", r"is not a field path"),
    ("[/b]", r"is not a field path"),
])
def test_a_path_outside_the_spec_is_refused_with_the_fix(key, message):
    with pytest.raises(InputError, match=message):
        apply_overrides(BASE, {key: 1}, "test")
