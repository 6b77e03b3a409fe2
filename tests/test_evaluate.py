"""`semilabel evaluate`: numbers against a hand computation, files, CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from eval_fixtures import N_TEST, tiny_run  # noqa: F401  (session fixture)

from semilabel.cli import main
from semilabel.data.readers import read_images, read_pickle_labels
from semilabel.data.safe_pickle import save_array_pickle
from semilabel.data.schema import COMBO
from semilabel.data.submission import write_submission
from semilabel.errors import DataError
from semilabel.evaluate import evaluate_indices, evaluate_predictions, evaluate_run, top_confused
from semilabel.metrics import accuracy_metrics
from semilabel.models.checkpoint import model_from_checkpoint
from semilabel.models.inference import predict

# five images: (digit, letter) indices; letters 0=a, 1=b, 2=c, 25=z
TARGET = np.array([[1, 0], [2, 1], [3, 2], [3, 2], [9, 25]])
PREDICTED = np.array([[1, 0], [2, 2], [5, 2], [5, 2], [9, 25]])


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval written out directly."""
    p = k / n
    centre = p + z**2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return (centre - spread) / (1 + z**2 / n), (centre + spread) / (1 + z**2 / n)


def test_hand_made_case():
    ev = evaluate_indices(PREDICTED, TARGET, COMBO)
    assert ev.count == 5
    # exact: rows 0 and 4; digit: rows 0, 1, 4; letter: rows 0, 2, 3, 4
    for score, k in ((ev.exact, 2), (ev.groups["digit"].score, 3), (ev.groups["letter"].score, 4)):
        assert (score.correct, score.total) == (k, 5)
        assert score.accuracy == pytest.approx(k / 5)
        low, high = wilson(k, 5)
        assert score.low == pytest.approx(low, abs=1e-12) and score.high == pytest.approx(high, abs=1e-12)
    assert ev.exact.low == pytest.approx(0.1176, abs=1e-4) and ev.exact.high == pytest.approx(0.7693, abs=1e-4)
    digit = ev.groups["digit"].confusion
    assert digit.shape == (10, 10) and digit.sum() == 5
    assert digit[3, 5] == 2 and digit[1, 1] == digit[2, 2] == digit[9, 9] == 1
    letter = ev.groups["letter"].confusion
    assert letter.shape == (26, 26) and letter[1, 2] == 1 and letter[2, 2] == 2 and letter.trace() == 4
    assert ev.groups["digit"].confused_pairs == [("3", "5", 2)]
    assert ev.groups["letter"].confused_pairs == [("b", "c", 1)]
    table = ev.table()
    assert "exact" in table and "40.00%" in table and "3->5 (2)" in table


def test_confused_pairs_are_top_ten_by_count_then_order():
    cm = np.zeros((12, 12), dtype=np.int64)
    for i in range(12):
        cm[i, (i + 1) % 12] = 1
    cm[7, 3] = 5
    cm[4, 4] = 99  # the diagonal never counts
    pairs = top_confused(cm, tuple("abcdefghijkl"))
    assert len(pairs) == 10
    assert pairs[0] == ("h", "d", 5)
    assert pairs[1:4] == [("a", "b", 1), ("b", "c", 1), ("c", "d", 1)]


def test_shape_mismatch_and_empty_are_data_errors():
    with pytest.raises(DataError, match="4 predictions but 5 labels"):
        evaluate_indices(PREDICTED[:4], TARGET, COMBO)
    with pytest.raises(DataError, match="no labelled images"):
        evaluate_indices(PREDICTED[:0], TARGET[:0], COMBO)


