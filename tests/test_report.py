"""`semilabel report`: every figure, one self-contained HTML page, missing data handled."""

from __future__ import annotations

import base64
import html
import re
import shutil

import pytest
import numpy as np
from eval_fixtures import N_TEST, tiny_run, untrained_checkpoint  # noqa: F401  (session fixture)

from semilabel.cli import main
from semilabel.data.readers import read_dataset
from semilabel.data.schema import COMBO
from semilabel.errors import SemilabelError
from semilabel.models.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from semilabel.report import write_report

PNG = b"\x89PNG\r\n\x1a\n"
DATA_FIGURES = {"label_histograms.png", "augmented_samples.png", "sesemi_samples.png", "confusion_digit.png",
                "confusion_letter.png", "misclassified.png", "cam_digit.png", "cam_letter.png"}
RUN_FIGURES = {"training_curves.png", "pseudo_labels.png", "consistency.png"}


def embedded_images(page: str) -> list[bytes]:
    """Every src= value must be an inline PNG; return the decoded images."""
    sources = re.findall(r"""src\s*=\s*["']([^"']*)["']""", page, flags=re.IGNORECASE)
    images = []
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:80]
        images.append(base64.b64decode(src.split(",", 1)[1], validate=True))
    return images


def assert_self_contained(page: str) -> None:
    lowered = page.lower()
    assert "http://" not in lowered and "https://" not in lowered and "file:" not in lowered
    assert "<link" not in lowered and "<script" not in lowered and "url(" not in lowered


def test_report_writes_every_figure_and_embeds_them(tiny_run, tmp_path):
    page_path = write_report(tiny_run.run, tmp_path / "report")
    assert page_path == tmp_path / "report" / "report.html"
    written = {p.name for p in (tmp_path / "report").glob("*.png")}
    assert DATA_FIGURES | RUN_FIGURES <= written
    for name in written:
        assert (tmp_path / "report" / name).read_bytes().startswith(PNG)
    page = page_path.read_text()
    assert_self_contained(page)
    images = embedded_images(page)
    assert len(images) == len(written)
    assert sorted(images) == sorted((tmp_path / "report" / name).read_bytes() for name in written)  # each one, once
    for heading in ("Training labels", "Augmented training samples", "SESEMI transforms", "Training curves",
                    "Validation confusion matrices", "Misclassified validation images",
                    "Where the network looks (Grad-CAM)", "Pseudo-labels",
                    "95% Wilson interval", "Data style", "symbol size p50 (px)"):
        assert heading in page
    assert "skipped" not in page.lower()


def test_missing_data_skips_data_figures_with_a_note(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run, run)
    for name in (BEST, LAST):
        payload = load_checkpoint(run / name)
        payload["data"] = str(tmp_path / "moved-away")
        save_checkpoint(run / name, payload)
    (run / "report").mkdir(exist_ok=True)
    (run / "report" / "label_histograms.png").write_bytes(PNG)  # from an earlier report: must not linger
    page = write_report(run).read_text()
    written = {p.name for p in (run / "report").glob("*.png")}
    assert written == RUN_FIGURES
    assert "moved-away" in page and "skipped" in page.lower()
    assert_self_contained(page)
    assert len(embedded_images(page)) == len(RUN_FIGURES)


def test_a_backbone_that_reads_crops_gets_a_note_instead_of_class_maps(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run, run)
    (run / LAST).unlink()
    untrained_checkpoint(run / BEST, COMBO, backbone="crops")
    payload = load_checkpoint(run / BEST)
    save_checkpoint(run / BEST, {**payload, "data": load_checkpoint(tiny_run.run / BEST)["data"]})
    page = html.unescape(write_report(run).read_text())
    assert "No class-activation maps: the CropReader backbone pools" in page
    written = {p.name for p in (run / "report").glob("*.png")}
    assert not any(name.startswith("cam_") for name in written)
    assert {"confusion_digit.png", "misclassified.png"} <= written


def test_without_a_validation_split_the_labelled_test_set_is_scored(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run, run)
    np.save(run / "val_index.npy", np.zeros(0, np.int64))
    page = html.unescape(write_report(run).read_text())
    assert "Test confusion matrices" in page and "Test images, best checkpoint" in page
    assert re.search(rf"<td>exact</td><td>\d+</td><td>{N_TEST}</td>", page)
    written = {p.name for p in (run / "report").glob("*.png")}
    assert {"cam_digit.png", "cam_letter.png", "confusion_letter.png"} <= written


