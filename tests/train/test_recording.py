import dataclasses
import io

from semilabel.train.recording import PROGRESS_SECONDS, ProgressBar, RecordingSchedule


class _Log:
    def __init__(self):
        self.calls: list[tuple] = []

    def epoch_end(self, row, payload, is_best):
        self.calls.append(("epoch_end", row["epoch"], payload(), is_best))

    def periodic(self, payload):
        self.calls.append(("periodic", payload()))

    def progress(self, *args):
        self.calls.append(("progress", *args))


def _schedule(log, now, is_main=True, minutes=10.0, every=0):
    return RecordingSchedule(log, is_main, lambda: "payload", minutes, every, clock=lambda: now[0])


def test_progress_is_shown_at_most_every_half_second_and_at_each_epochs_last_step():
    log, now = _Log(), [0.0]
    schedule = _schedule(log, now)
    shown = []
    for step in range(1, 11):
        now[0] = step * 0.2
        schedule.after_step(step, last_in_epoch=step == 7, stopping=False,
                            progress=lambda step=step: shown.append(step) or ("p", step, 10, 1.0, ""))
    assert PROGRESS_SECONDS == 0.5
    assert shown == [1, 4, 7, 10]  # 0.2 s, then 0.8 s, the epoch's last step, 2.0 s
    assert [c[0] for c in log.calls] == ["progress"] * 4


def _saved_at(schedule, log, now, seconds_per_step, stop_at=None):
    saved = []
    for step in range(1, 10):
        now[0] = seconds_per_step * step
        before = len(log.calls)
        schedule.after_step(step, last_in_epoch=False, stopping=step == stop_at, progress=lambda: ("p", 0, 1, 0, ""))
        if ("periodic", "payload") in log.calls[before:]:
            saved.append(step)
    return saved


def test_last_is_saved_every_n_steps_every_m_minutes_and_when_stopping():
    log, now = _Log(), [0.0]
    assert _saved_at(_schedule(log, now, every=3), log, now, seconds_per_step=1.0) == [3, 6, 9]
    log, now = _Log(), [0.0]
    schedule = _schedule(log, now, minutes=1.0)
    # 25 s a step: more than a minute after the last save at steps 3 (75 s) and 6; step 8 stops
    assert _saved_at(schedule, log, now, seconds_per_step=25.0, stop_at=8) == [3, 6, 8]
    schedule.after_epoch({"epoch": 1}, is_best=True, stopping=False)
    schedule.after_epoch(None, is_best=False, stopping=True)  # no new row: the stop still saves
    schedule.after_epoch(None, is_best=False, stopping=False)
    assert log.calls[-2:] == [("epoch_end", 1, "payload", True), ("periodic", "payload")]


def test_other_ranks_record_nothing():
    log, now = _Log(), [100.0]
    schedule = _schedule(log, now, is_main=False, every=1)
    schedule.after_step(1, last_in_epoch=True, stopping=True, progress=lambda: ("p", 0, 1, 0, ""))
    schedule.after_epoch({"epoch": 1}, is_best=True, stopping=True)
    assert log.calls == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_drawn_on_a_terminal_only():
    for stream, drawn in ((_Terminal(), True), (io.StringIO(), False)):
        bar = ProgressBar(stream)
        for step in range(1, 5):
            bar.show("augmented", step, 4, 100.0, f"loss {1 / step:.3f}")
        bar.close()
        assert ("\r" in stream.getvalue()) is drawn and ("augmented" in stream.getvalue()) is drawn


def test_a_run_written_to_a_log_has_one_line_per_epoch_and_no_redrawn_bar(tiny_dataset, tiny_config, tmp_path, capsys):
    from semilabel.train.run import train_run

    config = dataclasses.replace(tiny_config, device="cpu", precision="fp32", checkpoint_every_steps=2)
    result = train_run(tiny_dataset, tmp_path / "run", config, quiet=False)
    out, err = capsys.readouterr()
    assert "\r" not in out + err
    lines = err.splitlines()
    epochs = len(result.fit.state.history)
    assert epochs == 3 and result.fit.state.step > epochs  # several steps an epoch: the bar had frames to draw
    assert len(lines) == 1 + epochs and lines[0].startswith("device cpu;"), lines  # the device line, then the epochs
    assert [line.split()[:3] for line in lines[1:]] == [["epoch", str(r["epoch"]), r["phase"]]
                                                        for r in result.fit.state.history]
