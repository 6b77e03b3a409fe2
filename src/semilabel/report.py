"""A run's report (`semilabel report RUN_DIR`): PNG figures and one self-contained
HTML page (images embedded as data URIs, so it opens offline and can be mailed).

Figures that need the training data (histograms, samples, validation confusion,
mistakes and class-activation maps) read the dataset named in the checkpoint; if it is
gone, the page says so and shows the rest. Every figure works for any label schema and
for grey or colour images; only the data style table is Combo's.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from semilabel import report_figures as figs
from semilabel.config import Config
from semilabel.data.augment import PRETEXT_TRANSFORMS, SHAPE_KEEPING, apply_pretext
from semilabel.data.augment_policy import apply_policy
from semilabel.data.npy import read_npy
from semilabel.data.readers import Dataset, ImageSet, read_dataset
from semilabel.data.schema import COMBO, LabelSchema, group_file_names
from semilabel.data.splits import split_validation
from semilabel.errors import OutputExistsError, SemilabelError
from semilabel.evaluate import Evaluation, evaluate_indices
from semilabel.gradcam import NoFeatureMap, grad_cam
from semilabel.io_utils import atomic_write_text
from semilabel.models.classifier import MultiHeadClassifier
from semilabel.models.run_folder import CONFIG_YAML, METRICS_CSV, SUMMARY_JSON, VAL_INDEX, short_run_note
from semilabel.plots import save_image_grid
from semilabel.run_curve import curve_points

REPORT_DIR = "report"
REPORT_HTML = "report.html"
STYLE_MD = "data_style.md"  # the data style table, also in the page
TRANSFORM_TITLES = {"rot0": "rot0 (as is)", "rot90": "rot90", "rot180": "rot180", "rot270": "rot270",
                    "hflip": "hflip (mirror)", "vflip": "vflip (upside down)"}
FIGURES = ("label_histograms", "augmented_samples", "sesemi_samples", "training_curves", "misclassified",
           "pseudo_labels", "consistency")  # plus confusion_<group> and cam_<group>
PER_GROUP = ("confusion_", "cam_")  # figure name prefixes, one figure per label group
MAX_MISTAKES = 32
CAM_IMAGES = 6  # images per class-activation figure (Grad-CAM costs one forward and G backwards)
GRID_DPI = 120  # image grids: captions stay legible at page width


@dataclass
class Section:
    title: str
    images: list[Path] = field(default_factory=list)
    text: str = ""  # short caption (plain text)
    note: str = ""  # why something is missing (plain text)
    html: str = ""  # a table, already escaped


@dataclass
class RunInfo:
    """What the report reads from a run folder."""

    run_dir: Path
    rows: list[figs.Row]
    summary: dict
    config: Config | None = None
    model: MultiHeadClassifier | None = None
    schema: LabelSchema | None = None
    data_path: str | None = None
    dataset: Dataset | None = None
    val_index: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)


def read_metrics(path: Path) -> list[figs.Row]:
    """metrics.csv -> rows with numbers as float, empty cells as None."""
    if not path.exists():
        return []

    def value(text: str | None) -> object:
        if text is None or text == "":
            return None
        try:
            return float(text)
        except ValueError:
            return text

    with path.open(newline="") as fh:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def load_run(run_dir: Path) -> RunInfo:
    """Read metrics, summary, the best checkpoint and (if still there) the dataset."""
    from semilabel.models.checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint

    summary, problems = {}, []
    if (run_dir / SUMMARY_JSON).exists():
        try:
            summary = json.loads((run_dir / SUMMARY_JSON).read_text())
        except (ValueError, UnicodeDecodeError):
            problems.append(f"{run_dir / SUMMARY_JSON} is unreadable; summary figures omitted")
    info = RunInfo(run_dir, read_metrics(run_dir / METRICS_CSV), summary, problems=problems)
    try:
        checkpoint = resolve_checkpoint(run_dir)
        info.data_path = load_checkpoint(checkpoint).get("data")
        info.model, info.config, info.schema = model_from_checkpoint(checkpoint)
    except SemilabelError as exc:
        info.problems.append(f"no usable checkpoint ({exc})")
        return info
    if not info.data_path:
        info.problems.append("the checkpoint does not name its training data")
        return info
    try:
        info.dataset = read_dataset(info.data_path, info.schema)
    except SemilabelError as exc:
        info.problems.append(f"training data not readable: {exc}")
        return info
    n = len(info.dataset.labeled)
    try:
        index = read_npy(run_dir / VAL_INDEX) if (run_dir / VAL_INDEX).exists() else \
            split_validation(n, info.config.val_fraction, info.config.seed, keep=info.config.labeled_limit,
                             val_min=info.config.val_min)[1]
    except SemilabelError as exc:
        info.problems.append(f"validation split not readable: {exc}")
        info.dataset = None
        return info
    if len(index) and index.max() >= n:
        info.problems.append(f"val_index.npy points past the {n} labelled images of {info.data_path}; data changed?")
        info.dataset = None
        return info
    info.val_index = index
    return info


# ---- figures ------------------------------------------------------------------------------------
def _names(schema, labels: np.ndarray, sep: str = "") -> list[str]:
    return [sep.join(row) for row in schema.names_of(labels)]


def _pick(n: int, k: int, seed: int = 0) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=min(k, n), replace=False))


def _to_batch(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, 3) -> float (N, C, H, W) in 0-1, as the augmentations take it."""
    x = torch.from_numpy(images).float().div(255)
    return x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)