def test_run_without_metrics_or_checkpoint_is_refused(tmp_path):
    with pytest.raises(SemilabelError, match="not a run folder"):
        write_report(tmp_path)
    with pytest.raises(SemilabelError, match="no such run folder"):
        write_report(tmp_path / "nope")


def test_cli_report_defaults_to_the_run_folder(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run, run)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"report: {run / 'report' / 'report.html'}"
    # the data style table comes first, as written beside the page
    assert "\n".join(out[:-1]) == (run / "report" / "data_style.md").read_text().rstrip()
    assert out[0].startswith("| statistic | this run's data | original")
    assert (run / "report" / "training_curves.png").exists()
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_report_data_style_of_any_set(tiny_run, tiny_combo_dir, tmp_path, capsys):
    """`report --data DIR --against DIR2`: one table, a column per set, nothing written."""
    before = set(tiny_run.data.iterdir())
    assert main(["report", "--data", str(tiny_run.data), "--against", str(tiny_combo_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"| statistic | {tiny_run.data} | {tiny_combo_dir} | original (ORIGINAL_DATA.md) |"
    n_data = sum(len(p) for p in (read_dataset(tiny_run.data).labeled, read_dataset(tiny_run.data).test,
                                  read_dataset(tiny_run.data).unlabeled))
    assert lines[2] == f"| images measured | {n_data} | 66 | |"  # every part of both sets (16 + 20 + 30)
    assert set(tiny_run.data.iterdir()) == before
    # a run page can carry another set's column too
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run, run)
    assert main(["report", str(run), "--against", str(tiny_combo_dir)]) == 0
    page = (run / "report" / "report.html").read_text()
    assert "Data style" in page and html.escape(str(tiny_combo_dir)) in page
    capsys.readouterr()
    assert main(["report", str(run), "--data", str(tiny_run.data)]) == 2
    assert "give no RUN_DIR" in capsys.readouterr().err
    assert main(["report", "--data", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope" in err and err.count("\n") == 1


def _curve_run(source, folder, labels, with_unlabeled: bool, exact: float, data: str | None = None):
    """A copy of `source` posing as a run of the label curve: its label count, kind and test score."""
    import json

    import yaml

    shutil.copytree(source, folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config.update(labeled_limit=labels, use_unlabeled=with_unlabeled, methods="fixmatch" if with_unlabeled else "none")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "test": {"exact": exact}}))
    if data is not None:
        for name in (BEST, LAST):
            if (folder / name).exists():
                save_checkpoint(folder / name, {**load_checkpoint(folder / name), "data": data})


def test_a_run_of_a_label_curve_shows_the_curve_of_the_runs_beside_it(tiny_run, tmp_path):
    runs = tmp_path / "runs"
    _curve_run(tiny_run.run, runs / "l40-with", 40, True, 0.30)
    _curve_run(tiny_run.run, runs / "l40-without", 40, False, 0.20)
    _curve_run(tiny_run.run, runs / "l80-without", 80, False, 0.35)
    _curve_run(tiny_run.run, runs / "other-data", 80, True, 0.99, data=str(tmp_path / "elsewhere"))
    (runs / "notes").mkdir()  # a folder that is no run
    page = write_report(runs / "l40-with", tmp_path / "report").read_text()
    assert "Label curve" in page and (tmp_path / "report" / "label_curve.png").read_bytes().startswith(PNG)
    table = page[page.index("Label curve"):]
    assert [m.group(1) for m in re.finditer(r"<tr><td>([^<]+)</td>", table)] == ["l40-without", "l40-with",
                                                                                 "l80-without"]
    assert "<td>30.00%</td>" in table and "99.00%" not in table  # the other data's run is not a point
    # a run alone on its data, or one trained without --labels, is part of no curve
    alone = tmp_path / "alone"
    _curve_run(tiny_run.run, alone / "l40-with", 40, True, 0.30)
    assert "Label curve" not in write_report(alone / "l40-with", tmp_path / "report-alone").read_text()
    full = runs / "all-labels"
    _curve_run(tiny_run.run, full, None, False, 0.5)
    assert "Label curve" not in write_report(full, tmp_path / "report-full").read_text()
