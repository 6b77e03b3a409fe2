"""Checkpoints: everything needed to predict with, or resume, a run.

Saved with `torch.save` to a temporary file and renamed, so a kill at any instant
leaves the previous checkpoint intact; loaded with `weights_only=True`, so a
checkpoint file cannot run code.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import torch

from semilabel.config import Config, config_from_dict, config_to_dict
from semilabel.data.schema import LabelSchema
from semilabel.errors import CheckpointError, ConfigError
from semilabel.io_utils import atomic_write, load_torch_file
from semilabel.device import memory_format
from semilabel.models.backbones import BackboneSpec, layout_revision
from semilabel.models.classifier import MultiHeadClassifier

LAST, BEST = "last.pt", "best.pt"
FORMAT_VERSION = 1


def build_model(config: Config, schema: LabelSchema, device: torch.device | None = None,
                heads: Collection[str] = ()) -> MultiHeadClassifier:
    """The network `config` describes, in its memory layout for `device` (None: the
    device `auto` picks here; see `device.use_channels_last`), for training and
    prediction alike. It stays on the CPU: the caller moves it. `heads`: the extra
    heads the training methods declare ("pretext": the rotation/flip head; training
    asks `train.methods.needed_heads`, a checkpoint's own weights tell `stored_heads`)."""
    model = MultiHeadClassifier(
        schema,
        BackboneSpec(config.backbone, config.width, config.input_size, pooling=config.pooling, blocks=config.blocks),
        pretext_head="pretext" in heads,
        joint_head=config.joint_head,
        dropout=config.dropout,
    )
    return model.to(memory_format=memory_format(config.channels_last, device))


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write `payload` (tensors, numbers, strings, lists, dicts) atomically."""
    payload = {"format": FORMAT_VERSION, **payload}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def resolve_checkpoint(path: str | Path, prefer: str = BEST) -> Path:
    """A run folder -> its best (else last) checkpoint; a file -> itself."""
    path = Path(path)
    if path.is_dir():
        for name in (prefer, LAST, BEST):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: no checkpoint ({BEST} or {LAST}) in this folder")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run folder")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint safely; a corrupt or foreign file is one clear CheckpointError."""
    path = Path(path)
    payload = load_torch_file(path, "semilabel checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION or "model" not in payload:
        raise CheckpointError(f"{path}: not a semilabel checkpoint (format {FORMAT_VERSION})")
    config = payload.get("config")
    backbone = config.get("backbone") if isinstance(config, dict) else None
    if isinstance(backbone, str):
        stored, built = payload.get("backbone_layout", 1), layout_revision(backbone)
        if stored != built:
            raise CheckpointError(f"{path}: trained with layout revision {stored} of the {backbone} backbone; this "
                                  f"version builds revision {built} (other strides): retrain it")
    return payload


def model_from_checkpoint(path: str | Path, schema: LabelSchema | None = None) -> tuple[MultiHeadClassifier, Config, LabelSchema]:
    """Rebuild the trained model from a checkpoint file or run folder.

    With `schema`, refuse a checkpoint trained for another label schema.
    """
    file = resolve_checkpoint(path)
    payload = load_checkpoint(file)
    try:
        config = config_from_dict(payload["config"])
        stored = LabelSchema.from_dict(payload["schema"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{file}: its stored config or schema is unreadable ({exc})") from None
    if schema is not None and stored != schema:
        raise CheckpointError(
            f"{file}: trained for label groups {stored.names} {stored.sizes}, but this data has {schema.names} {schema.sizes}"
        )
    model = build_model(config, stored, heads=stored_heads(payload["model"]))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{file}: weights do not fit the stored model ({str(exc).splitlines()[0]})") from None
    model.eval()
    shape = payload.get("image_shape")
    model.trained_image_shape = tuple(int(v) for v in shape) if shape else None  # (H, W) of the training images
    return model, config, stored


def checkpoint_meta(config: Config, schema: LabelSchema) -> dict:
    return {"config": config_to_dict(config), "schema": schema.to_dict(),
            "backbone_layout": layout_revision(config.backbone)}


def stored_heads(model_state: dict) -> set[str]:
    """The extra heads whose weights a checkpoint's model state holds."""
    found = isinstance(model_state, dict) and any(str(k).startswith("pretext_head.") for k in model_state)
    return {"pretext"} if found else set()
