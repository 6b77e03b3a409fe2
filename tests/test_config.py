import pytest

from semilabel.config import apply_overrides, builtin_configs, config_to_dict, load_config, parse_override, save_config
from semilabel.errors import ConfigError


def test_builtin_recipes_load():
    assert {"default", "report"} <= set(builtin_configs())
    report = load_config("report")
    assert report.backbone == "mobilenet_v2" and report.sesemi and report.optimizer == "adam"
    assert (report.batch_size, report.lr, report.group_weights.get("letter", 1.0)) == (128, 0.002, 1.0)  # changed to learn on a CPU
    assert [p.name for p in report.phases] == ["supervised", "augmented", "pseudo"] and report.schedule_scope == "phase"


def test_every_builtin_recipe_loads_and_the_fixmatch_one_runs_consistency():
    assert {"default", "fixmatch", "pseudo", "report"} <= set(builtin_configs())
    fixmatch = load_config("fixmatch")
    assert fixmatch.phases[-1].methods == ("fixmatch",) and fixmatch.ema_decay > 0
    pseudo = load_config("pseudo")
    assert [p.name for p in pseudo.phases] == ["supervised", "augmented", "pseudo"] and pseudo.phases[-1].pseudo_labels


def test_the_default_recipe_is_strongly_augmented_supervision_with_an_ema():
    default = load_config("default")
    assert [(p.name, p.augment) for p in default.phases] == [("supervised", "weak"), ("augmented", "strong")]
    assert default.phases[0].hold_until_off_chance and default.ema_decay > 0
    assert not any(p.methods or p.pseudo_labels for p in default.phases) and not default.sesemi
    # a short run trains the strong phase weak; fixmatch keeps its labelled rows strong (not measured)
    assert default.strong_min_steps == 4000 and load_config("fixmatch").strong_min_steps == 0
    # label smoothing is the default's; the recipes measured without it keep none
    assert default.label_smoothing == 0.1
    assert load_config("fixmatch").label_smoothing == 0.0 and load_config("pseudo").label_smoothing == 0.0


def test_overrides_reach_nested_keys_and_phases_by_name():
    config = apply_overrides(load_config("pseudo"), {"lr": 0.01, "group_weights.letter": 2,
                                                      "phases.pseudo.enabled": False,
                                                      "strong_augment.rotate_deg": 20,
                                                      "method_options.fixmatch.threshold": 0.9})
    assert config.lr == 0.01 and config.group_weights["letter"] == 2.0
    assert [p.enabled for p in config.phases] == [True, True, False]
    assert config.strong_augment.rotate_deg == 20.0 and config.method_options["fixmatch"]["threshold"] == 0.9


@pytest.mark.parametrize("overrides, message", [
    ({"lrr": 1}, "'lrr' is unknown"),
    ({"lr": "fast"}, "'lr': expected a number"),
    ({"sesemi": "yes"}, "'sesemi': expected true/false"),
    ({"phases.warmup.enabled": True}, "no phase named 'warmup'"),
    ({"phases.pseudo.augmnt": True}, "'phases\\[2\\].augmnt' is unknown"),
    ({"phases.pseudo.augment": "wild"}, "'phases\\[2\\].augment': must be one of none, weak, strong"),
    ({"phases.pseudo.pseudo_augment": "wild"}, "'phases\\[2\\].pseudo_augment': must be one of none, weak, strong"),
    ({"plateau_check_steps": -1}, "'plateau_check_steps': must be 0 \\(off\\) or more steps"),
    ({"tta": -1}, "'tta': must be 0 \\(plain prediction\\) or more copies"),
    ({"strong_min_steps": -5}, "'strong_min_steps': must be 0 \\(always strong\\) or more steps"),
    ({"strong_min_steps": 2.5}, "'strong_min_steps': expected an integer"),
    ({"method_options.pseudo_label.per_group": "maybe"}, "'method_options.pseudo_label.per_group': expected true/f"),
    ({"method_options.sesemi.batch_size": 2.5}, "'method_options.sesemi.batch_size': expected an integer"),
    ({"pseudo_threshold": 0.9}, "^config key 'pseudo_threshold' is now 'method_options.pseudo_label.threshold'$"),
    ({"pretext_batch_size": 8}, "'pretext_batch_size' is now 'method_options.sesemi.batch_size'"),
    ({"phases.pseudo.methods": ["fixmtch"]}, "unknown method 'fixmtch'"),
    ({"method_options.fixmatch.treshold": 0.9}, "'method_options.fixmatch.treshold' is unknown"),
    ({"method_options.fixmatch.threshold": 1.5}, "'method_options.fixmatch.threshold': must be in"),
    ({"strong_augment.rotat_deg": 5}, "'strong_augment.rotat_deg' is unknown"),
    ({"strong_augment.far_rotate_p": 1.5}, "'strong_augment.far_rotate_p': must be in \\[0, 1\\], got 1.5"),
    ({"weak_augment.translate": -0.1}, "'weak_augment.translate': must be 0 or more"),
    ({"strong_augment.scale_min": 1.3}, "'strong_augment.scale_min': must be positive and at most scale_max"),
    ({"strong_augment.far_rotate_deg": 20}, "'strong_augment.far_rotate_deg': must be at least rotate_deg"),
    ({"ema_decay": 1.0}, "'ema_decay': must be in"),
    ({"backbone": "vgg"}, "'backbone': must be one of"),
    ({"lr": -1.0}, "'lr': must be positive"),
    ({"schedule_scope": "epoch"}, "'schedule_scope': must be run or phase, got 'epoch'"),
    ({"channels_last": "yes"}, "'channels_last': expected true/false"),
])
def test_bad_keys_and_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(load_config("pseudo"), overrides)


