"""`semilabel predict`: CSV forms, inputs, --force, atomic writes and CLI errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from eval_fixtures import N_TEST, tiny_run  # noqa: F401  (session fixture)
from PIL import Image

from semilabel.cli import main
from semilabel.data.readers import read_images
from semilabel.data.schema import COMBO
from semilabel.data.submission import read_submission
from semilabel.errors import CheckpointError, ConfigError, DataError, OutputExistsError
from semilabel.models.checkpoint import model_from_checkpoint
from semilabel.models.inference import predict
from semilabel.predict import predict_images, predict_to_csv, torch_threads


def read_rows(path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def test_kaggle_csv_has_one_bit_per_group_and_matches_the_model(tiny_run, tmp_path):
    out = tmp_path / "sub.csv"
    result = predict_to_csv(tiny_run.run, tiny_run.data / "images_test.pkl", out)
    assert result.count == N_TEST and result.out == out and result.checkpoint.name == "best.pt"
    header, rows = read_rows(out)
    assert header == ["Id", "Category"]
    assert [int(r[0]) for r in rows] == list(range(N_TEST))
    for _, bits in rows:
        assert len(bits) == 36 and set(bits) <= {"0", "1"}
        assert bits[:10].count("1") == 1 and bits[10:].count("1") == 1
    model, config, _ = model_from_checkpoint(tiny_run.run)
    assert config.tta == 4  # predict averages over the run's test-time copies unless told otherwise
    images = read_images(tiny_run.data / "images_test.pkl").images
    expected = predict(model, images, tta=config.tta, policy=config.weak_augment).indices
    np.testing.assert_array_equal(read_submission(out, COMBO), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub.csv"]  # no temporary file left behind
    plain = predict_to_csv(tiny_run.run, tiny_run.data / "images_test.pkl", tmp_path / "plain.csv", tta=0).out
    np.testing.assert_array_equal(read_submission(plain, COMBO), predict(model, images).indices)


def test_groups_and_probability_forms(tiny_run, tmp_path):
    kaggle = predict_to_csv(tiny_run.run, tiny_run.data, tmp_path / "k.csv").out  # dataset folder -> its test images
    groups = predict_to_csv(tiny_run.run, tiny_run.data, tmp_path / "g.csv", style="groups").out
    probs = predict_to_csv(tiny_run.run, tiny_run.data, tmp_path / "p.csv", style="probabilities").out
    assert read_rows(groups)[0] == ["id", "digit", "letter"]
    header, rows = read_rows(probs)
    assert header == ["id", "digit", "letter", "digit_p", "letter_p"] and len(rows) == N_TEST
    values = np.array([[float(r[3]), float(r[4])] for r in rows])
    assert ((values > 0) & (values <= 1)).all()
    same = read_submission(kaggle, COMBO)
    np.testing.assert_array_equal(read_submission(groups, COMBO), same)
    np.testing.assert_array_equal(read_submission(probs, COMBO), same)


def test_npz_and_png_folder_inputs_give_the_same_predictions(tiny_run, tmp_path):
    images = read_images(tiny_run.data / "images_test.pkl").images[:7]
    np.savez(tmp_path / "x.npz", x=images)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    a = predict_to_csv(tiny_run.run, tmp_path / "x.npz", tmp_path / "a.csv").out
    b = predict_to_csv(tiny_run.run / "best.pt", folder, tmp_path / "b.csv", batch_size=3).out
    np.testing.assert_array_equal(read_submission(a, COMBO), read_submission(b, COMBO))
    assert len(read_submission(a, COMBO)) == 7


def test_tta_averages_the_plain_image_and_its_augmented_copies(tiny_run, tmp_path):
    """The copies are drawn in sequence from one seeded generator, so TTA with 1 and 2
    copies share the first: from the averages, each copy's own probabilities follow
    (2 p1 - p0, 3 p2 - 2 p1) and must be probability rows that differ from the plain
    image's. A blank image is blank after any rotation or shift: TTA changes nothing."""
    model, _, _ = model_from_checkpoint(tiny_run.run)
    images = read_images(tiny_run.data / "images_test.pkl").images[:16]
    p0, p1, p2 = (predict(model, images, tta=n).probs for n in (0, 1, 2))  # marginals: linear in the average
    for g in range(len(p0)):
        for copy in (2 * p1[g] - p0[g], 3 * p2[g] - 2 * p1[g]):
            assert copy.min() > -1e-5 and copy.max() < 1 + 1e-5
            np.testing.assert_allclose(copy.sum(axis=1), 1, atol=1e-4)
            assert np.abs(copy - p0[g]).max() > 1e-5  # the copies are augmented (the tiny model is nearly flat)
    blank = np.zeros((4, 56, 56), np.uint8)
    for a, b in zip(predict(model, blank).probs, predict(model, blank, tta=3).probs):
        np.testing.assert_allclose(a, b, atol=1e-6)
    out = predict_to_csv(tiny_run.run, tiny_run.data, tmp_path / "t.csv", tta=2, style="groups").out
    # decoded like plain prediction: the most probable digit-letter pair of the averaged distribution
    np.testing.assert_array_equal(read_submission(out, COMBO)[:16], predict(model, images, tta=2).indices)