def _from_batch(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in 0-1 -> uint8 (N, H, W) for one channel, else (N, H, W, C)."""
    x = x.mul(255).round().clamp(0, 255).byte()
    return (x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)).numpy()


def augmented_grid(info: RunInfo, path: Path) -> Path:
    """Eight labelled originals, then two draws of the weak and two of the strong policy."""
    cfg, labeled = info.config, info.dataset.labeled
    pick = _pick(len(labeled), 8)
    x = _to_batch(labeled.images[pick])
    gen = torch.Generator().manual_seed(0)
    copies = [apply_policy(x, policy, generator=gen)
              for policy in (cfg.weak_augment, cfg.weak_augment, cfg.strong_augment, cfg.strong_augment)]
    images = _from_batch(torch.cat([x, *copies]))
    titles = _names(info.schema, labeled.labels[pick], " ") * 5
    weak, strong = cfg.weak_augment, cfg.strong_augment
    save_image_grid(images, titles, path, columns=len(pick), dpi=GRID_DPI,
                    title=f"Top row: labelled originals. Rows 2-3: the weak policy (up to ±{weak.rotate_deg:g}°, "
                          f"±{weak.translate:.0%} shift).\nRows 4-5: the strong policy (up to ±{strong.rotate_deg:g}°, "
                          f"±{strong.translate:.0%} shift, scale, shear and {strong.n_random} random pixel ops each)")
    return path


def sesemi_grid(info: RunInfo, path: Path) -> Path:
    """Four images under each transform the pretext head learns: all six on square images,
    no quarter turn on others (training draws none: data.augment.SHAPE_KEEPING)."""
    source = info.dataset.unlabeled or info.dataset.labeled
    pick = _pick(len(source), 4, seed=1)
    square = source.images.shape[1] == source.images.shape[2]
    kinds = list(range(len(PRETEXT_TRANSFORMS))) if square else list(SHAPE_KEEPING)
    x = _to_batch(source.images[pick]).repeat_interleave(len(kinds), dim=0)
    images = _from_batch(apply_pretext(x, torch.tensor(kinds).repeat(len(pick))))
    titles = [TRANSFORM_TITLES.get(PRETEXT_TRANSFORMS[k], PRETEXT_TRANSFORMS[k]) for k in kinds] * len(pick)
    title = ("Each row: one image under the six transforms\nthe pretext head must tell apart" if square else
             "Each row: one image under the four transforms\nthe pretext head must tell apart\n"
             "(no quarter turns: the images are not square)")
    save_image_grid(images, titles, path, columns=len(kinds), dpi=GRID_DPI, title=title)
    return path


def scored_split(info: RunInfo) -> tuple[ImageSet, str] | None:
    """The labelled images the report scores, and their name: the validation split, else a
    labelled test set."""
    if info.val_index is not None and len(info.val_index):
        return info.dataset.labeled.subset(info.val_index), "validation"
    test = info.dataset.test
    if test is not None and test.labels is not None and len(test):
        return test, "test"
    return None


@dataclass
class Scored:
    """The figures of the scored split (see `scored_split`)."""

    what: str  # "validation" or "test"
    evaluation: Evaluation
    confusions: list[Path]
    gallery: Path | None
    cams: list[Path]
    cam_note: str = ""  # why there are no class-activation maps


def mistakes_gallery(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, probs: list[np.ndarray],
                     schema: LabelSchema, what: str, path: Path) -> Path | None:
    """Up to MAX_MISTAKES images with any group wrong (None when there is none)."""
    wrong_rows = (indices != labels).any(axis=1)
    wrong = np.flatnonzero(wrong_rows)[:MAX_MISTAKES]
    if not len(wrong):
        return None
    confidence = np.stack([p[wrong, indices[wrong, g]] for g, p in enumerate(probs)], axis=1)
    return figs.mistakes_figure(images[wrong], labels[wrong], indices[wrong], confidence, schema, path,
                                f"Wrong {what} predictions: {len(wrong)} of {int(wrong_rows.sum())} images "
                                f"with a group wrong (red: true → predicted; % = predicted class's probability)")


def cam_figures(model: MultiHeadClassifier, scored: ImageSet, schema: LabelSchema, out_dir: Path) -> list[Path]:
    """One Grad-CAM figure per group (`cam_<group>.png`) over CAM_IMAGES images of `scored`."""
    pick = _pick(len(scored), CAM_IMAGES, seed=2)
    images, labels = scored.images[pick], scored.labels[pick]
    maps = grad_cam(model, images)
    return [figs.cam_figure(images, maps.maps[g], [group.classes[i] for i in labels[:, g]],
                            [group.classes[i] for i in maps.predicted[:, g]], maps.confidence[:, g], group.name,
                            out_dir / file)
            for g, (group, file) in enumerate(zip(schema.groups, group_file_names(schema.names, "cam_", ".png")))]


def scored_figures(info: RunInfo, out_dir: Path) -> Scored:
    """Predict the scored split with the best checkpoint: confusion matrices, the gallery
    of mistakes and the class-activation maps."""
    from semilabel.device import run_device
    from semilabel.predict import predict_images

    part, what = scored_split(info)
    pred = predict_images(info.model, part.images, part.source, info.config.eval_batch_size,
                          device=run_device(info.config.device))
    evaluation = evaluate_indices(pred.indices, part.labels, info.schema)
    confusions = [figs.confusion_figure(g.confusion, g.classes, name, out_dir / file, f"{what} images")
                  for (name, g), file in zip(evaluation.groups.items(), group_file_names(info.schema.names, "confusion_", ".png"))]
    gallery = mistakes_gallery(part.images, part.labels, pred.indices, pred.probs, info.schema, what,
                               out_dir / "misclassified.png")
    try:
        return Scored(what, evaluation, confusions, gallery, cam_figures(info.model, part, info.schema, out_dir))
    except NoFeatureMap as exc:
        return Scored(what, evaluation, confusions, gallery, [], f"No class-activation maps: {exc}.")


def build_sections(info: RunInfo, out_dir: Path) -> tuple[list[Section], Scored | None]:
    sections: list[Section] = []
    missing = "the training data or checkpoint is not available (see the note above)"
    group_names = tuple(info.schema.names) if info.schema is not None else ()
    scored = None
    if info.dataset is not None:
        train = np.setdiff1d(np.arange(len(info.dataset.labeled)), info.val_index)
        labels = info.dataset.labeled.labels[train]
        sections.append(Section("Training labels", [figs.label_histograms(
            labels, info.schema, out_dir / "label_histograms.png", "training images")],
            f"Labelled images used for training (validation split excluded), from {info.data_path}."))
        sections.append(Section("Augmented training samples", [augmented_grid(info, out_dir / "augmented_samples.png")]))
        if info.config is not None and info.config.sesemi:
            sections.append(Section("SESEMI transforms", [sesemi_grid(info, out_dir / "sesemi_samples.png")],
                                    "The self-supervised head learns which rotation or flip was applied."))
    else:
        sections.append(Section("Training data", note=f"Data figures skipped: {missing}."))
    if info.rows:
        sections.append(Section("Training curves", [figs.training_curves(info.rows, group_names,
                                                                          out_dir / "training_curves.png")],
                                "Dashed vertical lines mark phase boundaries."))
    else:
        sections.append(Section("Training curves", note=f"No {METRICS_CSV} in {info.run_dir}."))
    if info.dataset is not None and scored_split(info) is not None:
        scored = scored_figures(info, out_dir)
        what = scored.what
        sections.append(Section(f"{what.capitalize()} confusion matrices (best checkpoint)", scored.confusions,
                                f"Rows: true class; columns: predicted; numbers are image counts. A group of more "
                                f"than {figs.MAX_CONFUSION_CLASSES} classes shows only the classes of its largest "
                                f"confusions."))
        sections.append(Section(f"Misclassified {what} images", [scored.gallery] if scored.gallery else [],
                                "Each wrongly predicted image with, per group, the true and predicted class (wrong "
                                "groups in red) and the predicted class's probability.",
                                note="" if scored.gallery else f"No {what} image is misclassified."))
        sections.append(Section("Where the network looks (Grad-CAM)", scored.cams,
                                f"Per group, {CAM_IMAGES} {what} images and, under each, the regions that raise the "
                                "predicted class's probability most (Grad-CAM: the backbone's last feature map "
                                "weighted by the gradient of that probability's log).", note=scored.cam_note))
    else:
        reason = missing if info.dataset is None else "the run has no validation split and no labelled test set"
        sections.append(Section("Validation confusion matrices", note=f"Skipped: {reason}."))
    if any(isinstance(r.get("pseudo_admitted"), float) for r in info.rows):
        has_acc = any(isinstance(r.get("pseudo_accuracy"), float) for r in info.rows)
        threshold = f" ({info.config.method_options['pseudo_label']['threshold']:g})" if info.config is not None else ""
        sections.append(Section("Pseudo-labels", [figs.pseudo_figure(info.rows, out_dir / "pseudo_labels.png")],
                                f"Unlabelled images are admitted when every group's top probability passes the "
                                f"threshold{threshold}" + ("; the line scores them against the hidden labels."
                                                           if has_acc else ".")))
    else:
        sections.append(Section("Pseudo-labels", note="This run has no pseudo-label epochs."))
    if any(isinstance(r.get("train_fixmatch_admit_0"), float) for r in info.rows):
        sections.append(Section("Consistency training (FixMatch)", [figs.consistency_figure(
            info.rows, group_names, out_dir / "consistency.png")],
            "The teacher labels a weak view of each unlabelled image; a group's label is learnt on the strong view "
            "by its weight: 1 when its probability passes the threshold (per class with FlexMatch's; with "
            "SoftMatch's, the teacher's running mean and a softer weight below it). On generated sets the "
            "dashed lines score the admitted labels against the hidden ones, by weight."))
    if info.dataset is not None and info.data_path:
        points = curve_points(info.run_dir, info.data_path, len(info.dataset.labeled))
        if points:
            rows = "".join(f"<tr><td>{html.escape(p.run)}</td><td>{p.labels:,}</td><td>"
                           f"{'yes' if p.with_unlabeled else 'no'}</td><td>{p.exact:.2%}</td></tr>" for p in points)
            series = [(label, colour, [(p.labels, p.exact) for p in points if p.with_unlabeled == kind])
                      for kind, label, colour in ((False, "labelled images only", "tab:gray"),
                                                  (True, "with the unlabelled images", "tab:blue"))]
            mine = [(p.labels, p.exact) for p in points if p.run == info.run_dir.name]
            sections.append(Section("Label curve", [figs.label_curve_figure(series, out_dir / "label_curve.png", mine)],
                "This run and the runs beside it on the same data, by the labelled images each kept (--labels) "
                "and whether it trained on the unlabelled ones.",
                html="<table><tr><th>run</th><th>labels</th><th>unlabelled images</th><th>test exact</th></tr>"
                     f"{rows}</table>"))
    return sections, scored


# ---- HTML ---------------------------------------------------------------------------------------
CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:24px auto;
padding:0 16px;color:#222;line-height:1.45}h1{margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;
margin-top:36px}img{max-width:100%;height:auto;display:block;margin:10px 0}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child
{text-align:left}table.facts td{text-align:left}table.facts td:first-child{font-weight:600;background:#f8f8f8}
.note{background:#fff6e0;border-left:4px solid #e0a800;padding:8px 12px}.muted{color:#666}
pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px}"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table(header: list[str] | None, rows: list[list[object]], css: str = "") -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{css}'>{head}{body}</table>"


def _overview(info: RunInfo, scored: Scored | None) -> str:
    s, c = info.summary, info.config
    facts = [["run folder", str(info.run_dir)], ["training data", info.data_path or "unknown"]]
    if c is not None:
        facts += [["model", f"{c.backbone} (width {c.width}, input {c.input_size} px)"],
                  ["phases", ", ".join(f"{p.name} ({p.epochs:g} ep)" for p in c.phases if p.enabled)]]
    for key, label in (("epochs", "epochs"), ("wall_seconds", "wall time (s)"), ("images_per_second", "images/s")):
        if key in s:
            facts.append([label, s[key]])
    if "best_val_exact" in s:
        facts.append(["best validation exact-match", f"{s['best_val_exact']:.2%}"])
    if s.get("left_chance_step") is not None:
        facts.append(["left chance (validation > 10%) at step", s["left_chance_step"]])
    if note := short_run_note(s):
        facts.append(["strong phases trained with", f"the weak policy ({note})"])
    def scores(t: dict) -> str:
        return "  ".join(f"{k} {v:.2%}" for k, v in t.items() if k not in ("count", "copies"))

    if "test" in s:
        facts.append([f"test ({s['test'].get('count', '?')} images)", scores(s["test"])])
    if "test_tta" in s:
        facts.append([f"test, {s['test_tta']['copies']} test-time copies (as predict)", scores(s["test_tta"])])
    out = _table(None, facts, "facts")
    if scored is not None:
        evaluation = scored.evaluation
        rows = [[sc.name, sc.correct, sc.total, f"{sc.accuracy:.2%}", f"{sc.low:.2%} – {sc.high:.2%}"]
                for sc in [evaluation.exact, *(g.score for g in evaluation.groups.values())]]
        out += f"<h3>{scored.what.capitalize()} images, best checkpoint</h3>" + _table(
            ["", "correct", "of", "accuracy", "95% Wilson interval"], rows)
        pairs = [[name, f"{t} → {p}", n] for name, g in evaluation.groups.items() for t, p, n in g.confused_pairs[:5]]
        if pairs:
            out += f"<h3>Most confused pairs ({scored.what})</h3>" + _table(
                ["group", "true → predicted", "images"], pairs)
    return out


def render_html(info: RunInfo, sections: list[Section], scored: Scored | None) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>semilabel report: "
             f"{html.escape(info.run_dir.name)}</title><style>{CSS}</style></head><body>",
             f"<h1>Training report: {html.escape(info.run_dir.name)}</h1>",
             f"<p class='muted'>written {time.strftime('%Y-%m-%d %H:%M')} by semilabel report</p>",
             _overview(info, scored)]
    for problem in info.problems:
        parts.append(f"<p class='note'>{html.escape(problem)}</p>")
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        if sec.text:
            parts.append(f"<p>{html.escape(sec.text)}</p>")
        if sec.note:
            parts.append(f"<p class='note'>{html.escape(sec.note)}</p>")
        parts.append(sec.html)
        parts += [f"<img alt='{html.escape(p.stem)}' src='{data_uri(p)}'>" for p in sec.images]
    config_text = (info.run_dir / CONFIG_YAML).read_text() if (info.run_dir / CONFIG_YAML).exists() else ""
    if config_text:
        parts.append(f"<h2>Configuration</h2><details><summary>config.yaml</summary><pre>{html.escape(config_text)}"
                     "</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def style_section(info: RunInfo, out_dir: Path, reference: dict) -> Section:
    """The run's data style next to `reference` columns and the original data's
    figures; the table is also written to out_dir/data_style.md."""
    from semilabel.data.style_stats import STYLE_SAMPLE, format_table, measure_style, spread_sample, stats_rows

    if info.dataset is None or info.schema != COMBO:
        if (out_dir / REPORT_HTML).exists():  # an earlier report's table, not of this run's data
            (out_dir / STYLE_MD).unlink(missing_ok=True)
        why = ("the training data is not available (see the note above)" if info.dataset is None
               else "the table measures Combo images (two symbols in white ink on black); this run's labels "
                    "are of another task")
        return Section("Data style", note=f"Skipped: {why}.")
    d = info.dataset
    images = np.concatenate([p.images for p in (d.labeled, d.unlabeled, d.test) if p is not None])
    columns = {"this run's data": measure_style(spread_sample(images, STYLE_SAMPLE)), **reference}
    atomic_write_text(out_dir / STYLE_MD, format_table(columns) + "\n")
    header, rows = stats_rows(columns)
    return Section("Data style", text="Measured on the images alone (no labels): ink above 35% of each image's "
                   "maximum over its background, the two largest ink blobs as the symbols; compare with the original "
                   "data's figures (ORIGINAL_DATA.md) or another set (`semilabel report RUN --against DIR`).",
                   html=_table(header, rows))


def _is_figure(path: Path) -> bool:
    """A PNG named as one of the report's figures."""
    return path.suffix == ".png" and (path.stem in FIGURES or path.stem.startswith(PER_GROUP))


def write_report(run_dir: str | Path, out_dir: str | Path | None = None,
                 style_reference: dict | None = None) -> Path:
    """Draw every figure into `out_dir` (default RUN_DIR/report) and write report.html there.
    `style_reference`: extra {column: StyleStats} for the data style table."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SemilabelError(f"{run_dir}: no such run folder")
    if not (run_dir / METRICS_CSV).exists() and not any(run_dir.glob("*.pt")):
        raise SemilabelError(f"{run_dir}: not a run folder (no {METRICS_CSV} and no checkpoint)")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / REPORT_DIR
    ours = [p for p in out_dir.glob("*") if p.name in (REPORT_HTML, STYLE_MD) or _is_figure(p)]
    if out_dir == run_dir / REPORT_DIR or (out_dir / REPORT_HTML).exists():  # the report's own folder: drop
        # figures of an earlier report that this one may not redraw
        for old in ours:
            if old.suffix == ".png":
                old.unlink()
    elif ours:  # a folder of the user's: never overwrite what the report did not write
        raise OutputExistsError(f"{out_dir}: holds {ours[0].name}, a name the report writes, but no {REPORT_HTML}; "
                                f"choose a new or empty folder")
    info = load_run(run_dir)
    sections, scored = build_sections(info, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections.insert(1 if info.dataset is not None else 0, style_section(info, out_dir, style_reference or {}))
    page = out_dir / REPORT_HTML
    atomic_write_text(page, render_html(info, sections, scored))
    return page
