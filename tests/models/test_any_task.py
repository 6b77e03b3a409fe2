"""A task that is not Combo end to end: three label groups (3, 4 and 5 classes), 24x40 RGB
images, trained, predicted to a `file,<groups>` CSV, evaluated, exported and resumed.

Each group is drawn in its own colour channel over noise (red and green: a bar's
thickness; blue: how far apart its stripes are), so a few dozen steps of a width-8 compact net learn
it well above chance.
"""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch

from semilabel import faults
from semilabel.cli import main
from semilabel.config import PhaseConfig, load_config
from semilabel.data.readers import Dataset, ImageSet
from semilabel.data.schema import LabelGroup, LabelSchema, schema_yaml_text
from semilabel.data.submission import read_predictions, write_submission
from semilabel.errors import Interrupted
from semilabel.evaluate import evaluate_indices, evaluate_run
from semilabel.models.checkpoint import load_checkpoint, model_from_checkpoint
from semilabel.models.inference import predict

SCHEMA = LabelSchema((LabelGroup("red", ("left", "middle", "right")),
                      LabelGroup("green", ("top", "upper", "lower", "bottom")),
                      LabelGroup("blue", ("v", "w", "x", "y", "z"))))
H, W = 24, 40


RED_WIDTHS, GREEN_HEIGHTS = (3, 9, 15), (2, 5, 8, 11)


BLUE_PERIODS = (2, 3, 4, 6, 9)


def _blue_patch(k: int) -> np.ndarray:
    """Blue class k: a 16 x 18 patch of vertical stripes BLUE_PERIODS[k] px apart."""
    period = BLUE_PERIODS[k]
    return np.broadcast_to(np.arange(18) % period < max(1, period // 2), (16, 18))


def bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 24, 40, 3) uint8 images and their (n, 3) classes, each group drawn at a random
    place in its own colour channel over noise: red, a column 3, 9 or 15 px wide; green, a
    row 2 to 11 px high; blue, stripes 2 to 9 px apart."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, size, n) for size in SCHEMA.sizes], axis=1)
    images = rng.integers(0, 60, (n, H, W, 3)).astype(np.uint8)
    patches = [_blue_patch(k) for k in range(5)]
    for i, (r, g, b) in enumerate(labels):
        x = rng.integers(2, W - 2 - RED_WIDTHS[r])
        images[i, 2:-2, x: x + RED_WIDTHS[r], 0] = 230
        y = rng.integers(2, H - 2 - GREEN_HEIGHTS[g])
        images[i, y: y + GREEN_HEIGHTS[g], 2:-2, 1] = 230
        y, x = rng.integers(2, H - 18), rng.integers(2, W - 20)
        images[i, y: y + 16, x: x + 18, 2][patches[b]] = 230
    return images, labels


def names(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}_{i:03d}.png" for i in range(n))


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    x, y = bars(256, 0)
    u, uy = bars(64, 1)
    t, ty = bars(48, 2)
    return Dataset(ImageSet(x, y, "bars", files=names("l", 256)), ImageSet(u, uy, "bars/unlabeled"),
                   ImageSet(t, ty, "bars/test", files=names("t", 48)), SCHEMA)


def tiny_config():
    # 243 training images at batch 32: 8 steps an epoch; SESEMI and the strong policy run on 3
    # non-square channels; no EMA, so the best weights are the trained ones; the recipe weighs
    # Combo's groups, this task has others
    config = load_config("default")
    return dataclasses.replace(
        config, group_weights={}, width=8, batch_size=32, eval_batch_size=64, sesemi=True, pretext_batch_size=8, ema_decay=0.0,
        lr=0.01, strong_min_steps=0, device="cpu", precision="fp32", threads=1, tta=1, plateau_check_steps=0,
        phases=(PhaseConfig("supervised", epochs=6, augment="weak"),
                PhaseConfig("augmented", epochs=2, augment="strong", pretext_source="unlabeled")))


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    from semilabel.train.run import train_run

    out = tmp_path_factory.mktemp("bars") / "run"
    result = train_run(dataset, out, tiny_config(), quiet=True)
    return out, result


def test_trains_on_colour_non_square_images_and_records_their_geometry(run):
    out, result = run
    payload = load_checkpoint(out / "best.pt")
    assert payload["image_shape"] == [H, W] and payload["channels"] == 3
    model, config, schema = model_from_checkpoint(out)
    assert schema == SCHEMA and model.trained_image_shape == (H, W) and model.trained_channels == 3
    assert model.backbone.stem[0][0].in_channels == 3
    assert model.joint_head is not None and model.joint_head.out_features == 3 * 4 * 5
    test = result.summary["test"]
    assert test["count"] == 48
    # learnt after 64 steps: the bars well above chance, the groups on average too (the stripes
    # take longer), and whole combinations far above chance (1 in 60)
    above = {name: test[name] - 1 / size for name, size in zip(SCHEMA.names, SCHEMA.sizes)}
    assert above["red"] > 0.2 and above["green"] > 0.2 and sum(above.values()) / 3 > 0.2, test
    assert test["exact"] > 0.08, test


def write_folder(folder, images: np.ndarray, labels: np.ndarray | None, files: tuple[str, ...]) -> None:
    """An image folder as a user brings it: PNGs, labels.csv (file,<groups>) and schema.yaml."""
    from PIL import Image

    folder.mkdir(parents=True)
    for image, name in zip(images, files):
        Image.fromarray(image).save(folder / name)
    if labels is not None:
        write_submission(folder / "labels.csv", labels, SCHEMA, "groups", files=files)
        (folder / "schema.yaml").write_text(schema_yaml_text(SCHEMA))


def test_predicts_a_file_csv_that_evaluate_scores(run, dataset, tmp_path, capsys):
    out, result = run
    test = dataset.test
    folder = tmp_path / "test"
    order = np.arange(len(test))[::-1]  # labels.csv lists the files in another order than their names
    write_folder(folder, test.images, None, test.files)
    write_submission(folder / "labels.csv", test.labels[order], SCHEMA, "groups", files=[test.files[i] for i in order])
    (folder / "schema.yaml").write_text(schema_yaml_text(SCHEMA))
    csv_path = tmp_path / "predictions.csv"
    assert main(["predict", str(out), "--images", str(folder), "--out", str(csv_path)]) == 0
    with csv_path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["file", "red", "green", "blue"]
    assert [r[0] for r in rows[1:]] == [test.files[i] for i in order]  # one row per image, named as in its folder
    model, config, _ = model_from_checkpoint(out)  # the run's test-time copies, drawn for the images in this order
    expected = predict(model, test.images[order], tta=config.tta, policy=config.weak_augment).indices
    assert [r[1:] for r in rows[1:]] == [[g.classes[k] for g, k in zip(SCHEMA.groups, row)] for row in expected]
    files, back = read_predictions(csv_path, SCHEMA)
    assert files == [test.files[i] for i in order]
    np.testing.assert_array_equal(back, expected)
    # evaluate the CSV against labels listing the files in yet another order: matched by name
    labels_csv = tmp_path / "labels.csv"
    write_submission(labels_csv, test.labels, SCHEMA, "groups", files=test.files)
    (tmp_path / "schema.yaml").write_text(schema_yaml_text(SCHEMA))  # the classes in the task's order
    capsys.readouterr()
    assert main(["evaluate", "--predictions", str(csv_path), "--labels", str(labels_csv), "--out",
                 str(tmp_path / "evaluation")]) == 0
    printed = capsys.readouterr().out
    predicted = expected[np.argsort(order)]  # the CSV's rows in the labels' order
    direct = evaluate_indices(predicted, test.labels, SCHEMA)
    assert direct.table() in printed
    assert direct.exact.correct == int((predicted == test.labels).all(axis=1).sum())
    for g, group in enumerate(SCHEMA.groups):
        scored = direct.groups[group.name]
        assert scored.score.correct == int((predicted[:, g] == test.labels[:, g]).sum())
        assert scored.confusion.shape == (group.size, group.size) and scored.confusion.sum() == len(test)
        table = (tmp_path / "evaluation" / f"confusion_{group.name}.csv").read_text().splitlines()
        assert table[0] == "true\\predicted," + ",".join(group.classes)
        assert [int(v) for v in table[1].split(",")[1:]] == scored.confusion[0].tolist()
    # a run evaluated on the folder: the same scores (its labels read with its schema.yaml)
    again = evaluate_run(out, folder)
    assert again.to_dict() == evaluate_indices(expected, test.labels[order], SCHEMA).to_dict()


def test_predict_resizes_other_sizes_and_refuses_grey(run, dataset, tmp_path, capsys):
    out, _ = run
    big = np.repeat(np.repeat(dataset.test.images[:8], 2, axis=1), 2, axis=2)  # 48x80
    write_folder(tmp_path / "big", big, None, names("b", 8))
    args = ["predict", str(out), "--images", str(tmp_path / "big"), "--out", str(tmp_path / "big.csv")]
    assert main(args) == 0
    assert capsys.readouterr().err.splitlines() == [f"{tmp_path / 'big'}: images are 48x80 pixels, the model was "
                                                    f"trained on 24x40: resized to 24x40"]
    assert len(read_predictions(tmp_path / "big.csv", SCHEMA)[1]) == 8
    write_folder(tmp_path / "grey", dataset.test.images[:8, :, :, 0], None, names("g", 8))
    args = ["predict", str(out), "--images", str(tmp_path / "grey"), "--out", str(tmp_path / "grey.csv")]
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {tmp_path / 'grey'}: images are grey (1 channel), but "
                                                    f"the model was trained on colour (3 channels) images"]
    assert not (tmp_path / "grey.csv").exists()