def test_yaml_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "mine.yaml"
    config = apply_overrides(load_config("default"), {"width": 16})
    save_config(config, path)
    assert load_config(path) == config
    path.write_text("width: 16\nbatchsize: 3\n")
    with pytest.raises(ConfigError, match=f"{path}.*'batchsize' is unknown"):
        load_config(path)
    with pytest.raises(ConfigError, match="not a built-in"):
        load_config(tmp_path / "missing.yaml")


def test_parse_override_reads_yaml_values():
    assert parse_override("sesemi=false") == ("sesemi", False)
    assert parse_override("lr=1e-3") == ("lr", 1e-3)
    with pytest.raises(ConfigError):
        parse_override("lr")


def test_a_recipe_file_can_start_from_another_and_change_a_few_keys(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: default\nlr: 0.003\ngroup_weights: {digit: 1.0, letter: 2.0}\n")
    mine, default = load_config(tmp_path / "mine.yaml"), load_config("default")
    assert mine.lr == 0.003 and mine.group_weights == {"digit": 1.0, "letter": 2.0}
    assert mine.phases == default.phases and mine.strong_augment == default.strong_augment
    # a base by path, relative to the file that names it; the nearer file wins
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.yaml").write_text("base: ../mine.yaml\nlr: 0.001\nwidth: 16\n")
    more = load_config(tmp_path / "sub" / "more.yaml")
    assert (more.lr, more.width, more.group_weights["letter"]) == (0.001, 16, 2.0)


def test_the_built_in_recipes_share_the_default_and_differ_where_they_say():
    default, fixmatch, pseudo = (load_config(n) for n in ("default", "fixmatch", "pseudo"))
    for recipe in (fixmatch, pseudo):
        for key in ("backbone", "width", "optimizer", "lr", "weak_augment", "strong_augment", "joint_head"):
            assert getattr(recipe, key) == getattr(default, key), key
    assert [m for p in fixmatch.phases for m in p.methods] == ["fixmatch"] and fixmatch.ema_decay == 0.999
    assert pseudo.ema_decay == 0.0 and any(p.pseudo_labels for p in pseudo.phases)


@pytest.mark.parametrize(("files", "message"), [
    ({"a.yaml": "base: nowhere.yaml\n"}, "'nowhere.yaml' \\(from .*a.yaml\\): not a built-in"),
    ({"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"}, "base chain comes back to itself .*a.yaml -> .*b.yaml -> .*a.yaml"),
    ({"a.yaml": "base: [default]\n"}, "'base': expected a recipe name or a path"),
    ({"a.yaml": "- lr: 0.1\n"}, "expected a mapping of config keys, got list"),
])
def test_a_bad_base_is_named(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "a.yaml")


def test_the_benchmark_recipe_files_load_from_their_base():
    """The recipes in benchmarks/recipes/, which the dated notes use, load as written (their `base` included)."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks" / "recipes"
    pseudo_strong = load_config(folder / "pseudo-strong.yaml")
    default = load_config("default")
    assert [(p.name, p.augment, p.pseudo_labels) for p in pseudo_strong.phases] == [
        ("supervised", "weak", False), ("augmented", "strong", False), ("pseudo", "strong", True)]
    assert pseudo_strong.method_options["pseudo_label"]["per_group"] and pseudo_strong.ema_decay == default.ema_decay
    assert pseudo_strong.strong_augment == default.strong_augment


# The config a checkpoint of be8316d (2026-12-01) stores: `config_to_dict` of its default recipe
# (narrowed to width 8), before the weak policy's ranges moved into `weak_augment`, phases'
# `augment` took policy names, and pooling, blocks, EMA, TTA, ... existed.
OLD_CHECKPOINT_CONFIG = {
    "backbone": "compact", "width": 8, "input_size": 56, "weights": None, "joint_head": True, "dropout": 0.1,
    "group_weights": {"digit": 1.0, "letter": 1.0}, "sesemi": False, "pretext_weight": 0.5, "pseudo_weight": 1.0,
    "pseudo_threshold": 0.95, "pseudo_max_fraction": 1.0, "batch_size": None, "pretext_batch_size": 32,
    "optimizer": "adamw", "lr": 0.002, "weight_decay": 0.0005, "schedule": "cosine", "schedule_scope": "run",
    "warmup_fraction": 0.05, "label_smoothing": 0.0, "rotate_deg": 10.0, "translate": 0.03, "scale_min": 1.0,
    "scale_max": 1.0,
    "phases": ({"name": "supervised", "enabled": True, "epochs": 1.0, "time_fraction": 0.1, "augment": False,
                "pretext_source": "labeled", "pseudo_labels": False, "group_weights": None, "lr": None},
               {"name": "augmented", "enabled": True, "epochs": 6.0, "time_fraction": 0.4, "augment": True,
                "pretext_source": "unlabeled", "pseudo_labels": False, "group_weights": None, "lr": None},
               {"name": "pseudo", "enabled": True, "epochs": 6.0, "time_fraction": 0.5, "augment": True,
                "pretext_source": "unlabeled", "pseudo_labels": True, "group_weights": None, "lr": None}),
    "time_budget": None, "val_fraction": 0.1, "seed": 0, "device": "auto", "precision": "auto",
    "eval_batch_size": 512, "channels_last": True, "checkpoint_minutes": 10.0, "checkpoint_every_steps": 0,
    "threads": 0,
}


def test_an_old_checkpoints_config_is_migrated_and_its_model_loads(tmp_path):
    import torch

    from semilabel import model_from_checkpoint
    from semilabel.config import config_from_dict, migrate_config
    from semilabel.data.augment_policy import AugmentPolicy
    from semilabel.data.schema import COMBO
    from semilabel.models.backbones import BackboneSpec
    from semilabel.models.classifier import MultiHeadClassifier

    migrated = migrate_config(OLD_CHECKPOINT_CONFIG)
    assert not {"rotate_deg", "translate", "scale_min", "scale_max"} & set(migrated)
    assert migrated["weak_augment"] == {"rotate_deg": 10.0, "translate": 0.03, "scale_min": 1.0, "scale_max": 1.0}
    assert [p["augment"] for p in migrated["phases"]] == ["none", "weak", "weak"]
    assert OLD_CHECKPOINT_CONFIG["phases"][1]["augment"] is True  # the stored mapping is left as it was
    config = config_from_dict(OLD_CHECKPOINT_CONFIG)
    assert config.weak_augment == AugmentPolicy.weak() and [p.augment for p in config.phases] == ["none", "weak", "weak"]
    # keys it predates keep the meaning they had for it: no EMA, no smoothing, the backbone's own pooling
    assert (config.pooling, config.ema_decay, config.label_smoothing, config.strong_min_steps) == (None, 0.0, 0.0, 0)
    assert (config.weight_decay, config.val_fraction, config.blocks) == (0.0005, 0.1, (1, 1, 1))
    # the checkpoint as be8316d wrote it; its compact net pooled average+max (twice the features of
    # `avg`), so its weights fit only a model rebuilt with that pooling
    trained = MultiHeadClassifier(COMBO, BackboneSpec("compact", 8, 56, pooling="avgmax"), pretext_head=False,
                                  joint_head=True)
    torch.save({"format": 1, "config": OLD_CHECKPOINT_CONFIG, "schema": COMBO.to_dict(),
                "model": trained.state_dict(), "state": {}}, tmp_path / "best.pt")
    model, loaded, _ = model_from_checkpoint(tmp_path / "best.pt")
    assert loaded == config and model.backbone.pool.pooling == "avgmax"
    assert migrate_config(config_to_dict(config)) == config_to_dict(config)  # today's keys pass unchanged


# The top-level keys that became method options after 9197d56 (2026-12-07), as a checkpoint stores them
OLD_METHOD_KEYS = {"pseudo_threshold": 0.9, "pseudo_weight": 0.5, "pseudo_max_fraction": 0.7, "pseudo_per_group": True,
                   "pretext_batch_size": 8, "pretext_weight": 0.25}


def test_an_old_checkpoints_method_keys_load_as_method_options(tmp_path):
    import torch

    from semilabel import model_from_checkpoint
    from semilabel.config import config_from_dict, migrate_config
    from semilabel.data.schema import COMBO
    from semilabel.models.backbones import BackboneSpec
    from semilabel.models.classifier import MultiHeadClassifier
    from semilabel.train.methods import create_method

    stored = {**OLD_CHECKPOINT_CONFIG, **OLD_METHOD_KEYS}
    trained = MultiHeadClassifier(COMBO, BackboneSpec("compact", 8, 56, pooling="avgmax"), pretext_head=False,
                                  joint_head=True)
    torch.save({"format": 1, "config": stored, "schema": COMBO.to_dict(), "model": trained.state_dict(), "state": {}},
               tmp_path / "best.pt")
    _, config, _ = model_from_checkpoint(tmp_path / "best.pt")
    assert config.method_options["pseudo_label"] == {"threshold": 0.9, "weight": 0.5, "max_fraction": 0.7,
                                                     "per_group": True}
    assert config.method_options["sesemi"] == {"batch_size": 8, "weight": 0.25}
    assert config.method_options["fixmatch"] == load_config("default").method_options["fixmatch"]  # not given
    assert create_method("pseudo_label", config).options.threshold == 0.9
    assert not set(OLD_METHOD_KEYS) & (set(migrate_config(stored)) | set(config_to_dict(config)))
    # a stored config of 2026-12-07 that gives an option both ways used its method_options' value
    both = {**stored, "method_options": {"pseudo_label": {"threshold": 0.8}, "fixmatch": {"ratio": 0.5}}}
    both_config = config_from_dict(both)
    assert both_config.method_options["pseudo_label"]["threshold"] == 0.8
    assert both_config.method_options["pseudo_label"]["weight"] == 0.5  # the older key, where method_options is silent
    assert both_config.method_options["fixmatch"]["ratio"] == 0.5


def test_recipe_files_with_the_older_method_keys_and_method_options_over_a_base(tmp_path):
    """A file's older keys are its own method options; a file's method options replace its
    base's per option, the rest kept (report's SESEMI batch under a new weight)."""
    (tmp_path / "strong.yaml").write_text("base: default\npseudo_per_group: true\npseudo_threshold: 0.8\n")
    (tmp_path / "old.yaml").write_text("width: 16\npretext_batch_size: 8\nmethod_options: {sesemi: {weight: 2.0}}\n")
    (tmp_path / "more.yaml").write_text("base: report\nmethod_options: {sesemi: {weight: 2.0}}\n")
    (tmp_path / "child.yaml").write_text("base: strong.yaml\nmethod_options: {pseudo_label: {weight: 0.5}}\n")
    strong, old, more, child = (load_config(tmp_path / f"{n}.yaml") for n in ("strong", "old", "more", "child"))
    default = load_config("default").method_options
    assert strong.method_options == {**default, "pseudo_label": {**default["pseudo_label"], "per_group": True,
                                                                 "threshold": 0.8}}
    assert old.method_options["sesemi"] == {"batch_size": 8, "weight": 2.0}
    assert more.method_options["sesemi"] == {"batch_size": 64, "weight": 2.0}
    assert child.method_options["pseudo_label"] == {**strong.method_options["pseudo_label"], "weight": 0.5}


def test_the_default_recipe_is_the_one_place_defaults_are_written():
    import dataclasses
    from importlib import resources

    import yaml

    from semilabel.config import Config

    recipe = yaml.safe_load(resources.files("semilabel.configs").joinpath("default.yaml").read_text())
    assert list(recipe) == [f.name for f in dataclasses.fields(Config)]  # every key, in Config's order
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(Config))  # none written in Python
    assert Config() == load_config("default")
    assert Config(width=16) == apply_overrides(load_config("default"), {"width": 16})
    assert Config().group_weights is not Config().group_weights  # each Config its own mappings


def test_a_recipe_without_base_keeps_the_meaning_it_had(tmp_path):
    """A file without `base` starts, as before cd60e6d, from Config's old defaults (no EMA, the
    three phases of `pseudo`, ...); `base: default` starts from the default recipe."""
    (tmp_path / "old.yaml").write_text("width: 16\nrotate_deg: 5.0\n")
    (tmp_path / "new.yaml").write_text("base: default\nwidth: 16\nrotate_deg: 5.0\n")
    old, new, default = load_config(tmp_path / "old.yaml"), load_config(tmp_path / "new.yaml"), load_config("default")
    assert (old.pooling, old.ema_decay, old.label_smoothing, old.strong_min_steps, old.weight_decay) == (
        None, 0.0, 0.0, 0, 0.0005)
    assert [(p.name, p.augment, p.pseudo_labels) for p in old.phases] == [
        ("supervised", "none", False), ("augmented", "weak", False), ("pseudo", "weak", True)]
    assert new.phases == default.phases and new.ema_decay == default.ema_decay and new.width == old.width == 16
    # the old top-level key sets the weak policy's rotation; its other ranges stay
    assert old.weak_augment.rotate_deg == new.weak_augment.rotate_deg == 5.0
    assert new.weak_augment.translate == default.weak_augment.translate == 0.03


def _recipe_files():
    from importlib import resources
    from pathlib import Path

    builtin = [Path(str(p)) for p in resources.files("semilabel.configs").iterdir() if p.name.endswith(".yaml")]
    return builtin + sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", _recipe_files(), ids=lambda p: p.name)
def test_every_recipe_names_its_base_and_states_only_what_differs(path):
    import re
    from pathlib import Path

    import yaml

    data = yaml.safe_load(path.read_text())
    if path.name == "default.yaml":
        assert "base" not in data
    else:
        base = data.pop("base")
        base = config_to_dict(load_config(base if base in builtin_configs() else path.parent / base))
        recipe = config_to_dict(load_config(path))
        # each key it gives changes its base; method options, each option it gives
        assert [k for k in data if k != "method_options" and recipe[k] == base[k]] == []
        options = [(m, o) for m, given in data.get("method_options", {}).items() for o in given]
        assert [(m, o) for m, o in options if recipe["method_options"][m][o] == base["method_options"][m][o]] == []
    # comments name the notes they rest on; each note named exists
    root = Path(__file__).resolve().parents[1]
    for note in re.findall(r"benchmarks/notes/[\w.-]+\.md", path.read_text()):
        assert (root / note).is_file(), note


def test_a_run_folder_of_fixmatch_adaptive_thresholds_reads_as_its_mask(tmp_path):
    """config.yaml files written before 3873123 say `adaptive`; they resume with the same weights."""
    from semilabel.config import Config, config_from_dict

    for adaptive, mask in ((True, "flexmatch"), (False, "fixed")):
        (tmp_path / "config.yaml").write_text(f"base: default\nmethod_options: {{fixmatch: {{adaptive: {adaptive}}}}}\n")
        assert load_config(tmp_path / "config.yaml").method_options["fixmatch"]["mask"] == mask
        stored = config_to_dict(Config())
        stored["method_options"]["fixmatch"] = {"threshold": 0.9, "adaptive": adaptive}
        assert config_from_dict(stored).method_options["fixmatch"] == {**Config().method_options["fixmatch"],
                                                                       "threshold": 0.9, "mask": mask}
