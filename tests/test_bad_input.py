"""Everything `semilabel` refuses: exit code 2, one line on stderr, nothing written.

docs/errors.md lists the same cases and messages; keep the two in step.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from semilabel.cli import main
from semilabel.config import Config
from semilabel.data.safe_pickle import save_array_pickle
from semilabel.data.schema import COMBO, LabelGroup, LabelSchema
from semilabel.device import cuda_problem
from semilabel.errors import CheckpointError
from semilabel.models.checkpoint import build_model, checkpoint_meta, model_from_checkpoint, save_checkpoint

N = 20
BITS = "1" + "0" * 9 + "1" + "0" * 25  # digit 0, letter a
OTHER_SCHEMA = LabelSchema((LabelGroup("digit", tuple("0123456789")),))


def _labels(n: int = N) -> np.ndarray:
    rng = np.random.default_rng(1)
    return COMBO.to_multihot(np.stack([rng.integers(0, 10, n), rng.integers(0, 26, n)], 1))


def _dataset(folder: Path) -> Path:
    """A valid original-layout folder: N random 56x56 images with labels."""
    folder.mkdir(parents=True, exist_ok=True)
    save_array_pickle(np.random.default_rng(0).integers(0, 256, (N, 56, 56), dtype=np.uint8), folder / "images_l.pkl")
    save_array_pickle(_labels(), folder / "labels_l.pkl")
    return folder


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _refused(capsys, root: Path, argv: list, expected: str) -> None:
    """Run the CLI; it must exit 2 with exactly `error: <expected>` and write nothing under root."""
    capsys.readouterr()
    before = _snapshot(root)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.splitlines() == [f"error: {expected}"]
    assert _snapshot(root) == before


def _train(data: Path, root: Path, *extra) -> list:
    return ["train", data, "--out", root / "run", "--config", "pseudo", "--quiet", "--no-report", *extra]


def _images(array: np.ndarray) -> Callable[[Path], None]:
    return lambda d: save_array_pickle(array, d / "images_l.pkl")


def _with_bits(row: int, group: slice, count: int) -> Callable[[Path], None]:
    """Labels whose `row` has `count` bits set in the `group` columns."""
    def change(d: Path) -> None:
        labels = _labels()
        labels[row, group] = 0
        labels[row, group.start : group.start + count] = 1
        save_array_pickle(labels, d / "labels_l.pkl")
    return change


def _float_images(index: int, value: float, dtype=np.float32) -> np.ndarray:
    array = np.zeros((N, 56, 56), dtype)
    array[index, 3, 3] = value
    return array


class _RunsCode:
    """Unpickling this would create `path` (os.system); the reader must not run it."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


