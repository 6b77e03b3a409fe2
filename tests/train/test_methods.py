"""Semi-supervised methods: the registry, what each method's rows and loss claim, and
that training never learns from the hidden labels of the unlabelled part."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from semilabel.config import PhaseConfig
from semilabel.data.readers import ImageSet
from semilabel.models.classifier import ModelOutput
from semilabel.train.ema import WeightEMA
from semilabel.train.fit import fit
from semilabel.train.methods import StepContext, create_method, list_methods, phase_methods


def _fixmatch_config(tiny_config, **options):
    phases = (PhaseConfig("supervised", epochs=0.5),
              PhaseConfig("consistency", epochs=1, augment="strong", methods=("fixmatch",)))
    return dataclasses.replace(tiny_config, sesemi=False, phases=phases, ema_decay=0.9,
                               method_options={"fixmatch": {"threshold": 0.0, "mask": "fixed", "align": False,
                                                            **options}})


def test_registry_lists_every_method_and_phases_map_the_legacy_flags(tiny_config):
    assert list_methods() == ["fixmatch", "mean_teacher", "pseudo_label", "sesemi"]
    assert [phase_methods(tiny_config, p) for p in tiny_config.phases] == [
        ["sesemi"], ["sesemi"], ["pseudo_label", "sesemi"]]


def _context(config, teacher_probs, unlabeled, hidden=None):
    gen = torch.Generator().manual_seed(0)
    return StepContext(config, config.phases[-1], gen, torch.device("cpu"), 4, unlabeled, unlabeled,
                       lambda x, policy, batch: x, lambda x: [p[: len(x)] for p in teacher_probs], hidden)


def test_fixmatch_masks_each_group_on_its_own(tiny_config):
    config = _fixmatch_config(tiny_config, threshold=0.9, ratio=1.0)
    method = create_method("fixmatch", config)
    digit = torch.full((4, 10), 0.01)
    digit[:, 3] = 0.91  # confident digit 3
    letter = torch.full((4, 26), 1 / 26)  # unsure letter
    unlabeled = torch.zeros(8, 56, 56, dtype=torch.uint8)
    rows = method.rows(_context(config, [digit, letter], unlabeled))
    assert rows.weights.tolist() == [[1.0, 0.0]] * 4  # the digit is admitted, the letter is not
    assert rows.targets[:, 0].tolist() == [3] * 4
    assert float(rows.info["fixmatch_admit_0"]) == 1.0 and float(rows.info["fixmatch_admit_1"]) == 0.0


def test_adaptive_thresholds_start_low_and_follow_each_classs_learning_status(tiny_config):
    config = _fixmatch_config(tiny_config, threshold=0.9, ratio=1.0, mask="flexmatch")
    method = create_method("fixmatch", config)
    unlabeled = torch.zeros(8, 56, 56, dtype=torch.uint8)
    digit = torch.full((4, 10), 0.0)
    digit[:, 3] = 0.2  # unsure digit 3
    letter = torch.full((4, 26), 0.0)
    letter[:, 5] = 0.95  # sure letter 5
    rows = method.rows(_context(config, [digit, letter], unlabeled))
    # warm-up: nothing learnt yet, every threshold is 0 and both groups are admitted
    assert rows.weights.tolist() == [[1.0, 1.0]] * 4
    picked = torch.randint(8, (4,), generator=torch.Generator().manual_seed(0))
    assert set(method.status[:, 1][picked].tolist()) == {5}  # over 0.9: letter 5 learnt on those images
    assert set(method.status[:, 0].tolist()) == {-1}  # 0.2 is under 0.9: no digit learnt
    # digits: class 3 learnt on 4 images, class 7 on 2, none unused: thresholds 0.9 and 0.9 x 0.5 / 1.5
    method.status[:, 0] = torch.tensor([3, 3, 3, 3, 7, 7, -1, -1])
    digit = torch.zeros(4, 10)
    digit[:2, 3] = 0.8
    digit[2:, 7] = 0.8
    rows = method.rows(_context(config, [digit, letter], unlabeled))
    assert rows.weights[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0]  # 0.8 < 0.9 for class 3, > 0.3 for class 7
    assert float(rows.info["fixmatch_threshold_0"]) == pytest.approx((0.9 * 2 + 0.3 * 2) / 4)


def _sure(classes: int, cls: int, p: float, rows: int = 4) -> torch.Tensor:
    """(rows, classes) probabilities: `p` on class `cls`, the rest spread evenly."""
    probs = torch.full((rows, classes), (1 - p) / (classes - 1))
    probs[:, cls] = p
    return probs


def test_soft_weights_are_one_above_the_running_mean_confidence_and_fall_off_below_it(tiny_config):
    config = _fixmatch_config(tiny_config, threshold=0.9, ratio=1.0, mask="softmatch")
    method = create_method("fixmatch", config)
    unlabeled = torch.zeros(8, 56, 56, dtype=torch.uint8)
    letter = _sure(26, 5, 0.5)
    for _ in range(1000):  # the running mean and variance settle on this batch's: mean 0.55, variance 0.49 / 3
        digit = torch.cat([_sure(10, 3, 0.9, 2), _sure(10, 3, 0.2, 2)])
        rows = method.rows(_context(config, [digit, letter], unlabeled))
    weights = rows.weights[:, 0].tolist()
    assert weights[:2] == [1.0, 1.0]  # above the mean: full weight, however far
    assert weights[2] == pytest.approx(math.exp(-0.35**2 / (2 * 0.49 / 3 / 4)), rel=1e-2)  # width: std / 2
    assert float(rows.info["fixmatch_threshold_0"]) == pytest.approx(0.55, abs=1e-3)
    assert rows.weights[:, 1].tolist() == [1.0] * 4  # every letter at its mean: all admitted, no threshold
    # a nearer miss weighs more, and no weight is 0: every label counts a little
    near = method.rows(_context(config, [torch.cat([_sure(10, 3, 0.5, 2), _sure(10, 3, 0.4, 2)]), letter],
                                unlabeled)).weights[:, 0]
    assert 1.0 > near[0] > near[2] > weights[2] > 0.0


def test_alignment_pulls_an_over_predicted_class_back_to_the_labelled_shares(tiny_config):
    config = _fixmatch_config(tiny_config, threshold=0.0, ratio=1.0, align=True)
    method = create_method("fixmatch", config)
    unlabeled = torch.zeros(8, 56, 56, dtype=torch.uint8)
    labeled_y = torch.stack([torch.arange(30) % 10, torch.arange(30) % 26], dim=1)  # 3 of each digit
    unsure = torch.full((2, 10), (1 - 0.33 - 0.30) / 8)
    unsure[:, 0], unsure[:, 7] = 0.33, 0.30  # 0 narrowly over 7
    digit = torch.cat([_sure(10, 0, 0.9, 2), unsure])  # the teacher says 0 on every image
    letter = torch.full((4, 26), 1 / 26)
    ctx = dataclasses.replace(_context(config, [digit, letter], unlabeled), labeled_y=labeled_y)
    first = method.rows(ctx)
    assert first.targets[:, 0].tolist() == [0] * 4  # the running mean starts at chance: no pull yet
    for _ in range(200):  # the teacher's running mean learns that it over-predicts 0 ...
        rows = method.rows(ctx)
    assert rows.targets[:, 0].tolist() == [0, 0, 7, 7]  # ... so its near ties go to 7; its sure 0s stay
    state = method.state_dict()  # a resumed run keeps the running means
    again = create_method("fixmatch", config)
    again.load_state_dict(state)
    assert torch.equal(again.running["teacher_mean"][0], method.running["teacher_mean"][0])
    assert again.rows(ctx).targets[:, 0].tolist() == [0, 0, 7, 7]


def test_fixmatch_options_refuse_an_unknown_mask(tiny_config):
    from semilabel.errors import ConfigError

    with pytest.raises(ConfigError, match=r"method_options.fixmatch.mask': must be one of fixed, flexmatch"):
        create_method("fixmatch", _fixmatch_config(tiny_config, mask="soft"))


def test_fixmatch_loss_is_the_masked_cross_entropy_of_the_strong_view(tiny_config):
    config = dataclasses.replace(_fixmatch_config(tiny_config, weight=2.0), joint_head=False)
    method = create_method("fixmatch", config)
    torch.manual_seed(0)
    out = ModelOutput([torch.randn(4, 10), torch.randn(4, 26)], None, None)
    targets = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    from semilabel.train.methods import Rows

    loss, parts = method.loss(out, Rows(torch.zeros(4, 1, 56, 56), targets, mask), 4, {"digit": 1.0, "letter": 1.0})
    ce_d = F.cross_entropy(out.groups[0], targets[:, 0], reduction="none")
    ce_l = F.cross_entropy(out.groups[1], targets[:, 1], reduction="none")
    expected = 2.0 * ((mask[:, 0] * ce_d).sum() + (mask[:, 1] * ce_l).sum()) / 4
    assert torch.allclose(loss, expected)
    assert torch.allclose(parts["loss_fixmatch"], expected / 2.0)


def test_a_fixmatch_run_trains_on_admitted_unlabelled_rows(tiny_dataset, tiny_config):
    config = _fixmatch_config(tiny_config)
    result = fit(config, tiny_dataset)
    row = result.state.history[-1]
    assert row["phase"] == "consistency"
    assert row["train_fixmatch_admit_0"] == 1.0 and row["train_loss_fixmatch"] > 0  # threshold 0 admits all
    assert 0.0 < row["train_fixmatch_correct"] < 1.0  # graded against the hidden labels (reporting only)
    # per group too: with every label admitted, the digits (10 classes) are right more often than the letters (26)
    assert 0.0 < row["train_fixmatch_correct_1"] < row["train_fixmatch_correct_0"] < 1.0
    # without the unlabelled images the same run adds no rows: ratio 1 adds one batch per consistency step
    alone = fit(dataclasses.replace(config, use_unlabeled=False), tiny_dataset)
    assert "train_loss_fixmatch" not in alone.state.history[-1]
    consistency_steps = result.state.step - result.state.history[0]["step"]
    assert result.state.images_seen - alone.state.images_seen == consistency_steps * tiny_config.batch_size


def _shuffled(labels):
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0)).numpy()]
    assert (shuffled != labels).any()
    return shuffled


def test_training_never_learns_from_the_hidden_labels(tiny_dataset, tiny_config):
    """Shuffling the hidden labels of the unlabelled part leaves the weights bit-identical."""
    config = dataclasses.replace(_fixmatch_config(tiny_config), phases=(
        PhaseConfig("pseudo", epochs=1, augment="weak", pseudo_labels=True, methods=("fixmatch",)),))
    first = fit(config, tiny_dataset)
    shuffled = _shuffled(tiny_dataset.unlabeled.labels)
    other = dataclasses.replace(tiny_dataset, unlabeled=ImageSet(tiny_dataset.unlabeled.images, shuffled, "shuffled"))
    second = fit(config, other)
    a, b = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.state.history[-1]["train_fixmatch_correct"] != second.state.history[-1]["train_fixmatch_correct"]


def test_transductive_training_learns_from_the_test_images_never_from_their_labels(tiny_dataset, tiny_config):
    """With `unlabeled_test` the test images change what is learnt; their shuffled labels do not."""
    config = dataclasses.replace(_fixmatch_config(tiny_config), unlabeled_test=True, phases=(
        PhaseConfig("consistency", epochs=1, augment="weak", methods=("fixmatch",)),))
    first = fit(config, tiny_dataset)
    shuffled = _shuffled(tiny_dataset.test.labels)
    other = dataclasses.replace(tiny_dataset, test=ImageSet(tiny_dataset.test.images, shuffled, "shuffled"))
    second = fit(config, other)
    without = fit(dataclasses.replace(config, unlabeled_test=False), tiny_dataset)
    a, b, c = first.model.state_dict(), second.model.state_dict(), without.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the test images were drawn


def _mean_teacher_config(tiny_config, **options):
    phases = (PhaseConfig("supervised", epochs=0.5),
              PhaseConfig("consistency", epochs=1, augment="strong", methods=("mean_teacher",)))
    return dataclasses.replace(tiny_config, sesemi=False, phases=phases, ema_decay=0.9,
                               method_options={"mean_teacher": options})


def test_mean_teacher_targets_are_the_teachers_soft_probabilities_on_a_weak_view(tiny_config):
    config = _mean_teacher_config(tiny_config, ratio=0.5)
    method = create_method("mean_teacher", config)
    digit = torch.softmax(torch.randn(2, 10, generator=torch.Generator().manual_seed(1)), dim=1)
    letter = torch.full((2, 26), 1 / 26)
    unlabeled = torch.zeros(8, 56, 56, dtype=torch.uint8)
    hidden = torch.zeros(8, 2, dtype=torch.long)
    policies, seen = [], []
    ctx = StepContext(config, config.phases[-1], torch.Generator().manual_seed(0), torch.device("cpu"), 4,
                      unlabeled, unlabeled, lambda x, policy, batch: policies.append(policy) or x,
                      lambda x: seen.append(len(x)) or [digit, letter], hidden)
    rows = method.rows(ctx)
    assert policies == ["weak", "strong"] and seen == [2]  # ratio 0.5 of a batch of 4: the teacher sees the weak view
    assert rows.weights is None  # no threshold: every image counts
    assert torch.equal(rows.targets, torch.cat([digit, letter], dim=1))
    expected = ((digit.argmax(1) == 0).float().mean() + 1.0) / 2  # letters all tie at class 0, as hidden
    assert float(rows.info["mean_teacher_correct"]) == pytest.approx(float(expected))


def test_mean_teacher_loss_is_the_class_averaged_squared_error_of_the_probabilities(tiny_config):
    config = dataclasses.replace(_mean_teacher_config(tiny_config, weight=3.0), joint_head=False)
    method = create_method("mean_teacher", config)
    gen = torch.Generator().manual_seed(0)
    out = ModelOutput([torch.randn(4, 10, generator=gen), torch.randn(4, 26, generator=gen)], None, None)
    teacher = [torch.softmax(torch.randn(4, 10, generator=gen), 1), torch.softmax(torch.randn(4, 26, generator=gen), 1)]
    from semilabel.train.methods import Rows

    rows = Rows(torch.zeros(4, 1, 56, 56), torch.cat(teacher, dim=1))
    loss, parts = method.loss(out, rows, 8, {"digit": 1.0, "letter": 2.0})
    mse = [((torch.softmax(o, 1) - t) ** 2).mean(dim=1).sum() / 8 for o, t in zip(out.groups, teacher)]
    assert torch.allclose(loss, 3.0 * (mse[0] + 2.0 * mse[1]))
    assert torch.allclose(parts["loss_mean_teacher"], mse[0] + 2.0 * mse[1])
    same = Rows(rows.images, torch.cat([torch.softmax(o, 1) for o in out.groups], dim=1))
    assert float(method.loss(out, same, 8, {"digit": 1.0, "letter": 2.0})[0]) == pytest.approx(0.0, abs=1e-7)


def test_mean_teacher_options_are_checked(tiny_config):
    from semilabel.errors import ConfigError

    with pytest.raises(ConfigError, match="method_options.mean_teacher.weight'"):
        create_method("mean_teacher", _mean_teacher_config(tiny_config, weight=-1.0))


def test_a_mean_teacher_run_learns_from_every_unlabelled_row(tiny_dataset, tiny_config):
    config = _mean_teacher_config(tiny_config)
    result = fit(config, tiny_dataset)
    row = result.state.history[-1]
    assert row["phase"] == "consistency" and row["train_loss_mean_teacher"] > 0
    assert 0.0 < row["train_mean_teacher_correct"] < 1.0 and 0.0 < row["train_mean_teacher_confidence"] <= 1.0
    alone = fit(dataclasses.replace(config, use_unlabeled=False), tiny_dataset)
    assert "train_loss_mean_teacher" not in alone.state.history[-1]
    consistency_steps = result.state.step - result.state.history[0]["step"]
    assert result.state.images_seen - alone.state.images_seen == consistency_steps * tiny_config.batch_size


def test_ema_follows_the_weights_at_its_decay():
    model = torch.nn.Linear(3, 2)
    ema = WeightEMA(model, decay=0.5)
    before = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    d = ema.current_decay()
    ema.update(model)
    for k, v in ema.model.state_dict().items():
        assert torch.allclose(v, d * before[k] + (1 - d) * model.state_dict()[k])
    assert d == pytest.approx(0.1)  # ramped: (1 + 0) / (10 + 0)


def test_pseudo_labels_admit_per_group_and_take_the_phase_pseudo_policy(tiny_config):
    phase = dataclasses.replace(tiny_config.phases[-1], augment="weak", pseudo_augment="strong")
    config = dataclasses.replace(tiny_config, phases=(*tiny_config.phases[:-1], phase),
                                 method_options={"pseudo_label": {"threshold": 0.9, "per_group": True}})
    method = create_method("pseudo_label", config)
    from semilabel.models.inference import Predictions
    from semilabel.train.methods import EpochContext

    digit = torch.full((3, 10), 0.01)
    digit[:, 3] = 0.91  # a confident digit 3 in every image
    letter = torch.full((3, 26), 1 / 26)
    letter[0] = 0.0
    letter[0, 5] = 1.0  # the first image's letter is confident too
    unl = ImageSet(torch.zeros(3, 56, 56, dtype=torch.uint8).numpy(), None, "unl")
    ctx = EpochContext(config, phase, lambda images: Predictions(None, [digit.numpy(), letter.numpy()]), unl, None)
    info = method.on_epoch_start(ctx)
    assert info["pseudo_admitted"] == 3 and info["pseudo_admit_group1"] == pytest.approx(1 / 3)
    policies = []
    step = StepContext(config, phase, torch.Generator().manual_seed(0), torch.device("cpu"), 6, None,
                       torch.from_numpy(unl.images), lambda x, policy, batch: policies.append(policy) or x, None)
    rows = method.rows(step)
    assert policies == ["strong"]
    first = rows.targets[:, 1] == 5
    assert first.any() and not first.all()
    assert rows.weights[first].tolist() == [[1.0, 1.0]] * int(first.sum())  # both groups of the first image
    assert rows.weights[~first].tolist() == [[1.0, 0.0]] * int((~first).sum())  # only the digit of the others
    restored = create_method("pseudo_label", config)
    restored.load_state_dict(method.state_dict())
    assert (restored.labels.group_mask() == method.labels.group_mask()).all()


def test_a_pseudo_phase_with_per_group_admission_and_strong_policy_trains(tiny_dataset, tiny_config):
    phases = (*tiny_config.phases[:-1], dataclasses.replace(tiny_config.phases[-1], pseudo_augment="strong"))
    config = dataclasses.replace(tiny_config, phases=phases, method_options={
        **tiny_config.method_options, "pseudo_label": {"threshold": 0.0, "per_group": True}})
    row = fit(config, tiny_dataset).state.history[-1]
    assert row["pseudo_admitted"] == len(tiny_dataset.unlabeled) and row["train_loss_pseudo"] > 0
    assert row["pseudo_admit_group0"] == 1.0 and 0 <= row["pseudo_group_accuracy"] <= 1


PROBE_METHOD = '''
"""A method that repeats each step's first labelled images with their labels (a test's probe)."""

from dataclasses import dataclass

import torch

from semilabel.models.inference import to_input
from semilabel.train.losses import supervised_loss
from semilabel.train.methods.base import Method, Rows, register_method


@register_method("probe_repeat")
class ProbeRepeat(Method):
    @dataclass(frozen=True)
    class Options:
        rows: int = 4

    def rows(self, ctx):
        x = to_input(ctx.labeled_x[: self.options.rows], ctx.device)
        return Rows(x, torch.zeros(len(x), 2, dtype=torch.long, device=ctx.device))

    def loss(self, output, rows, denominator, group_weights):
        loss = supervised_loss(output, rows.targets, tuple(group_weights), group_weights, denominator=denominator)
        return loss.total, {"loss_probe_repeat": loss.total.detach()}
'''


def test_a_method_file_dropped_in_the_folder_is_found_and_trains(tiny_dataset, tiny_config, tmp_path, monkeypatch):
    """The methods folder is searched for modules (its package path, here with one more
    folder on it): a new method is one file, named in a phase like the built-in ones."""
    import sys

    from semilabel.config import apply_overrides
    from semilabel.train import methods
    from semilabel.train.methods import base

    (tmp_path / "probe_repeat.py").write_text(PROBE_METHOD)
    monkeypatch.setattr(methods, "__path__", [*methods.__path__, str(tmp_path)])
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # forgotten after the test
    monkeypatch.delitem(sys.modules, "semilabel.train.methods.probe_repeat", raising=False)
    assert "probe_repeat" not in list_methods()
    methods.discover()
    assert "probe_repeat" in list_methods()
    config = apply_overrides(dataclasses.replace(tiny_config, sesemi=False), {
        "phases.supervised.methods": ["probe_repeat"], "method_options.probe_repeat.rows": 3})
    assert create_method("probe_repeat", config).options.rows == 3
    result = fit(dataclasses.replace(config, phases=config.phases[:1]), tiny_dataset)
    row = result.state.history[-1]
    assert row["train_loss_probe_repeat"] > 0
    assert result.state.images_seen == result.state.step * (tiny_config.batch_size + 3)
    sys.modules.pop("semilabel.train.methods.probe_repeat", None)


def test_pseudo_label_and_sesemi_read_their_options_and_the_rest_from_the_default_recipe(tiny_config):
    from semilabel.errors import ConfigError

    given = dataclasses.replace(tiny_config, method_options={"pseudo_label": {"threshold": 0.7, "per_group": True},
                                                             "sesemi": {"batch_size": 6.0}})
    assert dataclasses.asdict(create_method("pseudo_label", given).options) == {
        "threshold": 0.7, "weight": 1.0, "max_fraction": 1.0, "per_group": True}  # the others: default.yaml's
    assert dataclasses.asdict(create_method("sesemi", given).options) == {"batch_size": 6, "weight": 0.5}
    assert type(create_method("sesemi", given).options.batch_size) is int
    for method, options, message in [
            ("sesemi", {"batch_size": 0}, r"'method_options\.sesemi\.batch_size': must be at least 1"),
            ("pseudo_label", {"threshold": 2}, r"'method_options\.pseudo_label\.threshold': must be in \[0, 1\]"),
            ("pseudo_label", {"per_group": 1}, r"'method_options\.pseudo_label\.per_group': expected true/false, got 1"),
            ("sesemi", {"weight": "high"}, r"'method_options\.sesemi\.weight': expected a number, got 'high'")]:
        with pytest.raises(ConfigError, match=message):
            create_method(method, dataclasses.replace(tiny_config, method_options={method: options}))


def test_the_built_in_methods_write_no_default_the_default_recipe_gives():
    """configs/default.yaml is the one place the built-in methods' defaults are written."""
    from semilabel.config import Config
    from semilabel.train.methods import method_class

    written = Config().method_options
    assert sorted(written) == list_methods()
    for name in list_methods():
        fields = dataclasses.fields(method_class(name).Options)
        assert sorted(written[name]) == sorted(f.name for f in fields), name
        assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields), name


