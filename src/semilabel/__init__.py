"""semilabel: semi-supervised multi-label image classifiers (Combo images first).

The public API; the `semilabel` command wraps these calls.
"""

__version__ = "0.1.0"

from semilabel.api import data_style, make_dataset, make_example, run_demo  # noqa: E402
from semilabel.config import Config, PhaseConfig, apply_overrides, load_config  # noqa: E402
from semilabel.data.readers import Dataset, ImageSet, read_dataset, read_images, read_labels  # noqa: E402
from semilabel.data.schema import COMBO, LabelGroup, LabelSchema, read_schema_yaml  # noqa: E402
from semilabel.data.style_stats import StyleStats, measure_style  # noqa: E402
from semilabel.errors import SemilabelError  # noqa: E402
from semilabel.models.backbones import list_backbones  # noqa: E402
from semilabel.models.checkpoint import model_from_checkpoint  # noqa: E402
from semilabel.models.inference import predict  # noqa: E402
from semilabel.train.fit import fit  # noqa: E402
from semilabel.train.run import train_run  # noqa: E402

__all__ = [
    "COMBO", "Config", "Dataset", "ImageSet", "LabelGroup", "LabelSchema", "PhaseConfig", "SemilabelError", "StyleStats",
    "apply_overrides", "data_style", "fit", "list_backbones", "load_config", "make_dataset", "make_example",
    "measure_style", "model_from_checkpoint", "predict",
    "read_dataset", "read_images", "read_labels", "read_schema_yaml", "run_demo", "train_run",
]