@pytest.mark.parametrize("labels_form", ["pickle", "npz", "csv"])
def test_evaluate_predictions_from_files(tmp_path, labels_form):
    sub = tmp_path / "sub.csv"
    write_submission(sub, PREDICTED, COMBO)
    if labels_form == "pickle":
        labels = tmp_path / "labels.pkl"
        save_array_pickle(COMBO.to_multihot(TARGET), labels)
    elif labels_form == "npz":
        labels = tmp_path / "labels.npz"
        np.savez(labels, y=COMBO.to_multihot(TARGET))
    else:
        labels = tmp_path / "labels.csv"
        write_submission(labels, TARGET, COMBO, style="groups")
    ev = evaluate_predictions(sub, labels, tmp_path / "out")
    assert (ev.exact.correct, ev.groups["digit"].score.correct, ev.groups["letter"].score.correct) == (2, 3, 4)
    with open(tmp_path / "out" / "confusion_digit.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["true\\predicted", *"0123456789"]
    assert rows[4][0] == "3" and rows[4][1 + 5] == "2"
    assert sum(int(v) for r in rows[1:] for v in r[1:]) == 5
    with open(tmp_path / "out" / "confusion_letter.csv", newline="") as fh:
        assert next(csv.reader(fh))[1:] == list("abcdefghijklmnopqrstuvwxyz")
    with open(tmp_path / "out" / "confused_pairs.csv", newline="") as fh:
        assert list(csv.reader(fh)) == [["group", "true", "predicted", "count"], ["digit", "3", "5", "2"],
                                        ["letter", "b", "c", "1"]]
    summary = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert summary["exact"]["correct"] == 2 and summary["count"] == 5
    assert summary["digit"]["ci95"] == pytest.approx(list(wilson(3, 5)))


def test_evaluate_predictions_row_count_mismatch(tmp_path):
    sub = tmp_path / "sub.csv"
    write_submission(sub, PREDICTED[:3], COMBO)
    np.savez(tmp_path / "y.npz", y=COMBO.to_multihot(TARGET))
    with pytest.raises(DataError, match="3 rows but .* 5 labels"):
        evaluate_predictions(sub, tmp_path / "y.npz")


def test_evaluate_run_matches_direct_prediction(tiny_run, tmp_path):
    labels = read_pickle_labels(tiny_run.data / "labels_test.pkl")
    ev = evaluate_run(tiny_run.run, tiny_run.data / "images_test.pkl", tiny_run.data / "labels_test.pkl",
                      out_dir=tmp_path / "ev")
    model, config, _ = model_from_checkpoint(tiny_run.run)
    images = read_images(tiny_run.data / "images_test.pkl").images
    pred = predict(model, images, tta=config.tta, policy=config.weak_augment).indices  # the run's own TTA
    direct = accuracy_metrics(pred, labels, COMBO.names)
    assert ev.count == N_TEST
    assert ev.exact.accuracy == pytest.approx(direct["exact"])
    assert ev.groups["letter"].score.accuracy == pytest.approx(direct["letter"])
    assert {p.name for p in ev.files} == {"confusion_digit.csv", "confusion_letter.csv", "confused_pairs.csv",
                                          "evaluation.json"}
    # an original-layout folder carries its own test labels
    same = evaluate_run(tiny_run.run, tiny_run.data)
    assert same.exact == ev.exact and not same.files


def test_evaluate_run_without_labels_is_an_error(tiny_run, tmp_path):
    np.savez(tmp_path / "x.npz", x=read_images(tiny_run.data).images[:4])
    with pytest.raises(DataError, match="--labels"):
        evaluate_run(tiny_run.run, tmp_path / "x.npz")
    with pytest.raises(DataError, match="4 images but"):
        evaluate_run(tiny_run.run, tmp_path / "x.npz", tiny_run.data / "labels_test.pkl")


def test_cli_evaluate_run_and_predictions(tiny_run, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", str(tiny_run.run), "--images", str(tiny_run.data / "images_test.pkl"),
                 "--labels", str(tiny_run.data / "labels_test.pkl"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{N_TEST} images" in text and "exact" in text and "95% interval" in text
    assert (out / "confusion_digit.csv").exists()
    sub = tmp_path / "sub.csv"
    assert main(["predict", str(tiny_run.run), "--images", str(tiny_run.data), "--out", str(sub)]) == 0
    assert main(["evaluate", "--predictions", str(sub), "--labels", str(tiny_run.data / "labels_test.pkl")]) == 0
    assert "most confused digit" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["evaluate"],
    ["evaluate", "--predictions", "sub.csv"],
    ["evaluate", "RUN", "--images", "x.pkl", "--predictions", "sub.csv", "--labels", "y.pkl"],
    ["evaluate", "no-such-run", "--images", "x.pkl", "--labels", "y.pkl"],
    ["evaluate", "--predictions", "no-such.csv", "--labels", "y.pkl"],
])
def test_cli_evaluate_errors_exit_2(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_the_runs_own_test_scores_are_what_evaluate_gives(tiny_run):
    """Training scores its test images plainly and with the run's test-time copies, the
    prediction `predict` and `evaluate` make by default."""
    summary = json.loads((tiny_run.run / "summary.json").read_text())
    assert summary["test_tta"]["copies"] == 4 and summary["test_tta"]["count"] == N_TEST
    assert summary["test_tta"]["exact"] == pytest.approx(evaluate_run(tiny_run.run, tiny_run.data).exact.accuracy)
    assert summary["test"]["exact"] == pytest.approx(evaluate_run(tiny_run.run, tiny_run.data, tta=0).exact.accuracy)


def test_group_names_that_are_paths_write_their_confusions_inside_the_folder(tmp_path):
    from semilabel.data.schema import LabelGroup, LabelSchema
    from semilabel.evaluate import evaluate_indices, write_evaluation

    schema = LabelSchema((LabelGroup("../up", ("a", "b")), LabelGroup("a/b", ("x", "y")), LabelGroup("a_b", ("p", "q"))))
    truth = np.array([[0, 1, 0], [1, 1, 1], [1, 0, 0]])
    out = tmp_path / "out"
    out.mkdir()
    ev = write_evaluation(evaluate_indices(truth[[0, 0, 2]], truth, schema), out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["confusion__up.csv", "confusion_a_b.csv", "confusion_a_b_3.csv", "confused_pairs.csv", "evaluation.json"])
    assert ev.files and all(p.parent == out for p in ev.files)