def test_images_of_another_size_are_resized_saying_so_and_other_channels_refused(tiny_run, tmp_path, capsys):
    images = read_images(tiny_run.data / "images_test.pkl").images[:6]
    big = np.kron(images, np.ones((1, 2, 2), np.uint8))[:, 24:88, 24:88]  # 64x64
    np.savez(tmp_path / "big.npz", x=big)
    args = ["predict", str(tiny_run.run), "--images", str(tmp_path / "big.npz"), "--out", str(tmp_path / "s.csv")]
    assert main([*args, "--no-resize"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'big.npz'}[x]: images are 64x64 pixels, but the model was trained on 56x56"]
    assert not (tmp_path / "s.csv").exists()
    assert main(args) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"{tmp_path / 'big.npz'}[x]: images are 64x64 pixels, the model was trained on 56x56: resized to 56x56"]
    assert len(read_submission(tmp_path / "s.csv", COMBO)) == 6
    from semilabel.predict import resize_images

    assert resize_images(big, (56, 56)).shape == (6, 56, 56)
    np.testing.assert_array_equal(resize_images(images, (56, 56)), images)  # the same size: unchanged
    colour = np.repeat(images[..., None], 3, axis=3)  # the same images, as RGB
    assert resize_images(np.repeat(big[..., None], 3, axis=3), (56, 56)).shape == (6, 56, 56, 3)
    np.testing.assert_array_equal(resize_images(np.repeat(big[..., None], 3, axis=3), (56, 56))[..., 1],
                                  resize_images(big, (56, 56)))  # each channel as a grey image
    model, _, _ = model_from_checkpoint(tiny_run.run)
    with pytest.raises(DataError) as err:
        predict_images(model, colour, "colour.npz[x]")
    assert str(err.value) == "colour.npz[x]: images are colour (3 channels), but the model was trained on grey (1 channel) images"


def test_refuses_to_overwrite_without_force(tiny_run, tmp_path):
    out = tmp_path / "sub.csv"
    out.write_text("keep me\n")
    with pytest.raises(OutputExistsError, match="--force"):
        predict_to_csv(tiny_run.run, tiny_run.data, out)
    assert out.read_text() == "keep me\n"
    predict_to_csv(tiny_run.run, tiny_run.data, out, force=True)
    assert read_submission(out, COMBO).shape == (N_TEST, 2)


def test_bad_arguments_are_one_line_errors(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="--format"):
        predict_to_csv(tiny_run.run, tiny_run.data, tmp_path / "a.csv", style="xml")
    with pytest.raises(CheckpointError, match="no such (semilabel )?checkpoint"):
        predict_to_csv(tmp_path / "missing", tiny_run.data, tmp_path / "a.csv")
    with pytest.raises(DataError, match="no such file"):
        predict_to_csv(tiny_run.run, tmp_path / "nothing.pkl", tmp_path / "a.csv")
    assert not (tmp_path / "a.csv").exists()


def test_torch_threads_uses_every_core_and_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cli_predict(tiny_run, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    assert main(["predict", str(tiny_run.run), "--images", str(tiny_run.data / "images_test.pkl"),
                 "--out", str(out), "--format", "groups"]) == 0
    assert f"wrote {N_TEST} predictions" in capsys.readouterr().out
    assert read_rows(out)[0] == ["id", "digit", "letter"]
    # exists -> exit 2 and one line
    assert main(["predict", str(tiny_run.run), "--images", str(tiny_run.data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--force" in err and err.count("\n") == 1


@pytest.mark.parametrize("which", ["checkpoint", "images"])
def test_cli_missing_inputs_exit_2_with_one_line(tiny_run, tmp_path, capsys, which):
    model = tmp_path / "no-run" if which == "checkpoint" else tiny_run.run
    images = tmp_path / "no-images.pkl" if which == "images" else tiny_run.data
    code = main(["predict", str(model), "--images", str(images), "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert (str(model) if which == "checkpoint" else str(images)) in err