DATA_CASES = {
    "images and labels of different lengths": (
        lambda d: save_array_pickle(_labels(N - 1), d / "labels_l.pkl"),
        "{d}/images_l.pkl and labels_l.pkl: 20 images but 19 labels"),
    "images of the wrong rank": (
        _images(np.zeros((N, 56), np.uint8)),
        "{d}/images_l.pkl: images must have shape (N, H, W), (N, H, W, 3) or (N, 1, H, W), got (20, 56)"),
    "images with three channels": (
        _images(np.zeros((N, 3, 56, 56), np.uint8)),
        "{d}/images_l.pkl: images must have shape (N, H, W), (N, H, W, 3) or (N, 1, H, W), got (20, 3, 56, 56)"),
    "images too small": (
        _images(np.zeros((N, 4, 4), np.uint8)),
        "{d}/images_l.pkl: images of 4x4 pixels are too small"),
    "float images above 255": (
        _images(_float_images(2, 300.0)),
        "{d}/images_l.pkl: float images must lie in 0-1 or 0-255, found 0..300"),
    "negative float images": (
        _images(_float_images(2, -0.5)),
        "{d}/images_l.pkl: float images must lie in 0-1 or 0-255, found -0.5..0"),
    "NaN pixels": (
        _images(_float_images(5, np.nan)),
        "{d}/images_l.pkl: image 5 contains NaN or infinite pixels"),
    "infinite pixels": (
        _images(_float_images(6, np.inf, np.float64)),
        "{d}/images_l.pkl: image 6 contains NaN or infinite pixels"),
    "a label row with no digit bit": (
        _with_bits(4, slice(0, 10), 0),
        "{d}/labels_l.pkl: row 4: expected exactly one digit bit, found 0"),
    "a label row with two letter bits": (
        _with_bits(7, slice(10, 36), 2),
        "{d}/labels_l.pkl: row 7: expected exactly one letter bit, found 2"),
    "labels of the wrong width": (
        lambda d: save_array_pickle(_labels()[:, :35], d / "labels_l.pkl"),
        "{d}/labels_l.pkl: labels must have shape (N, 36) (10 digit + 26 letter bits), got (20, 35)"),
    "an empty file": (
        lambda d: (d / "images_l.pkl").write_bytes(b""),
        "{d}/images_l.pkl: file is empty"),
    "a truncated pickle": (
        lambda d: (d / "images_l.pkl").write_bytes((d / "images_l.pkl").read_bytes()[:5000]),
        "{d}/images_l.pkl: unsafe or invalid pickle (pickle data was truncated)"),
    "a pickle holding a list": (
        lambda d: (d / "images_l.pkl").write_bytes(pickle.dumps([1, 2, 3])),
        "{d}/images_l.pkl: expected a pickled NumPy array, found list"),
    "a pickle holding a dict": (
        lambda d: (d / "labels_l.pkl").write_bytes(pickle.dumps({"y": np.zeros(3)})),
        "{d}/labels_l.pkl: expected a pickled NumPy array, found dict"),
    "a pickle that would run code": (
        lambda d: (d / "images_l.pkl").write_bytes(pickle.dumps(_RunsCode(d / "ran"))),
        "{d}/images_l.pkl: unsafe or invalid pickle (refusing to load posix.system: only NumPy arrays are accepted)"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_training_data(case, tmp_path, capsys):
    change, message = DATA_CASES[case]
    data = _dataset(tmp_path / "data")
    change(data)
    _refused(capsys, tmp_path, _train(data, tmp_path), message.format(d=data))
    assert not (data / "ran").exists()


def test_truncated_and_empty_npz(tmp_path, capsys):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((N, 56, 56), np.uint8), y=_labels())
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _refused(capsys, tmp_path, _train(tmp_path / "cut.npz", tmp_path),
             f"{tmp_path / 'cut.npz'}: truncated or not an .npz file (BadZipFile)")
    (tmp_path / "empty.npz").write_bytes(b"")
    _refused(capsys, tmp_path, _train(tmp_path / "empty.npz", tmp_path), f"{tmp_path / 'empty.npz'}: file is empty")


def _png_folder(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.zeros((56, 56), np.uint8)).save(folder / f"{i}.png")
    (folder / "labels.csv").write_text("file,digit,letter\n" + "".join(f"{i}.png,1,a\n" for i in range(4)))
    return folder


def test_png_folder_with_a_non_image_file(tmp_path, capsys):
    data = _png_folder(tmp_path / "png")
    (data / "notes.png").write_text("not a picture")
    with (data / "labels.csv").open("a") as fh:
        fh.write("notes.png,2,b\n")
    _refused(capsys, tmp_path, _train(data, tmp_path), f"{data / 'notes.png'}: not a readable image (UnidentifiedImageError)")
    other = _png_folder(tmp_path / "png2")
    (other / "unlabeled").mkdir()
    (other / "unlabeled" / "readme.txt").write_text("x")
    _refused(capsys, tmp_path, _train(other, tmp_path),
             f"{other / 'unlabeled' / 'readme.txt'}: not an image file (expected .png, .jpg, .jpeg, .bmp, .gif, .tif, .tiff)")


def _task_folder(folder: Path, modes: tuple[str, ...] = ("L",) * 4) -> Path:
    """A task of two groups (shape, size) in a folder: one image per PIL mode in `modes`."""
    from PIL import Image

    folder.mkdir()
    for i, mode in enumerate(modes):
        Image.fromarray(np.zeros((24, 40), np.uint8)).convert(mode).save(folder / f"{i}.png")
    (folder / "labels.csv").write_text("file,shape,size\n" + "".join(f"{i}.png,circle,{i}\n" for i in range(len(modes))))
    return folder


def test_task_folder_refusals(tmp_path, capsys):
    mixed = _task_folder(tmp_path / "mixed", ("L", "L", "RGB", "L"))
    _refused(capsys, tmp_path, _train(mixed, tmp_path),
             f"{mixed}: mixed channels: 0.png is grey (L), 2.png is colour (RGB); convert them all to one kind")
    twice = _task_folder(tmp_path / "twice")
    (twice / "schema.yaml").write_text("groups:\n  - {name: shape, classes: [circle, square, circle]}\n")
    _refused(capsys, tmp_path, _train(twice, tmp_path), f"{twice / 'schema.yaml'}: group `shape` lists class `circle` twice")
    unknown = _task_folder(tmp_path / "unknown")
    (unknown / "test").mkdir()
    shutil.copy(unknown / "0.png", unknown / "test" / "0.png")
    (unknown / "test" / "labels.csv").write_text("file,shape,size\n0.png,circle,7\n")
    _refused(capsys, tmp_path, _train(unknown, tmp_path),
             f"{unknown / 'test' / 'labels.csv'}: row 0: size '7' is not one of 0, 1, 2, 3 "
             f"(the classes of {unknown / 'labels.csv'})")
    arrays = _dataset(tmp_path / "arrays")
    (arrays / "schema.yaml").write_text("groups:\n  - {name: shape, classes: [circle, square]}\n"
                                        "  - {name: size, classes: [s, m, l]}\n")
    _refused(capsys, tmp_path, _train(arrays, tmp_path),
             f"{arrays / 'labels_l.pkl'}: labels have 36 columns, but {arrays / 'schema.yaml'} describes "
             f"2 shape + 3 size = 5 bits (or 2 class-index columns)")


def test_submission_csv_with_a_missing_id(tmp_path, capsys):
    (tmp_path / "sub.csv").write_text(f"Id,Category\n0,{BITS}\n2,{BITS}\n")
    save_array_pickle(COMBO.to_multihot(np.zeros((2, 2), int)), tmp_path / "labels.pkl")
    _refused(capsys, tmp_path, ["evaluate", "--predictions", tmp_path / "sub.csv", "--labels", tmp_path / "labels.pkl"],
             f"{tmp_path / 'sub.csv'}: ids must be 0..1 once each (id 1 is missing)")


def _checkpoint(path: Path, schema: LabelSchema, data: Path) -> None:
    config = Config(width=8)
    save_checkpoint(path, {**checkpoint_meta(config, schema), "model": build_model(config, schema).state_dict(),
                           "state": {}, "data": str(data)})


def test_checkpoints_corrupt_foreign_or_for_another_schema(tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "last.pt").write_bytes(b"garbage" * 20)
    resume = ["train", "--resume", corrupt, "--quiet", "--no-report"]
    _refused(capsys, tmp_path, resume, f"{corrupt / 'last.pt'}: corrupt or not a semilabel checkpoint (UnpicklingError)")
    torch.save({"format": 99, "model": {}}, corrupt / "last.pt")
    _refused(capsys, tmp_path, resume, f"{corrupt / 'last.pt'}: not a semilabel checkpoint (format 1)")
    _checkpoint(corrupt / "last.pt", OTHER_SCHEMA, data)
    _refused(capsys, tmp_path, resume, f"{corrupt / 'last.pt'}: trained for label groups ('digit',) (10,), "
                                       f"but this data has ('digit', 'letter') (10, 26)")
    with pytest.raises(CheckpointError, match=r"trained for label groups \('digit',\) \(10,\), but this data has"):
        model_from_checkpoint(corrupt / "last.pt", schema=COMBO)


def test_outputs_that_exist_are_not_overwritten(tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"a run")
    _refused(capsys, tmp_path, _train(data, tmp_path),
             f"{run}: already holds a run (use --resume {run} to continue, or --force to overwrite)")
    _refused(capsys, tmp_path, ["make-data", "--out", data, "--n-labeled", "10"],
             f"{data}: already holds a dataset (pass --force to overwrite)")


def test_config_with_an_unknown_key_or_a_wrong_type(tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    (tmp_path / "typo.yaml").write_text("lerning_rate: 0.1\n")
    _refused(capsys, tmp_path, _train(data, tmp_path, "--config", tmp_path / "typo.yaml"),
             f"{tmp_path / 'typo.yaml'}: config key 'lerning_rate' is unknown")
    (tmp_path / "type.yaml").write_text("batch_size: big\n")
    _refused(capsys, tmp_path, _train(data, tmp_path, "--config", tmp_path / "type.yaml"),
             f"{tmp_path / 'type.yaml'}: config key 'batch_size': expected an integer, got 'big'")
    _refused(capsys, tmp_path, _train(data, tmp_path, "--set", "lr=fast"), "config key 'lr': expected a number, got 'fast'")
    _refused(capsys, tmp_path, _train(data, tmp_path, "--set", "phases.pseudo.epoch=3"),
             "config key 'phases[2].epoch' is unknown")


def test_unwritable_run_folder(tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "file.txt" / "run"
    _refused(capsys, tmp_path, ["train", data, "--out", out, "--quiet"],
             f"{out}: cannot create the run folder ({tmp_path / 'file.txt'} is a file)")
    if Path("/proc/self").exists():
        _refused(capsys, tmp_path, ["train", data, "--out", "/proc/forbidden", "--quiet"],
                 "/proc/forbidden: cannot write to the run folder (/proc is not a disk)")


def test_full_disk_is_refused_before_training(tmp_path, capsys, monkeypatch):
    data = _dataset(tmp_path / "data")
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=50 * 2**20))
    _refused(capsys, tmp_path, _train(data, tmp_path),
             f"{tmp_path / 'run'}: only 50 MiB free; training needs at least 200 MiB")


def test_disk_full_while_training_is_one_line(tmp_path, capsys, monkeypatch):
    """Not refused up front (the space ran out later), but still one line, exit 2."""
    data = _dataset(tmp_path / "data")

    def full(path, payload):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("semilabel.train.run.save_checkpoint", full)
    code = main([str(a) for a in _train(data, tmp_path, "--set", "width=8", "--set", "batch_size=32",
                                        "--set", "phases.augmented.enabled=false", "--set", "phases.pseudo.enabled=false",
                                        "--set", "threads=1")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [f"error: {tmp_path / 'run' / 'best.pt'}: cannot write the checkpoint "
                                f"(No space left on device); checkpoints already there are intact"]


def test_an_absent_or_mistyped_gpu_is_refused_before_the_run_folder(tmp_path, capsys, monkeypatch):
    data = _dataset(tmp_path / "data")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with one GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    _refused(capsys, tmp_path, _train(data, tmp_path, "--device", "cuda:1"),
             "--device cuda:1: this machine has 1 CUDA device (cuda:0)")
    _refused(capsys, tmp_path, _train(data, tmp_path, "--device", "cuda1"),
             "--device 'cuda1': expected auto, cpu, cuda or cuda:N")
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it: a fixed index would share one GPU
    monkeypatch.setenv("RANK", "0")
    _refused(capsys, tmp_path, _train(data, tmp_path, "--device", "cuda:0"),
             "--device cuda:0: under torchrun each process uses cuda:LOCAL_RANK; give --device cuda "
             "and choose the GPUs with CUDA_VISIBLE_DEVICES")
    assert not (tmp_path / "run").exists()


def test_unusable_device_and_resume_flags(tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    if not torch.cuda.is_available():
        _refused(capsys, tmp_path, _train(data, tmp_path, "--device", "cuda"),
                 f"--device cuda: no CUDA device is available ({cuda_problem()})")
    _refused(capsys, tmp_path, _train(data, tmp_path, "--device", "tpu"), "--device 'tpu': expected auto, cpu, cuda or cuda:N")
    run = tmp_path / "run"
    run.mkdir()
    _checkpoint(run / "last.pt", COMBO, data)
    _refused(capsys, tmp_path, ["train", "--resume", run, "--batch-size", "8"],
             "--resume continues with the run's own config; --batch-size cannot change it (start a new run instead)")
