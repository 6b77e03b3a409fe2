"""`methods: auto`: the rule that decides whether a run trains on its unlabelled images,
its edges, and what a resolved config holds."""

from __future__ import annotations

import dataclasses

import pytest

from semilabel.config import apply_overrides, load_config
from semilabel.errors import ConfigError
from semilabel.train.method_choice import AUTO_MAX_LABELS, choose_method, resolve_methods, run_counts


@pytest.mark.parametrize("n_labeled, n_unlabeled, expected", [
    (1000, 59000, "fixmatch"),
    (AUTO_MAX_LABELS, AUTO_MAX_LABELS, "fixmatch"),  # both edges inclusive
    (AUTO_MAX_LABELS + 1, 60000, None),  # many labels: the labelled steps pay more
    (1000, 999, None),  # fewer unlabelled than labelled
    (1000, 0, None),
    (30000, 30000, None),  # the original data: as the default always trained it
])
def test_auto_trains_on_the_unlabelled_images_only_where_labels_are_few(n_labeled, n_unlabeled, expected):
    choice = choose_method("auto", n_labeled, n_unlabeled)
    assert choice.method == expected
    assert choice.reason.startswith(f"methods: auto chose {expected or 'none'}: {n_labeled:,} labelled")


def test_an_explicit_choice_is_kept_whatever_the_counts():
    assert choose_method("none", 100, 50000).method is None
    assert choose_method("fixmatch", 30000, 0).method == "fixmatch"
    assert choose_method("mean_teacher", 30000, 30000).reason == "methods: mean_teacher, as set"


def test_the_counts_follow_the_label_limit_and_the_pools_a_run_uses():
    config = load_config("default")
    assert run_counts(config, 30000, 30000, 15000) == (30000, 30000)
    limited = dataclasses.replace(config, labeled_limit=1000)
    assert run_counts(limited, 30000, 30000, 15000) == (1000, 59000)
    assert run_counts(dataclasses.replace(limited, use_unlabeled=False), 30000, 30000, 15000) == (1000, 0)
    assert run_counts(dataclasses.replace(limited, unlabeled_test=True), 30000, 30000, 15000) == (1000, 74000)
    assert run_counts(dataclasses.replace(config, labeled_limit=50000), 300, 0, 0) == (300, 0)


def test_a_resolved_config_trains_its_strong_phase_with_the_method_and_its_settings():
    config = load_config("default")
    assert config.methods == "auto" and all(not p.methods for p in config.phases)
    resolved, choice = resolve_methods(config, 1000, 59000)
    assert choice.method == "fixmatch" and resolved.methods == "fixmatch"
    assert [p.methods for p in resolved.phases] == [(), ("fixmatch",)]  # the weak start keeps none
    assert resolved.label_smoothing == 0.0 and resolved.strong_min_steps == 0  # with_method
    assert resolved.method_options["fixmatch"]["mask"] == "softmatch" and resolved.method_options["fixmatch"]["align"]
    again, _ = resolve_methods(resolved, 1000, 59000)
    assert again == resolved
    plain, choice = resolve_methods(config, 30000, 30000)
    assert choice.method is None and plain == dataclasses.replace(config, methods="none")


def test_the_measured_recipes_keep_their_own_methods():
    for name in ("fixmatch", "pseudo", "report"):
        config = load_config(name)
        assert config.methods == "none"
        assert resolve_methods(config, 1000, 59000)[0] == config
    assert load_config("fixmatch").method_options["fixmatch"]["mask"] == "fixed"


def test_a_methods_value_or_with_method_key_of_nothing_is_refused():
    config = load_config("default")
    with pytest.raises(ConfigError, match="config key 'methods': must be auto, none or a method"):
        apply_overrides(config, {"methods": "fixmatchh"})
    with pytest.raises(ConfigError, match="'with_method.label_smoothin'"):
        apply_overrides(config, {"with_method": {"label_smoothin": 0.0}})
