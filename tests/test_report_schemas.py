"""The report's figures for a task other than Combo: three groups of 3, 5 and 40 classes,
colour images of 24x40 pixels and an untrained width-8 model (figures need no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_fixtures import tiny_config

from semilabel import report_figures as figs
from semilabel.data.readers import Dataset, ImageSet
from semilabel.data.schema import COMBO, LabelGroup, LabelSchema, group_file_names
from semilabel.gradcam import NoFeatureMap, grad_cam
from semilabel.metrics import confusion_matrix
from semilabel.models.checkpoint import build_model
from semilabel.models.inference import predict
from semilabel.report import STYLE_MD, RunInfo, cam_figures, mistakes_gallery, style_section

PNG = b"\x89PNG\r\n\x1a\n"
SCHEMA = LabelSchema((LabelGroup("shape", ("disc", "bar", "ring")),
                      LabelGroup("size", ("xs", "s", "m", "l", "xl")),
                      LabelGroup("code", tuple(f"c{i:02d}" for i in range(40)))))
N, H, W = 120, 24, 40


def colour_images(n: int = N, seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8: a bright rectangle of a random colour on a darker noisy background."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (n, H, W, 3)).astype(np.uint8)
    for image in images:
        top, left = rng.integers(0, H - 8), rng.integers(0, W - 12)
        image[top : top + 8, left : left + 12] = rng.integers(120, 256, 3)
    return images


def colour_model(**overrides: object):
    torch.manual_seed(0)
    return build_model(tiny_config(sesemi=False, **overrides), SCHEMA, image_shape=(H, W), channels=3)


@pytest.fixture(scope="module")
def model():
    return colour_model()


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.stack([rng.integers(0, size, N) for size in SCHEMA.sizes], axis=1)


def test_most_confused_classes_keeps_the_largest_confusions_up_to_30():
    cm = np.zeros((40, 40), np.int64)
    np.fill_diagonal(cm, 5)
    cm[3, 17], cm[25, 39], cm[8, 3] = 9, 7, 4  # the largest confusions
    cm[np.arange(40), (np.arange(40) + 1) % 40] += 1  # one each for every class
    keep = figs.most_confused_classes(cm)
    assert len(keep) == 30 and list(keep) == sorted(keep)
    assert {3, 17, 25, 39, 8} <= set(keep.tolist())
    assert list(figs.most_confused_classes(cm[:12, :12])) == list(range(12))  # small groups: every class


def test_untrained_model_figures_for_three_groups(model, labels, tmp_path):
    images = colour_images()
    pred = predict(model, images, batch_size=64)
    for g, group in enumerate(SCHEMA.groups):
        cm = confusion_matrix(pred.indices[:, g], labels[:, g], group.size)
        fig = figs.confusion_plot(cm, group.classes, group.name)
        shown = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert shown == [t.get_text() for t in fig.axes[0].get_yticklabels()]
        if group.size > 30:
            assert len(shown) == 30
            t, p = np.unravel_index(np.argmax(cm - np.diag(np.diag(cm))), cm.shape)
            assert {group.classes[t], group.classes[p]} <= set(shown)  # the largest confusion is in
        else:
            assert shown == list(group.classes)
        path = figs.confusion_figure(cm, group.classes, group.name, tmp_path / f"confusion_{group.name}.png")
        assert path.read_bytes().startswith(PNG)

    gallery = mistakes_gallery(images, labels, pred.indices, pred.probs, SCHEMA, "validation", tmp_path / "m.png")
    assert gallery is not None and gallery.read_bytes().startswith(PNG)
    assert mistakes_gallery(images, pred.indices, pred.indices, pred.probs, SCHEMA, "validation",
                            tmp_path / "none.png") is None  # nothing wrong: no gallery
    assert not (tmp_path / "none.png").exists()

    cams = cam_figures(model, ImageSet(images, labels, "numpy"), SCHEMA, tmp_path)
    assert [p.name for p in cams] == ["cam_shape.png", "cam_size.png", "cam_code.png"]
    assert all(p.read_bytes().startswith(PNG) for p in cams)


def test_grad_cam_maps_have_the_image_size_and_leave_the_model_as_it_was():
    """With average pooling, no joint head and zero head biases, each map sums to the
    predicted class's logit less the probability-weighted mean logit: positive, so no
    map is empty; a random image's map is not constant."""
    model = colour_model(pooling="avg", joint_head=False)
    for head in model.heads:
        torch.nn.init.zeros_(head.bias)
    images = colour_images(8, seed=3)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    maps = grad_cam(model, images)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm statistics too
    assert all(p.grad is None for p in model.parameters())
    assert maps.maps.shape == (3, 8, H, W) and maps.maps.dtype == np.float32
    assert maps.maps.min() >= 0 and np.allclose(maps.maps.max(axis=(2, 3)), 1)
    assert (maps.maps.std(axis=(2, 3)) > 0.01).all()  # every map varies over its image

    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2)).groups
    assert np.array_equal(maps.predicted, np.stack([lg.argmax(1).numpy() for lg in logits], axis=1))
    probs = [torch.softmax(lg, 1).numpy() for lg in logits]
    assert np.allclose(maps.confidence, np.stack([p.max(1) for p in probs], axis=1), atol=1e-5)


