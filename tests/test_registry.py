import pytest

from trainlab.errors import InputError
from trainlab.registry import Registry


def make():
    reg = Registry("schedule")

    @reg.register("cosine", claim="smooth decay")
    def cosine(*, alpha: float = 0.0, total_steps: int = 1):
        """Half-cosine decay."""
        return ("cosine", alpha, total_steps)

    @reg.register("constant")
    def constant():
        return "constant"

    return reg


def test_unknown_name_lists_known_and_suggests_close_match():
    with pytest.raises(InputError, match=r"unknown schedule 'cosin' \(from --schedule\)\. Known: constant, "
                                         r"cosine\. Did you mean 'cosine'\?"):
        make().get("cosin", source="--schedule")


def test_a_typo_in_a_setting_is_an_error_not_a_dropped_keyword():
    with pytest.raises(InputError, match="schedule 'cosine' has no setting 'alpah'.*Did you mean 'alpha'"):
        make().build({"name": "cosine", "alpah": 0.1})


def test_build_passes_context_only_where_accepted_and_user_settings_win():
    reg = make()
    assert reg.build({"name": "cosine", "alpha": 0.5}, total_steps=10) == ("cosine", 0.5, 10)
    assert reg.build("constant", total_steps=10) == "constant"


def test_duplicate_names_are_refused():
    reg = make()
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("cosine")(lambda: None)


def test_summary_defaults_to_the_docstring_and_lookup_ignores_case():
    reg = make()
    assert reg.entry("COSINE").summary == "Half-cosine decay."
    assert reg.names() == ["constant", "cosine"]


def test_objects_pass_through_build_unchanged():
    obj = object()
    assert make().build(obj) is obj
