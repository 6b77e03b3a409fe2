"""Predict with a trained run and write a submission CSV (`semilabel predict`)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semilabel.data.augment_policy import AugmentPolicy
from semilabel.data.readers import image_channels, read_images
from semilabel.data.schema import COMBO, LabelSchema
from semilabel.data.submission import write_submission
from semilabel.device import memory_format, resolve_device, run_device
from semilabel.distributed import DistInfo
from semilabel.errors import ConfigError, DataError
from semilabel.io_utils import refuse_existing
from semilabel.models.checkpoint import model_from_checkpoint, resolve_checkpoint
from semilabel.models.classifier import MultiHeadClassifier
from semilabel.models.geometry import colour_word
from semilabel.models.inference import Predictions, predict

STYLES = ("kaggle", "groups", "probabilities")


@dataclass(frozen=True)
class PredictResult:
    out: Path
    checkpoint: Path
    count: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.count / max(self.seconds, 1e-9)


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextmanager
def torch_threads(threads: int = 0) -> Iterator[None]:
    """Run torch on `threads` CPU threads (0 = every available core), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or cpu_count())
    try:
        yield
    finally:
        torch.set_num_threads(before)


def device_for(name: str | torch.device) -> torch.device:
    """auto | cpu | cuda | cuda:N -> a torch device (ConfigError if unavailable)."""
    return name if isinstance(name, torch.device) else resolve_device(name, DistInfo())


def resize_images(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, *shape) or (N, *shape, C) uint8, bilinear
    (antialiased when shrinking)."""
    import torch.nn.functional as F

    out = np.empty((len(images), *shape, *images.shape[3:]), np.uint8)
    for start in range(0, len(images), 1024):
        x = torch.from_numpy(images[start:start + 1024]).float()
        x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x.unsqueeze(1)  # (B, C, H, W)
        y = F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=True)
        y = y.permute(0, 2, 3, 1) if images.ndim == 4 else y.squeeze(1)
        out[start:start + 1024] = y.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def fit_image_size(model: MultiHeadClassifier, images: np.ndarray, source: str, resize: bool = True) -> np.ndarray:
    """The images at the size and channels the model was trained on. Another channel count
    (grey for a colour model, or colour for a grey one) is a DataError; another size is
    scaled to the trained one, saying so in one line on stderr (refused when not `resize`).
    Models from checkpoints without the record (grey, any size) pass as they are."""
    trained_channels = getattr(model, "trained_channels", None) or 1
    channels, size = image_channels(images), tuple(images.shape[1:3])
    if channels != trained_channels:
        raise DataError(f"{source}: images are {colour_word(channels)}, but the model was trained on "
                        f"{colour_word(trained_channels)} images")
    trained = getattr(model, "trained_image_shape", None)
    if trained is None or size == tuple(trained):
        return images
    if not resize:
        raise DataError(f"{source}: images are {size[0]}x{size[1]} pixels, but the model was trained "
                        f"on {trained[0]}x{trained[1]}")
    print(f"{source}: images are {size[0]}x{size[1]} pixels, the model was trained on {trained[0]}x{trained[1]}: "
          f"resized to {trained[0]}x{trained[1]}", file=sys.stderr, flush=True)
    return resize_images(images, tuple(trained))


def predict_images(model: MultiHeadClassifier, images: np.ndarray, source: str, batch_size: int = 512, tta: int = 0,
                   device: str | torch.device = "cpu", threads: int = 0,
                   policy: AugmentPolicy | None = None, resize: bool = True) -> Predictions:
    """`predict` on every core, turning a shape the network cannot take into a DataError;
    images of another size than the training images are resized to it, saying so
    (`fit_image_size`; refused when not `resize`), of another channel count refused.
    `policy`: the test-time augmentation (the run's weak policy)."""
    images = fit_image_size(model, images, source, resize)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if tta < 0:
        raise ConfigError(f"--tta must be 0 or more, got {tta}")
    dev = device_for(device)
    model.to(dev)
    with torch_threads(threads):
        try:
            return predict(model, images, batch_size, dev, tta=tta, policy=policy)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as exc:
            raise DataError(f"{source}: images of {images.shape[1]}x{images.shape[2]} pixels do not fit the model "
                            f"({str(exc).splitlines()[0]})") from None


def predict_as_run(model: MultiHeadClassifier, config, images: np.ndarray, source: str, batch_size: int = 512,
                   tta: int | None = None, device: str | None = None, threads: int = 0,
                   resize: bool = True) -> Predictions:
    """`predict_images` with a run's own choices where none is given: its `tta` (None),
    its device when usable here (None, see `run_device`) and its weak policy for the
    test-time copies."""
    dev = device_for(run_device(config.device) if device is None else device)
    model.to(memory_format=memory_format(config.channels_last, dev))  # the layout of the device it runs on
    return predict_images(model, images, source, batch_size, config.tta if tta is None else tta, dev, threads,
                          policy=config.weak_augment, resize=resize)


def default_style(schema: LabelSchema) -> str:
    """Combo's Kaggle layout (`Id,Category`) for Combo; `file,<groups...>` with class names otherwise."""
    return "kaggle" if schema == COMBO else "groups"


def predict_to_csv(checkpoint_or_run: str | Path, images_path: str | Path, out: str | Path, style: str | None = None,
                   tta: int | None = None, force: bool = False, batch_size: int = 512, device: str | None = None,
                   threads: int = 0, resize: bool = True) -> PredictResult:
    """Predict every image in `images_path` (pickle, .npz, image folder, original-layout
    folder) with the best checkpoint of a run and write `out` atomically.

    `style`: "kaggle" (`Id,Category` bits), "groups" (class names per group: Combo's
    `id,digit,letter`; any other schema's `file,<group names...>`, `file` the image's name
    in its folder or its row for arrays) or "probabilities" (groups plus the chosen
    classes' probabilities); None: kaggle for Combo, groups otherwise. `tta` > 0 averages
    over that many copies augmented by the run's weak policy (None: the run's own `tta`,
    4 in the built-in recipes; 0: plain prediction). Refuses an existing `out` unless `force`,
    and images of another channel count than the run's; images of another size are
    resized to the run's (one line on stderr; refused when not `resize`).
    `device` None: the run's own device when it is usable here (see `run_device`).
    """
    if style is not None and style not in STYLES:
        raise ConfigError(f"--format {style!r}: expected one of {', '.join(STYLES)}")
    out = Path(out)
    refuse_existing(out, force)
    if out.is_dir():
        raise DataError(f"{out}: is a folder; give a file name such as {out / 'submission.csv'}")
    started = time.monotonic()
    checkpoint = resolve_checkpoint(checkpoint_or_run)
    model, config, schema = model_from_checkpoint(checkpoint)
    style = style or default_style(schema)
    image_set = read_images(images_path, schema)
    pred = predict_as_run(model, config, image_set.images, image_set.source, batch_size, tta, device, threads, resize)
    write_submission(out, pred.indices, schema, style, pred.probs if style == "probabilities" else None,
                     files=getattr(image_set, "files", None))
    return PredictResult(out, checkpoint, len(image_set), time.monotonic() - started)
