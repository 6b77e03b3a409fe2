import copy
import dataclasses

import numpy as np
import pytest
import torch
from recorders import KeepLast

from semilabel.data.readers import Dataset, ImageSet
from semilabel.data.splits import split_validation
from semilabel.errors import ConfigError, Interrupted
from semilabel.models.inference import predict
from semilabel.train import fit as fit_module
from semilabel.train.callbacks import PlateauWatch
from semilabel.train.clock import forecast_steps
from semilabel.train.fit import _Trainer, fit

TIMING_KEYS = {"elapsed_s", "images_per_s"}


def _metrics(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_validation_split_is_seeded_and_disjoint():
    train, val = split_validation(100, 0.1, seed=4)
    assert len(val) == 10 and len(train) == 90 and not set(train) & set(val)
    assert np.array_equal(val, split_validation(100, 0.1, seed=4)[1])
    assert not np.array_equal(val, split_validation(100, 0.1, seed=5)[1])


def test_a_run_goes_through_every_phase_and_pseudo_labels(tiny_dataset, tiny_config):
    result = fit(tiny_config, tiny_dataset)
    phases = [row["phase"] for row in result.state.history]
    assert phases == ["supervised", "augmented", "pseudo"]
    pseudo_row = result.state.history[-1]
    # Threshold 0 admits every unlabelled image; hidden labels score the guesses.
    assert pseudo_row["pseudo_admitted"] == len(tiny_dataset.unlabeled)
    assert {"val_exact", "val_digit", "val_letter", "train_loss_pretext"} <= set(pseudo_row)
    assert result.state.images_seen > 0 and result.images_per_second > 0


def test_same_seed_gives_the_same_metrics(tiny_dataset, tiny_config):
    config = dataclasses.replace(tiny_config, phases=tiny_config.phases[1:])  # augmented + pseudo
    first = fit(config, tiny_dataset).state.history
    second = fit(config, tiny_dataset).state.history
    assert _metrics(first) == _metrics(second)
    other = fit(dataclasses.replace(config, seed=1), tiny_dataset).state.history
    assert _metrics(first) != _metrics(other)


class _FakeClock:
    """Stands in for the `time` module in fit: each optimiser step takes exactly one second."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def _one_second_steps(monkeypatch) -> "_FakeClock":
    clock = _FakeClock()
    step = _Trainer.step

    def one_second_step(self, *args, **kwargs):
        clock.now += 1.0
        return step(self, *args, **kwargs)

    monkeypatch.setattr(fit_module, "time", clock)
    monkeypatch.setattr(_Trainer, "step", one_second_step)
    return clock


def test_time_budget_splits_the_run_by_the_phase_fractions(tiny_dataset, tiny_config, monkeypatch):
    clock = _one_second_steps(monkeypatch)
    phases = tuple(dataclasses.replace(p, epochs=100, time_fraction=f) for p, f in zip(tiny_config.phases, (1, 4, 5)))
    config = dataclasses.replace(tiny_config, time_budget=0.5, phases=phases)  # 30 s, 28.8 s for the phases
    history = fit(config, tiny_dataset).state.history
    # 2.88, 11.52 and 14.4 s: a step starts while its phase has time left, so 3, 12 and 15 steps
    last_step = {row["phase"]: row["step"] for row in history}
    assert last_step == {"supervised": 3, "augmented": 3 + 12, "pseudo": 3 + 12 + 15}
    assert clock.now == 30.0


def test_pseudo_accuracy_scores_the_guesses_against_the_hidden_labels(tiny_dataset, tiny_config):
    """Hidden labels equal to the model's own guesses on half the images and wrong on the
    other half: the reported pseudo-label accuracy is exactly one half."""
    trainer = _Trainer(tiny_config, tiny_dataset, fit_module.DistInfo(), None, None)
    unlabeled = tiny_dataset.unlabeled
    probs = predict(trainer.model, unlabeled.images, 128, trainer.device, autocast=trainer.autocast).probs
    hidden = np.stack([p.argmax(1) for p in probs], 1)  # the guesses: each group's most probable class
    half = len(hidden) // 2
    hidden[:half, 0] = (hidden[:half, 0] + 1) % tiny_dataset.schema.sizes[0]
    data = Dataset(tiny_dataset.labeled, ImageSet(unlabeled.images, hidden, "hidden"), None, tiny_dataset.schema)
    other = _Trainer(tiny_config, data, fit_module.DistInfo(), None, None)  # same seed: the same model
    info = other.start_epoch(other.phases[-1], first_in_epoch=True)  # the pseudo-label phase relabels
    assert info["pseudo_admitted"] == len(hidden)
    assert info["pseudo_accuracy"] == pytest.approx(1 - half / len(hidden))


def test_a_phase_ending_inside_an_epoch_gets_its_own_row_and_the_next_a_fresh_order(tiny_dataset, tiny_config,
                                                                                   monkeypatch):
    batches: list[tuple[str, tuple[int, ...]]] = []
    step = _Trainer.step

    def recording_step(self, phase, perm, lr):
        b = self.config.batch_size
        batches.append((phase.name, tuple(perm[self.state.step_in_epoch * b:(self.state.step_in_epoch + 1) * b])))
        return step(self, phase, perm, lr)

    monkeypatch.setattr(_Trainer, "step", recording_step)
    history = fit(tiny_config, tiny_dataset).state.history  # each phase is half an epoch
    assert [row["epoch"] for row in history] == [1, 2, 3]
    first, second = ([b for name, b in batches if name == phase] for phase in ("supervised", "augmented"))
    assert len(first) == len(second) == 4
    assert not set(first) & set(second), "the second phase repeated the first one's batches"


def test_disabled_phases_are_skipped(tiny_dataset, tiny_config):
    phases = tuple(dataclasses.replace(p, enabled=p.name == "augmented") for p in tiny_config.phases)
    result = fit(dataclasses.replace(tiny_config, phases=phases), tiny_dataset)
    assert {row["phase"] for row in result.state.history} == {"augmented"}


def test_group_weight_for_an_unknown_group_is_refused(tiny_dataset, tiny_config):
    config = dataclasses.replace(tiny_config, group_weights={"digit": 1.0, "leter": 5.0})
    with pytest.raises(ConfigError, match="leter"):
        fit(config, tiny_dataset)


def test_learning_rate_follows_one_curve_over_the_run_or_restarts_per_phase(tiny_dataset, tiny_config):
    run_wide = fit(dataclasses.replace(tiny_config, schedule_scope="run"), tiny_dataset).state.history
    lrs = [row["lr"] for row in run_wide]  # the last step of each phase
    assert lrs[0] > lrs[1] > lrs[2] and lrs[1] > 0.1 * tiny_config.lr
    per_phase = fit(dataclasses.replace(tiny_config, schedule_scope="phase"), tiny_dataset).state.history
    # equally long phases each restart the curve, so each ends at the same rate
    assert per_phase[0]["lr"] == pytest.approx(per_phase[1]["lr"]) == pytest.approx(per_phase[2]["lr"])


def test_validation_with_glyph_ids_holds_out_whole_glyphs():
    rng = np.random.default_rng(0)
    glyphs = np.stack([rng.integers(0, 300, 1000), rng.integers(0, 2000, 1000)], axis=1)
    train, val = split_validation(1000, 0.1, seed=4, glyphs=glyphs)
    assert len(val) == 100 and np.array_equal(val, split_validation(1000, 0.1, seed=4)[1])
    for g in range(2):
        assert not set(glyphs[train, g]) & set(glyphs[val, g]), "a validation glyph was also trained on"
    assert 500 < len(train) < 800  # only the images sharing a validation glyph are left out


def test_labelled_images_left_out_by_the_glyph_split_train_without_their_labels(tiny_dataset):
    from semilabel.data.readers import Dataset, ImageSet
    from semilabel.train.fit import _unlabeled_pool

    n = len(tiny_dataset.labeled)
    glyphs = np.stack([np.arange(n) % 40, np.arange(n) % 97], axis=1)
    labeled = ImageSet(tiny_dataset.labeled.images, tiny_dataset.labeled.labels, "l", glyphs)
    dataset = Dataset(labeled, tiny_dataset.unlabeled, None, tiny_dataset.schema)
    train, val = split_validation(n, 0.1, seed=0, glyphs=glyphs)
    pool = _unlabeled_pool(dataset, train, val)
    left_out = np.setdiff1d(np.arange(n), np.concatenate([train, val]))
    assert len(left_out) > 0 and len(pool) == len(tiny_dataset.unlabeled) + len(left_out)
    assert np.array_equal(pool.images[len(tiny_dataset.unlabeled):], labeled.images[left_out])
    assert np.array_equal(pool.labels[len(tiny_dataset.unlabeled):], labeled.labels[left_out])  # hidden: scoring only


def test_the_test_images_join_the_unlabelled_pool_only_when_asked(tiny_dataset):
    from semilabel.train.fit import _unlabeled_pool

    n = len(tiny_dataset.labeled)
    train, val = split_validation(n, 0.1, seed=0)
    assert _unlabeled_pool(tiny_dataset, train, val) is tiny_dataset.unlabeled
    pool = _unlabeled_pool(tiny_dataset, train, val, with_test=True)
    assert len(pool) == len(tiny_dataset.unlabeled) + len(tiny_dataset.test)
    assert np.array_equal(pool.images[len(tiny_dataset.unlabeled):], tiny_dataset.test.images)
    assert np.array_equal(pool.labels[len(tiny_dataset.unlabeled):], tiny_dataset.test.labels)  # hidden: scoring only
    no_labels = dataclasses.replace(tiny_dataset, test=dataclasses.replace(tiny_dataset.test, labels=None))
    assert _unlabeled_pool(no_labels, train, val, with_test=True).labels is None  # not all hidden: none scored


def test_asking_for_the_test_images_without_any_says_so(tiny_dataset, tiny_config):
    no_test = dataclasses.replace(tiny_dataset, test=None)
    with pytest.raises(ConfigError, match=r"^unlabeled_test \(--unlabeled-test\): tiny-labeled comes with no test images$"):
        fit(dataclasses.replace(tiny_config, unlabeled_test=True), no_test)


def test_the_step_that_leaves_the_start_up_plateau_is_recorded(tiny_dataset, tiny_config, monkeypatch):
    scored = []
    real = _Trainer._predict_shard

    def spy(self, images):
        scored.append((self.state.step, len(images)))
        return real(self, images)

    monkeypatch.setattr(_Trainer, "_predict_shard", spy)
    monkeypatch.setattr(fit_module, "PLATEAU_IMAGES", 5)  # fewer than the validation images: the check is told apart
    never = fit(dataclasses.replace(tiny_config, plateau_check_steps=3), tiny_dataset)
    assert len(never.val_index) > 5
    assert never.state.left_chance_step is None  # 5 images, 11 steps: still at chance
    checks = [step for step, n in scored if n == 5]
    assert checks == list(range(3, never.state.step + 1, 3))
    assert all("left_chance_step" not in row for row in never.state.history)

    monkeypatch.setattr(fit_module, "CHANCE_EXIT", -1.0)  # any score counts as off the plateau
    scored.clear()
    early = fit(dataclasses.replace(tiny_config, plateau_check_steps=3), tiny_dataset)
    assert early.state.left_chance_step == 3
    assert all(row["left_chance_step"] == 3 for row in early.state.history)
    assert [step for step, n in scored if n == 5] == [3]  # no check once it has left
    per_epoch = fit(dataclasses.replace(tiny_config, plateau_check_steps=0), tiny_dataset)
    assert per_epoch.state.left_chance_step == per_epoch.state.history[0]["step"]  # bounded by the first epoch


def _held_config(tiny_config, **changes):
    """30 s in phases of 1:4:5 (2.88, 11.52 and 14.4 s), the first held until off chance."""
    phases = tuple(dataclasses.replace(p, epochs=100, time_fraction=f, hold_until_off_chance=i == 0)
                   for i, (p, f) in enumerate(zip(tiny_config.phases, (1, 4, 5))))
    return dataclasses.replace(tiny_config, time_budget=0.5, phases=phases, **changes)


def test_a_held_phase_stays_at_chance_up_to_its_limit_and_the_later_phases_share_the_rest(
        tiny_dataset, tiny_config, monkeypatch):
    clock = _one_second_steps(monkeypatch)
    monkeypatch.setattr(fit_module, "CHANCE_EXIT", 2.0)  # never off the plateau
    state = fit(_held_config(tiny_config, hold_max_fraction=0.5), tiny_dataset).state
    last_step = {row["phase"]: row["step"] for row in state.history}
    # supervised grows to half of 28.8 s (14.4), so its 15th step is its last; the 13.8 s left
    # go to the others in their 4:5 ratio (7 and 8 steps), and the run still takes its 30 s
    assert last_step == {"supervised": 15, "augmented": 15 + 7, "pseudo": 15 + 7 + 8}
    assert state.spans == pytest.approx([15.0, 13.8 * 4 / 9, 13.8 * 5 / 9])
    assert clock.now == 30.0


def test_a_held_phase_ends_once_validation_leaves_chance(tiny_dataset, tiny_config, monkeypatch):
    clock = _one_second_steps(monkeypatch)

    def leaves_at_step_6(self, trainer, val=None):
        if trainer.state.left_chance_step is None and trainer.state.step >= 6:
            trainer.state.left_chance_step = trainer.state.step

    monkeypatch.setattr(PlateauWatch, "watch", leaves_at_step_6)
    state = fit(_held_config(tiny_config), tiny_dataset).state
    last_step = {row["phase"]: row["step"] for row in state.history}
    assert state.left_chance_step == 6
    # grown by 0.288 s (1% of the run) whenever a step found it spent: to 5.184 s after step 5,
    # so step 6 ran; after it validation was off chance, the phase ended and kept the 6 s it used
    assert last_step["supervised"] == 6
    assert state.spans[0] == pytest.approx(6.0)
    assert state.spans[1] / state.spans[2] == pytest.approx(4 / 5) and sum(state.spans) == pytest.approx(28.8)
    assert clock.now == 30.0
    monkeypatch.setattr(fit_module, "CHANCE_EXIT", 2.0)
    unheld = dataclasses.replace(_held_config(tiny_config), phases=tuple(
        dataclasses.replace(p, hold_until_off_chance=False) for p in _held_config(tiny_config).phases))
    assert {row["phase"]: row["step"] for row in fit(unheld, tiny_dataset).state.history}["supervised"] == 3


def test_a_held_phase_counts_in_steps_without_a_budget_and_resumes_exactly(tiny_dataset, tiny_config, monkeypatch):
    monkeypatch.setattr(fit_module, "CHANCE_EXIT", 2.0)  # never off the plateau
    phases = tuple(dataclasses.replace(p, hold_until_off_chance=i == 0) for i, p in enumerate(tiny_config.phases))
    config = dataclasses.replace(tiny_config, phases=phases, hold_max_fraction=0.5)
    whole = fit(config, tiny_dataset)
    last_step = {row["phase"]: row["step"] for row in whole.state.history}
    # half an epoch each: 4 planned steps per phase (8 per epoch); the first grows to half the run
    assert last_step == {"supervised": 6, "augmented": 6 + 3, "pseudo": 6 + 3 + 3}

    recorder, polls = KeepLast(), []

    def stop_at_step_5() -> bool:  # polled after every step (the first epoch ends at step 6)
        polls.append(1)
        return len(polls) == 5

    with pytest.raises(Interrupted):
        fit(config, tiny_dataset, recorder=recorder, stop=stop_at_step_5)
    # stopped inside the hold: past the 4 planned steps, its span grown to just over 4
    assert recorder.last["state"]["step"] == 5 and 4 < recorder.last["state"]["spans"][0] <= 5
    resumed = fit(config, tiny_dataset, resume=recorder.last)
    assert _metrics(resumed.state.history) == _metrics(whole.state.history)
    assert resumed.state.spans == pytest.approx(whole.state.spans)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


@pytest.mark.parametrize("held, fractions, stop_at_poll", [
    (False, (1, 4, 5), 3),  # 2.88 s: step 3 spends the first phase inside its first epoch
    (True, (1, 4, 5), 3),  # the same phase held at chance: it grows instead of ending
    (True, (3.2, 4, 5), 8),  # 7.55 s: step 8 spends it on its first epoch's last step (8 steps an epoch) ...
    (True, (3.2, 4, 5), 9),  # ... and the checkpoint with that epoch's row, taken before the hold
])
def test_a_run_stopped_on_the_step_that_spends_a_timed_phase_resumes_exactly(
        tiny_dataset, tiny_config, monkeypatch, held, fractions, stop_at_poll):
    """A checkpoint taken on the step that used up a timed phase (its phase_seconds at or
    past the budget, the epoch not yet closed) resumes into that phase's end as the
    uninterrupted run does: its row, validation and hold, then the next phase."""
    _one_second_steps(monkeypatch)
    monkeypatch.setattr(fit_module, "CHANCE_EXIT", 2.0)  # never off the plateau: a held phase grows
    config = dataclasses.replace(_held_config(tiny_config, hold_max_fraction=0.5), phases=tuple(
        dataclasses.replace(p, time_fraction=f, hold_until_off_chance=held and i == 0)
        for i, (p, f) in enumerate(zip(tiny_config.phases, fractions))))
    whole = fit(config, tiny_dataset)

    recorder, polls = KeepLast(), []

    def stop() -> bool:  # polled after every step and after every epoch's row
        polls.append(1)
        return len(polls) == stop_at_poll

    with pytest.raises(Interrupted):
        fit(config, tiny_dataset, recorder=recorder, stop=stop)
    state = recorder.last["state"]
    assert state["phase"] == 0 and state["phase_seconds"] >= state["spans"][0] and state["step"] == min(stop_at_poll, 8)
    resumed = fit(config, tiny_dataset, resume=recorder.last)
    assert _metrics(resumed.state.history) == _metrics(whole.state.history)
    assert resumed.state.spans == pytest.approx(whole.state.spans)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_a_resume_on_a_smaller_unlabelled_set_relabels_it(tiny_dataset, tiny_config):
    """Pseudo-labels are positions in the unlabelled pool they were made on: a resume on
    other data (--allow-other-data) with 30 unlabelled images instead of 120 must not keep
    positions past its end, nor labels of other images: it relabels the new pool."""
    recorder, polls = KeepLast(), []

    def stop_in_the_pseudo_phase() -> bool:  # 4 steps a phase, one poll after each and after each row
        polls.append(1)
        return len(polls) == 12

    with pytest.raises(Interrupted):
        fit(tiny_config, tiny_dataset, recorder=recorder, stop=stop_in_the_pseudo_phase)
    saved = recorder.last
    assert saved["state"]["phase"] == 2 and saved["state"]["step_in_epoch"] > 0
    assert int(saved["methods"]["pseudo_label"]["index"].max()) >= 30  # labels of the 120 images
    unlabeled = tiny_dataset.unlabeled
    smaller = Dataset(tiny_dataset.labeled, ImageSet(unlabeled.images[:30], unlabeled.labels[:30], "smaller"),
                      tiny_dataset.test, tiny_dataset.schema)
    resumed = fit(tiny_config, smaller, resume=copy.deepcopy(saved))
    assert resumed.state.history[-1]["phase"] == "pseudo"
    assert resumed.state.history[-1]["pseudo_admitted"] == 30  # threshold 0: the whole new pool, relabelled
    again = fit(tiny_config, tiny_dataset, resume=copy.deepcopy(saved))  # the same data: its labels are kept
    assert again.state.history[-1]["pseudo_admitted"] == len(unlabeled)
    old_format = {k: v for k, v in saved.items() if k != "unlabeled_pool"}  # a checkpoint from before the record
    assert fit(tiny_config, smaller, resume=old_format).state.history[-1]["pseudo_admitted"] == 30


def test_fit_leaves_the_callers_thread_count_as_it_found_it(tiny_dataset, tiny_config, tmp_path):
    """`threads` holds while training; after it, returned or raised, the caller's count again
    (and after `train_run`, which scores the test images on the run's threads too)."""
    from semilabel.train.run import train_run

    before = torch.get_num_threads()
    caller = 3 if before != 3 else 2
    phases = tuple(dataclasses.replace(p, epochs=0.1, enabled=p.name == "supervised") for p in tiny_config.phases)
    config = dataclasses.replace(tiny_config, threads=1, phases=phases)
    inside: list[int] = []
    torch.set_num_threads(caller)
    try:
        fit(config, tiny_dataset, stop=lambda: inside.append(torch.get_num_threads()) or False)
        assert inside and set(inside) == {1}
        assert torch.get_num_threads() == caller
        with pytest.raises(Interrupted):
            fit(config, tiny_dataset, stop=lambda: True)
        assert torch.get_num_threads() == caller
        with pytest.raises(ConfigError, match="leter"):
            fit(dataclasses.replace(config, group_weights={"leter": 5.0}), tiny_dataset)
        assert torch.get_num_threads() == caller
        train_run(tiny_dataset, tmp_path / "run", config, quiet=True)
        assert torch.get_num_threads() == caller
    finally:
        torch.set_num_threads(before)


def _tiny_default(**changes):
    from semilabel.config import load_config

    default = load_config("default")
    return dataclasses.replace(default, width=8, batch_size=32, eval_batch_size=128, threads=1, device="cpu",
                               precision="fp32", val_min=0, phases=tuple(dataclasses.replace(p, epochs=1) for p in default.phases),
                               **changes)


def _record_policies(monkeypatch) -> list[str]:
    policies = []
    real_augment = fit_module._Trainer._augment
    monkeypatch.setattr(fit_module._Trainer, "_augment",
                        lambda self, x, policy, *rest: policies.append(policy) or real_augment(self, x, policy, *rest))
    return policies


def test_the_default_recipe_trains_labelled_rows_only(tiny_dataset, monkeypatch):
    config = _tiny_default(strong_min_steps=0)  # its 16 steps would otherwise count as a short run
    policies = _record_policies(monkeypatch)
    result = fit(config, tiny_dataset)
    phases = [row["phase"] for row in result.state.history]
    assert phases[-1] == "augmented" and set(phases) == {"supervised", "augmented"}
    assert {"weak", "strong"} == set(policies)  # the supervised start weak, then the strong policy
    assert not any(k.startswith(("train_loss_pseudo", "train_loss_fixmatch", "pseudo_")) for r in result.state.history
                   for k in r)  # the unlabelled images are not used


def test_forecast_steps_are_the_planned_steps_or_the_pace_so_far_times_the_time_left():
    assert forecast_steps(0, [4.0, 12.0], 0, 0.0, timed=False) == 16
    # a budget of 60 s: 100 steps in the first 10 s foresee 600
    assert forecast_steps(100, [10.0, 50.0], 1, 0.0, timed=True) == 600
    assert forecast_steps(130, [10.0, 50.0], 1, 3.0, timed=True) == 130 + round(47 * 130 / 13)
    assert forecast_steps(0, [10.0, 50.0], 0, 0.0, timed=True) is None  # nothing timed yet


def test_a_short_run_trains_its_strong_phase_weak_exactly_as_the_weak_recipe(tiny_dataset, monkeypatch):
    policies = _record_policies(monkeypatch)
    short = fit(_tiny_default(strong_min_steps=17), tiny_dataset)  # 8 + 8 planned steps: under 17
    assert short.state.short_run is True and short.state.forecast_steps == 16
    assert set(policies) == {"weak"}
    weak_config = _tiny_default(strong_min_steps=0)
    weak_config = dataclasses.replace(weak_config, phases=tuple(dataclasses.replace(p, augment="weak")
                                                                for p in weak_config.phases))
    weak = fit(weak_config, tiny_dataset)
    assert _metrics(short.state.history) == _metrics(weak.state.history)
    for key, value in weak.model.state_dict().items():
        assert torch.equal(short.model.state_dict()[key], value), key

    policies.clear()
    long = fit(_tiny_default(strong_min_steps=16), tiny_dataset)  # not under 16: the strong policy stays
    assert long.state.short_run is False and {"weak", "strong"} == set(policies)


def test_under_a_time_budget_the_forecast_is_the_pace_of_the_phases_before(tiny_dataset, monkeypatch):
    _one_second_steps(monkeypatch)
    config = _tiny_default(time_budget=0.5)  # 28.8 s for the phases: 10% supervised, 3 one-second steps
    config = dataclasses.replace(config, phases=tuple(dataclasses.replace(p, epochs=100, hold_until_off_chance=False)
                                                      for p in config.phases))
    for least, short in ((31, True), (30, False)):
        result = fit(dataclasses.replace(config, strong_min_steps=least), tiny_dataset)
        assert result.state.forecast_steps == 30 and result.state.short_run is short  # 3 + 25.92 s at 3 / 2.88 s
        assert result.state.step == 3 + 26  # within a step: the first phase's overrun came out of no plan