def test_sesemi_rows_and_loss_follow_its_options(tiny_config):
    config = dataclasses.replace(tiny_config, method_options={"sesemi": {"batch_size": 5, "weight": 0.25}})
    method = create_method("sesemi", config)
    images = torch.zeros(8, 56, 56, dtype=torch.uint8)
    ctx = StepContext(config, config.phases[0], torch.Generator().manual_seed(0), torch.device("cpu"), 4,
                      images, images, lambda x, policy, batch: x, None)
    rows = method.rows(ctx)
    assert len(rows) == 5 and rows.targets.shape == (5,)
    logits = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    loss, parts = method.loss(ModelOutput([], logits, None), rows, 5, {})
    assert torch.allclose(loss, 0.25 * F.cross_entropy(logits, rows.targets))
    assert torch.allclose(parts["loss_pretext"], F.cross_entropy(logits, rows.targets))


def test_the_model_has_the_heads_its_methods_declare(tiny_config):
    from semilabel.data.schema import COMBO
    from semilabel.models.checkpoint import build_model, stored_heads
    from semilabel.train.methods import needed_heads

    plain = dataclasses.replace(tiny_config, sesemi=False)
    listed = dataclasses.replace(plain, phases=(dataclasses.replace(plain.phases[0], methods=("sesemi",)),
                                                *plain.phases[1:]))
    assert needed_heads(plain) == set() and build_model(plain, COMBO, heads=needed_heads(plain)).pretext_head is None
    model = build_model(listed, COMBO, heads=needed_heads(listed))
    assert needed_heads(listed) == {"pretext"} and model.pretext_head is not None
    assert stored_heads(model.state_dict()) == {"pretext"}  # a checkpoint's weights rebuild the same heads
    assert needed_heads(tiny_config) == {"pretext"}  # the older flag: sesemi: true
    assert [create_method(n, tiny_config).head for n in list_methods()] == [None, None, None, "pretext"]
