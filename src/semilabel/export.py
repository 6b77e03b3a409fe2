"""Export a trained run to ONNX (`semilabel export --onnx`).

The graph takes `images` (B, C, H, W) float in 0-1 (B dynamic; C the channels and H x W
the size of the run's training images, recorded in its checkpoint: 1 and 56 x 56 for
older ones; colour images in RGB order) and returns one logits tensor per label group,
named after the group (`digit`, `letter`); a model with a joint head also returns `joint`.
The SESEMI pretext head is left out.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from semilabel.errors import SemilabelError
from semilabel.io_utils import atomic_write, refuse_existing
from semilabel.models.checkpoint import model_from_checkpoint, resolve_checkpoint
from semilabel.models.classifier import MultiHeadClassifier

INPUT_NAME = "images"
IMAGE_SIDE = 56
DEFAULT_OPSET = 17


class GroupLogits(nn.Module):
    """The classifier as a plain tensor -> tuple-of-tensors module (what ONNX exports)."""

    def __init__(self, model: MultiHeadClassifier):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # Heads applied directly: `forward_head` slices rows by `len(...)`, which tracing
        # would freeze to the example's batch size. (Dropout is the identity in eval.)
        features = self.model.forward_features(x)
        groups = tuple(head(features) for head in self.model.heads)
        joint = self.model.joint_head
        return (*groups, joint(features)) if joint is not None else groups


def input_shape(model: MultiHeadClassifier) -> tuple[int, int, int]:
    """(C, H, W) of the images the model was trained on (1 x 56 x 56 if its checkpoint predates the record)."""
    channels = getattr(model, "trained_channels", None) or 1
    return (channels, *(getattr(model, "trained_image_shape", None) or (IMAGE_SIDE, IMAGE_SIDE)))


def output_names(model: MultiHeadClassifier) -> list[str]:
    return [*model.schema.names, *(["joint"] if model.joint_head is not None else [])]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    checkpoint: Path
    outputs: list[str]
    max_abs_diff: float | None  # ONNX Runtime vs PyTorch on random images; None: not checked (no onnxruntime)


def export_onnx(run_or_ckpt: str | Path, out: str | Path, force: bool = False, opset: int | None = None,
                check: bool = True) -> ExportResult:
    """Write the run's best model as ONNX to `out` (atomically; refuses an existing
    file unless `force`); with `check` and onnxruntime installed, compare it with PyTorch.
    `opset` None: DEFAULT_OPSET, or the backbone's `min_onnx_opset` where that is higher
    (the `crops` backbone's affine grid needs 20)."""
    out = Path(out)
    refuse_existing(out, force)
    checkpoint = resolve_checkpoint(run_or_ckpt)
    model, _, _ = model_from_checkpoint(checkpoint)
    needed = max(DEFAULT_OPSET, getattr(model.backbone, "min_onnx_opset", DEFAULT_OPSET))
    if opset is not None and opset < needed:
        raise SemilabelError(f"--opset {opset}: this run's backbone needs opset {needed} or more")
    opset = opset or needed
    wrapper = GroupLogits(model).eval()
    names = output_names(model)
    example = torch.rand(2, *input_shape(model))
    axes = {name: {0: "batch"} for name in [INPUT_NAME, *names]}

    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notes
            torch.onnx.export(wrapper, (example,), str(tmp), input_names=[INPUT_NAME], output_names=names,
                              dynamic_axes=axes, opset_version=opset, dynamo=False)

    try:
        atomic_write(out, write)
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:  # pragma: no cover - exporter failure
        raise SemilabelError(f"{out}: ONNX export failed ({str(exc).splitlines()[0]})") from None
    diff = compare_onnx(model, out) if check and importlib.util.find_spec("onnxruntime") else None
    return ExportResult(out, checkpoint, names, diff)


def onnx_logits(path: str | Path, images: np.ndarray) -> list[np.ndarray]:
    """Run an exported model in ONNX Runtime on (B, C, H, W) float32 images in 0-1."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise SemilabelError("onnxruntime is not installed (pip install 'semilabel[export]')") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: images.astype(np.float32)})


@torch.no_grad()
def compare_onnx(model: MultiHeadClassifier, path: str | Path, batch: int = 5, seed: int = 0) -> float:
    """Largest absolute logit difference between PyTorch and ONNX Runtime on random images."""
    x = torch.rand(batch, *input_shape(model), generator=torch.Generator().manual_seed(seed))
    model.eval()
    out = model(x)
    expected = [*out.groups, *([out.joint] if out.joint is not None else [])]
    got = onnx_logits(path, x.numpy())
    return max(float(np.abs(e.numpy() - g).max()) for e, g in zip(expected, got))