def test_grad_cam_refuses_a_backbone_that_reads_crops():
    model = build_model(tiny_config(backbone="crops"), COMBO)
    with pytest.raises(NoFeatureMap, match="not one map over each image"):
        grad_cam(model, np.zeros((2, 56, 56), np.uint8))


def test_figure_names_of_free_text_group_names_stay_in_the_folder():
    schema = LabelSchema(tuple(LabelGroup(name, ("x", "y")) for name in ("ink", "../up", "a/b", "a_b", "é 2", "")))
    assert group_file_names(schema.names, "cam_", ".png") == ["cam_ink.png", "cam__up.png", "cam_a_b.png", "cam_a_b_4.png",
                                           "cam_é_2.png", "cam_group.png"]


def test_data_style_table_is_for_combo_only(labels, tmp_path):
    images = colour_images()
    dataset = Dataset(ImageSet(images, labels, "numpy"), None, None, SCHEMA)
    info = RunInfo(tmp_path, [], {}, schema=SCHEMA, dataset=dataset)
    section = style_section(info, tmp_path, {})
    assert "Skipped" in section.note and "Combo" in section.note and not section.html
    assert not (tmp_path / STYLE_MD).exists()


def test_report_of_a_colour_task_with_three_groups(tmp_path):
    """The built-in numbers task (40x64 colour, tens/units/ink) and an untrained model: every
    data figure, one confusion matrix and one class map per group, no data style table."""
    from test_report import embedded_images

    from semilabel.api import make_example
    from semilabel.data.readers import read_dataset
    from semilabel.models.checkpoint import checkpoint_meta, save_checkpoint
    from semilabel.report import write_report

    data = make_example(tmp_path / "numbers", n_labeled=60, n_unlabeled=20, n_test=20).out_dir
    dataset = read_dataset(data)
    config = tiny_config()  # SESEMI on: its figure on non-square images
    torch.manual_seed(0)
    model = build_model(config, dataset.schema, image_shape=dataset.image_shape, channels=dataset.channels)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", {**checkpoint_meta(config, dataset.schema), "model": model.state_dict(),
                                      "data": str(data), "image_shape": list(dataset.image_shape),
                                      "channels": dataset.channels})
    page = write_report(run).read_text()
    written = {p.name for p in (run / "report").glob("*.png")}
    groups = ("tens", "units", "ink")
    assert written == {"label_histograms.png", "augmented_samples.png", "sesemi_samples.png", "misclassified.png",
                       *(f"confusion_{g}.png" for g in groups), *(f"cam_{g}.png" for g in groups)}
    assert len(embedded_images(page)) == len(written)
    assert "Where the network looks (Grad-CAM)" in page and "Misclassified validation images" in page
    assert all(f"<td>{g}</td>" in page for g in groups)  # per-group accuracy rows
    assert "Skipped: the table measures Combo images" in page and not (run / "report" / STYLE_MD).exists()
