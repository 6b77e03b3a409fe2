"""`methods: auto`: the rule that decides whether a run trains on its unlabelled images,
its edges, and what a resolved config holds."""

from __future__ import annotations

import dataclasses

import pytest

from semilabel.config import apply_overrides, load_config
from semilabel.errors import ConfigError
from semilabel.train.method_choice import (AUTO_MIN_PASSES, LABELLED_IMAGES_PER_MINUTE, SMALL_BATCH_MIN_PASSES,
                                          choose_method, labelled_passes, resolve_methods, run_counts)


@pytest.mark.parametrize("n_labeled, n_unlabeled, passes, expected", [
    (1000, 59000, 800.0, "fixmatch"),  # the label curve's 1,000 labels in 20 minutes
    (3000, 3000, AUTO_MIN_PASSES, "fixmatch"),  # both edges inclusive
    (3000, 57000, AUTO_MIN_PASSES - 0.5, None),  # too short a run: the labelled steps pay more
    (1000, 999, 800.0, None),  # fewer unlabelled than labelled
    (1000, 0, 800.0, None),
    (30000, 30000, 27.0, None),  # the original data in 20 minutes: as the default always trained it
])
def test_auto_trains_on_the_unlabelled_images_only_where_the_labelled_ones_run_out(n_labeled, n_unlabeled, passes,
                                                                                  expected):
    choice = choose_method("auto", n_labeled, n_unlabeled, passes)
    assert choice.method == expected
    assert choice.reason.startswith(f"methods: auto chose {expected or 'none'}: {n_labeled:,} labelled")
    if n_unlabeled >= n_labeled:
        assert f"about {passes:,.0f} passes over the labelled images" in choice.reason


def test_the_passes_follow_the_budget_the_device_and_the_processes():
    config = load_config("default")
    budget = dataclasses.replace(config, time_budget=20.0)
    cpu = labelled_passes(budget, 1000, "cpu")
    assert cpu == 20.0 * LABELLED_IMAGES_PER_MINUTE["cpu"] / 1000
    assert labelled_passes(budget, 3000, "cpu") == pytest.approx(cpu / 3)  # more labels, fewer passes
    assert labelled_passes(dataclasses.replace(config, time_budget=60.0), 1000, "cpu") == pytest.approx(3 * cpu)
    assert labelled_passes(budget, 1000, "cuda") > 10 * cpu
    assert labelled_passes(budget, 1000, "cuda", world_size=2) == 2 * labelled_passes(budget, 1000, "cuda")
    assert labelled_passes(budget, 1000, "cpu", world_size=2) == cpu  # processes share the cores
    assert labelled_passes(budget, 1000, "mps") == cpu  # another kind: estimated as a CPU
    assert labelled_passes(config, 1000) == sum(p.epochs for p in config.phases)  # no budget: the recipe's epochs


@pytest.mark.parametrize("minutes, n_labeled, n_unlabeled, device, expected", [
    (20, 1000, 59000, "cpu", "fixmatch"),  # the label curve, where the method paid
    (20, 3000, 57000, "cpu", "fixmatch"),
    (20, 30000, 30000, "cpu", None),  # the original data: as the default always trained it
    (3, 3000, 3000, "cpu", None),  # the numbers task as the README trains it, where the method cost points
    (20, 30000, 30000, "cuda", "fixmatch"),  # a GPU passes over them often enough
    (None, 1000, 59000, "cpu", None),  # no budget: the default recipe's 13 epochs
])
def test_the_rule_reads_the_label_curve_runs_as_measured(minutes, n_labeled, n_unlabeled, device, expected):
    config = dataclasses.replace(load_config("default"), time_budget=minutes)
    assert resolve_methods(config, n_labeled, n_unlabeled, device)[1].method == expected


@pytest.mark.parametrize("methods, passes, expected", [
    ("auto", 800.0, True),  # the label curve's 1,000 labels in 20 minutes: batch 32 gained
    ("auto", SMALL_BATCH_MIN_PASSES, True),  # the edge inclusive
    ("auto", SMALL_BATCH_MIN_PASSES - 0.5, False),
    ("auto", 260.0, True),  # 3,000 labels: batch 32 gained without the method and tied with it
    ("auto", 83.0, False),  # 10,000 labels: not measured at 32, so 128 stays
    ("none", 800.0, True),  # with or without the method, as measured
    ("fixmatch", 800.0, True),
])
def test_a_cpu_run_takes_small_batches_where_the_budget_passes_over_its_labels_most(methods, passes, expected):
    assert choose_method(methods, 1000, 59000, passes).many_passes is expected


def test_an_explicit_choice_is_kept_whatever_the_counts():
    assert choose_method("none", 100, 50000, 1000.0).method is None
    assert choose_method("fixmatch", 30000, 0, 1.0).method == "fixmatch"
    assert choose_method("mean_teacher", 30000, 30000, 1.0).reason == "methods: mean_teacher, as set"


def test_the_counts_follow_the_label_limit_and_the_pools_a_run_uses():
    config = load_config("default")
    assert run_counts(config, 30000, 30000, 15000) == (30000, 30000)
    limited = dataclasses.replace(config, labeled_limit=1000)
    assert run_counts(limited, 30000, 30000, 15000) == (1000, 59000)
    assert run_counts(dataclasses.replace(limited, use_unlabeled=False), 30000, 30000, 15000) == (1000, 0)
    assert run_counts(dataclasses.replace(limited, unlabeled_test=True), 30000, 30000, 15000) == (1000, 74000)
    assert run_counts(dataclasses.replace(config, labeled_limit=50000), 300, 0, 0) == (300, 0)


def test_a_resolved_config_trains_its_strong_phase_with_the_method_and_its_settings():
    config = dataclasses.replace(load_config("default"), time_budget=20.0)
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