def test_onnx_export_matches_pytorch(run, tmp_path):
    pytest.importorskip("onnxruntime")
    from semilabel.export import export_onnx, onnx_logits

    out, _ = run
    result = export_onnx(out, tmp_path / "bars.onnx")
    assert result.outputs == ["red", "green", "blue", "joint"]
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    import onnx

    graph = onnx.load(str(tmp_path / "bars.onnx")).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, H, W]
    model, _, _ = model_from_checkpoint(out)
    x = torch.rand(3, 3, H, W, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x).groups
    got = onnx_logits(tmp_path / "bars.onnx", x.numpy())
    for e, g in zip(expected, got):
        np.testing.assert_allclose(e.numpy(), g, atol=1e-4)


def test_resume_continues_as_the_uninterrupted_run(run, dataset, tmp_path, monkeypatch):
    from semilabel.train.run import train_run

    reference, _ = run
    out = tmp_path / "run"
    monkeypatch.setenv(faults.ENV, "step@11/INT")  # stop after the 11th step (inside the second epoch)
    monkeypatch.setattr(faults, "_counts", {})
    with pytest.raises(Interrupted):
        train_run(dataset, out, tiny_config(), quiet=True)
    monkeypatch.delenv(faults.ENV)
    assert load_checkpoint(out / "last.pt")["state"]["step"] == 11
    train_run(dataset, out, tiny_config(), quiet=True, resume=True)
    done, ref = load_checkpoint(out / "last.pt"), load_checkpoint(reference / "last.pt")
    assert done["state"]["step"] == ref["state"]["step"]
    for key, value in ref["model"].items():
        torch.testing.assert_close(done["model"][key], value, rtol=0, atol=0)
