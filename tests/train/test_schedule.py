import pytest

from semilabel.train.schedule import lengthen_span, lr_at, run_progress


def test_cosine_warms_up_peaks_and_decays():
    values = [lr_at(p / 100, 1.0, "cosine", warmup=0.1) for p in range(101)]
    assert values[0] == pytest.approx(0.1)
    assert max(values) == pytest.approx(1.0, abs=1e-3) and values.index(max(values)) == 10
    assert values[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_onecycle_and_constant():
    assert lr_at(0.3, 1.0, "onecycle") == pytest.approx(1.0)
    assert lr_at(1.0, 1.0, "onecycle") < 1e-3
    assert lr_at(0.7, 0.5, "constant") == 0.5


def test_run_progress_spans_all_phases():
    spans = [10.0, 30.0, 60.0]
    assert run_progress(0, 0.0, spans) == 0.0
    assert run_progress(0, 1.0, spans) == pytest.approx(0.1)
    assert run_progress(1, 0.5, spans) == pytest.approx(0.25)
    assert run_progress(2, 1.0, spans) == pytest.approx(1.0)
    # a phase's end and the next phase's start are the same point on the curve
    assert run_progress(1, 1.0, spans) == pytest.approx(run_progress(2, 0.0, spans))


def test_lengthening_a_span_takes_from_the_later_phases_and_keeps_the_total():
    spans = [10.0, 30.0, 60.0]
    assert lengthen_span(spans, 0, 9.0, limit=50.0)
    assert spans == pytest.approx([19.0, 27.0, 54.0])  # 9 taken from 30 and 60 in proportion
    assert sum(spans) == pytest.approx(100.0)
    assert lengthen_span(spans, 0, 100.0, limit=50.0) and spans[0] == pytest.approx(50.0)
    assert not lengthen_span(spans, 0, 1.0, limit=50.0)  # at the limit
    assert spans == pytest.approx([50.0, 50 * 27 / 81, 50 * 54 / 81]) and sum(spans) == pytest.approx(100.0)
    last = [10.0, 30.0]
    assert not lengthen_span(last, 1, 5.0, limit=100.0) and last == [10.0, 30.0]  # nothing after the last phase
