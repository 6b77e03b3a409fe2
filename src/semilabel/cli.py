"""`semilabel` command line: a thin layer that parses flags and calls the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semilabel.errors import SemilabelError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _add_make_data(sub) -> None:
    p = sub.add_parser("make-data", help="generate an example dataset (Combo, or the colour `numbers` task)",
                       description="--task combo (default): one digit and one letter glyph per 56x56 grey image, in "
                                   "the original pickle layout; without --digits/--letters, uses the glyphs shipped "
                                   "with the installed packages. --task numbers: 40x64 colour images of a two-digit "
                                   "number in one of four inks (groups tens, units, ink), written as an image folder "
                                   "with labels.csv and schema.yaml.")
    p.add_argument("--task", default="combo", choices=("combo", "numbers"), help="which example task (default combo)")
    p.add_argument("--digits", nargs="+", type=Path, help="combo: digit glyph banks (.npz: x uint8 28x28, y, optional writer)")
    p.add_argument("--letters", nargs="+", type=Path, help="combo: letter glyph banks (.npz, y in 0..25)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-labeled", type=int, help="labelled images (default 30000 combo, 3000 numbers)")
    p.add_argument("--n-unlabeled", type=int, help="unlabelled images (default 30000 combo, 3000 numbers)")
    p.add_argument("--n-test", type=int, help="test images (default 15000 combo, 1000 numbers)")
    p.add_argument("--force", action="store_true", help="overwrite an existing dataset in --out")


MAKE_DATA_COUNTS = {"combo": (30000, 30000, 15000), "numbers": (3000, 3000, 1000)}  # labelled, unlabelled, test


def _input_size(text: str):
    """argparse type of --input-size: a side or HxW (a usage error otherwise)."""
    from semilabel.models.geometry import parse_input_size

    try:
        return parse_input_size(text)
    except SemilabelError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset",
                       description="Train through the recipe's phases. DATA is an original-layout folder, an .npz, "
                                   "or a folder of images with labels.csv.")
    p.add_argument("data", type=Path, nargs="?", help="dataset (not needed with --resume)")
    p.add_argument("--out", type=Path, help="run folder (default runs/<config name>)")
    p.add_argument("--config", default="default", help="built-in recipe (default, fixmatch, pseudo, report) or a YAML file")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--force", action="store_true", help="overwrite a run already in --out")
    p.add_argument("--allow-other-data", action="store_true",
                   help="with --resume: continue on data other than the run was trained on")
    p.add_argument("--time-budget", type=float, metavar="MINUTES", help="fit the whole run in this wall-clock time")
    p.add_argument("--backbone", help="compact, crops, mobilenet_v2 or resnet50")
    p.add_argument("--input-size", type=_input_size, metavar="SIDE|HxW",
                   help="side the network sees (224 = original report), or HxW such as 40x64 (default 56: square "
                        "images at that side, others at their own size when small)")
    p.add_argument("--weights", type=Path, help="local file to start the backbone from")
    p.add_argument("--batch-size", type=int,
                   help="labelled images a step (default: 512 on a GPU; on a CPU 128, or 32 where the budget passes "
                        "over the labelled images 150 times or more)")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (under torchrun: cuda, each process on cuda:LOCAL_RANK)")
    p.add_argument("--letter-weight", type=float, help="loss weight of the letter group")
    p.add_argument("--sesemi", action=argparse.BooleanOptionalAction, default=None,
                   help="train the rotation/flip pretext head (SESEMI); off in the default recipe")
    p.add_argument("--no-augment", action="store_true",
                   help="train the labelled rows unaugmented in every phase (each phase's augment: none)")
    p.add_argument("--no-pseudo", action="store_true", help="skip the pseudo-label phase")
    p.add_argument("--no-unlabeled", action="store_true",
                   help="ignore the unlabelled images (what they add: compare with a run that uses them)")
    p.add_argument("--methods", metavar="auto|none|NAME",
                   help="what the strong phases train on the unlabelled images: auto (the default recipe: "
                        "FixMatch-style consistency when the budget passes over the labelled images often), "
                        "none, or a method such as fixmatch")
    p.add_argument("--labels", type=int, metavar="N", dest="labeled_limit",
                   help="keep N labelled images (seeded by --seed); the others join the unlabelled images "
                        "without their labels (how accuracy grows with labels)")
    p.add_argument("--unlabeled-test", action="store_true",
                   help="learn from the test images too, without their labels (transductive)")
    p.add_argument("--joint-head", action=argparse.BooleanOptionalAction, default=None,
                   help="add a head over every digit-letter pair")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set method_options.pseudo_label.threshold=0.9 --set phases.pseudo.epochs=3")
    p.add_argument("--no-report", action="store_true", help="do not draw the report at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")


TTA_HELP = ("average every class combination's probability (e.g. each digit-letter pair) over the image and N "
            "copies under the run's weak augmentation, then take the most probable one, as plain prediction does "
            "(default: the run's own, 4 in the built-in recipes; 0: plain prediction)")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="write a submission CSV from a trained run",
                       description="Predict every image with the run's best checkpoint and write a CSV atomically.")
    p.add_argument("model", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--images", type=Path, required=True,
                   help="images_test.pkl (or any pickle), an .npz (x or x_test), a PNG folder, or a dataset folder")
    p.add_argument("--out", type=Path, required=True, help="CSV to write, e.g. submission.csv")
    p.add_argument("--format", default=None, choices=("kaggle", "groups", "probabilities"),
                   help="kaggle: Id,Category bits; groups: class names per group (Combo: id,digit,letter; other "
                        "tasks: file,<groups>); probabilities: groups + confidence. Default: kaggle for Combo, "
                        "groups for other tasks")
    p.add_argument("--tta", type=int, metavar="N", help=TTA_HELP)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--device", help="cpu (all cores), auto, cuda or cuda:N (default: the run's own, if usable here)")
    p.add_argument("--resize", action=argparse.BooleanOptionalAction, default=True,
                   help="scale images of another size to the run's training size, saying so (the default); "
                        "--no-resize refuses them")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score a run or a submission against labels",
                       description="Either RUN_DIR with --images (and --labels unless the images carry them), "
                                   "or --predictions CSV with --labels.")
    p.add_argument("model", type=Path, nargs="?", metavar="RUN_DIR", help="run folder or checkpoint")
    p.add_argument("--images", type=Path, help="images to predict (as for predict)")
    p.add_argument("--labels", type=Path, help="labels: pickle of multi-hot rows, .npz (y) or CSV")
    p.add_argument("--predictions", type=Path, metavar="CSV", help="a submission CSV to score instead of a run")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="folder for confusion CSVs and evaluation.json (default RUN_DIR/evaluation; none for --predictions)")
    p.add_argument("--tta", type=int, metavar="N", help=TTA_HELP)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--device", help="as for predict (default: the run's own, if usable here)")
    p.add_argument("--resize", action=argparse.BooleanOptionalAction, default=True,
                   help="as for predict (default: scale images of another size to the run's training size)")


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="draw a run's curves, confusion matrices and samples; or compare data styles",
                       description="`report RUN_DIR` writes PNG figures and one self-contained report.html, with a "
                                   "'Data style' table (symbol size, placement, noise regimes, dots, background) of the "
                                   "run's data next to the original data's figures, also printed here. "
                                   "`report --data DIR` prints that table for any dataset or image file, next to "
                                   "images generated with the default style.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", nargs="?", help="run folder (omit with --data)")
    p.add_argument("--out", type=Path, metavar="DIR", help="folder for the figures and report.html (default RUN_DIR/report)")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="instead of a run: measure the style of this dataset (folder, .npz, pickle or PNG folder)")
    p.add_argument("--against", metavar="defaults|DIR",
                   help="add a column: 'defaults' (images generated with the default style from the built-in glyphs, "
                        "about 15 s) or another dataset. Default: 'defaults' with --data, none with RUN_DIR")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a trained run to ONNX",
                       description="Input `images` (B,C,H,W) float 0-1 at the run's training image size and "
                                   "channels (1 grey, 3 RGB); "
                                   "one logits output per label group.")
    p.add_argument("model", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--onnx", type=Path, required=True, metavar="FILE", help="where to write the .onnx file")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default: 17, or 20 for the crops backbone)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")


def build_parser() -> argparse.ArgumentParser:
    from semilabel import __version__

    parser = argparse.ArgumentParser(prog="semilabel", description="Semi-supervised multi-label image classifiers.")
    parser.add_argument("--version", action="version", version=f"semilabel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_make_data(sub)
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_report(sub)
    _add_export(sub)
    d = sub.add_parser("demo", help="generate a small Combo set from built-in glyphs, train briefly, report",
                       description="Runs with no download and no external data.")
    d.add_argument("--out", type=Path, default=Path("demo-run"), help="folder for data, run and submission")
    d.add_argument("--minutes", type=float, default=5.0, help="training time budget")
    d.add_argument("--n-labeled", type=int, default=10000)
    d.add_argument("--n-unlabeled", type=int, default=10000)
    d.add_argument("--n-test", type=int, default=2000)
    d.add_argument("--seed", type=int, default=0)
    return parser


def _train_overrides(args) -> dict[str, object]:
    from semilabel.config import parse_override

    overrides: dict[str, object] = {}
    direct = {"time_budget": args.time_budget, "backbone": args.backbone, "input_size": args.input_size,
              "weights": str(args.weights) if args.weights else None, "batch_size": args.batch_size,
              "lr": args.lr, "seed": args.seed, "device": args.device, "joint_head": args.joint_head,
              "group_weights.letter": args.letter_weight, "sesemi": args.sesemi,
              "use_unlabeled": False if args.no_unlabeled else None, "labeled_limit": args.labeled_limit,
              "methods": args.methods,
              "unlabeled_test": True if args.unlabeled_test else None}
    overrides.update({k: v for k, v in direct.items() if v is not None})
    for text in args.set:
        key, value = parse_override(text)
        overrides[key] = value
    return overrides


def _apply_switches(config, args):
    """--no-augment / --no-pseudo act on every phase of the recipe."""
    import dataclasses

    phases = []
    for phase in config.phases:
        if args.no_augment:
            phase = dataclasses.replace(phase, augment="none")
        if args.no_pseudo and phase.pseudo_labels:
            phase = dataclasses.replace(phase, enabled=False)
        phases.append(phase)
    return dataclasses.replace(config, phases=tuple(phases))


def cmd_make_data(args) -> int:
    from semilabel.api import make_dataset, make_example
    from semilabel.errors import ConfigError

    defaults = MAKE_DATA_COUNTS[args.task]
    counts = {key: default if value is None else value
              for key, value, default in zip(("n_labeled", "n_unlabeled", "n_test"),
                                             (args.n_labeled, args.n_unlabeled, args.n_test), defaults)}
    if args.task != "combo":
        if args.digits or args.letters:
            raise ConfigError(f"--{'digits' if args.digits else 'letters'} applies to --task combo only")
        made = make_example(args.out, args.task, seed=args.seed, force=args.force, **counts)
        print(f"wrote {made.counts['labeled']} labelled, {made.counts['unlabeled']} unlabelled and "
              f"{made.counts['test']} test images of the {made.task} task to {args.out} ({made.seconds:.1f} s); "
              f"groups {', '.join(f'{g.name} ({g.size})' for g in made.schema.groups)}; samples: {made.sample_grid}")
        return 0
    result = make_dataset(args.out, digits=args.digits, letters=args.letters, seed=args.seed, force=args.force,
                          **counts)
    print(f"wrote {result.counts['labeled']} labelled, {result.counts['unlabeled']} unlabelled and "
          f"{result.counts['test']} test images to {args.out} ({result.seconds:.1f} s); samples: {result.sample_grid}")
    if result.style is not None:
        print(f"style of {result.style.count} generated images (the original data's figures in brackets; "
              f"`semilabel report --data {args.out}` for the full table):")
        print(result.style.summary())
    return 0


_RESUME_FIXED = ("time_budget", "backbone", "input_size", "weights", "batch_size", "lr", "seed", "letter_weight",
                 "sesemi", "no_augment", "no_pseudo", "no_unlabeled", "labeled_limit", "methods", "unlabeled_test",
                 "joint_head", "set")


def _resume_config(args):
    """The run's own config and data path from RUN_DIR/last.pt (only --device may change)."""
    import dataclasses

    from semilabel.config import config_from_dict
    from semilabel.errors import CheckpointError, ConfigError
    from semilabel.models.checkpoint import LAST, load_checkpoint

    changed = [k for k in _RESUME_FIXED if getattr(args, k) not in (None, False, [])]
    if args.config != "default":
        changed.insert(0, "config")
    if changed:
        flag = "--" + {"labeled_limit": "labels"}.get(changed[0], changed[0]).replace("_", "-")
        raise SemilabelError(f"--resume continues with the run's own config; {flag} cannot change it "
                             f"(start a new run instead)")
    if args.out is not None and args.out.resolve() != args.resume.resolve():
        raise SemilabelError("--resume RUN_DIR trains into RUN_DIR; drop --out")
    if not (args.resume / LAST).exists():
        raise SemilabelError(f"--resume {args.resume}: no {LAST} checkpoint there")
    payload = load_checkpoint(args.resume / LAST)
    try:
        config = config_from_dict(payload["config"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{args.resume / LAST}: its stored config is unreadable ({exc})") from None
    if args.device is not None:
        config = dataclasses.replace(config, device=args.device)
    data = args.data or payload.get("data")
    if not data:
        raise SemilabelError(f"--resume {args.resume}: the checkpoint does not say where the data is; give DATA")
    return config, Path(data)


def cmd_train(args) -> int:
    from semilabel.config import apply_overrides, load_config
    from semilabel.data.readers import read_dataset
    from semilabel.device import check_precision, resolve_device
    from semilabel.distributed import dist_from_env, finish_distributed, init_distributed
    from semilabel.train.run import check_run_dir, train_run

    if args.resume is not None:
        config, data = _resume_config(args)
        run_dir = args.resume
    else:
        if args.data is None:
            raise SemilabelError("train: give a dataset (DATA) or --resume RUN_DIR")
        data = args.data
        config = _apply_switches(apply_overrides(load_config(args.config), _train_overrides(args)), args)
        run_dir = args.out or Path("runs") / Path(args.config).stem
    device = resolve_device(config.device, dist_from_env())  # an unusable --device fails before anything is written
    check_precision(config.precision, device)
    check_run_dir(run_dir, force=args.force, resume=args.resume is not None)  # before reading the data
    dataset = read_dataset(data)  # validate the data before anything is written
    dist = init_distributed(device)
    try:
        result = train_run(dataset, run_dir, config, force=args.force, resume=args.resume is not None,
                           quiet=args.quiet, dist=dist, data_path=str(Path(data).resolve()),
                           allow_other_data=args.allow_other_data)
    finally:
        finish_distributed(dist)
    if dist.is_main:
        _print_summary(result.summary, run_dir)
        if not args.no_report:
            _maybe_report(run_dir)
    return 0


def _group_scores(scores: dict) -> str:
    return "  ".join(f"{k} {v:.2%}" for k, v in scores.items() if k not in ("exact", "count", "copies"))


def _print_summary(summary: dict, run_dir: Path) -> None:
    best = summary.get("best_val_exact")
    line = (f"trained {summary['epochs']} epochs in {summary['wall_seconds']:.0f} s "
            f"({summary['images_per_second']:.0f} images/s); "
            + ("no validation images" if best is None else f"best validation exact-match {best:.2%}"))
    if best is not None and "val_interval" in summary:
        low, high = summary["val_interval"]
        line += f" (95% interval {low:.1%}-{high:.1%} on {summary['val_images']} images)"
    if best is not None:
        left = summary.get("left_chance_step")
        line += f"; left chance (validation > 10%) at step {left}" if left is not None else "; never left chance (validation <= 10%)"
    print(line)
    from semilabel.models.run_folder import short_run_note

    note = short_run_note(summary)
    if note:
        print(f"{note}, so the strong phases trained with the weak policy (--set strong_min_steps=0 keeps them strong)")
    if "test" in summary:
        t = summary["test"]
        print(f"test ({t['count']} images): exact-match {t['exact']:.2%}  {_group_scores(t)}")
    if "test_tta" in summary:
        t = summary["test_tta"]
        print(f"test with {t['copies']} test-time copies (as predict and evaluate): "
              f"exact-match {t['exact']:.2%}  {_group_scores(t)}")
    print(f"run folder: {run_dir}  (checkpoints best.pt / last.pt, metrics.csv, config.yaml)")


def _maybe_report(run_dir: Path) -> None:
    """Draw the report after training; a problem with it does not fail the finished run."""
    from semilabel.report import write_report

    try:
        print(f"report: {write_report(run_dir)}")
    except SemilabelError as exc:
        print(f"report: not written ({exc}); retry with `semilabel report {run_dir}`", file=sys.stderr)


def cmd_demo(args) -> int:
    from semilabel.api import run_demo

    run_demo(args.out, minutes=args.minutes, n_labeled=args.n_labeled, n_unlabeled=args.n_unlabeled,
             n_test=args.n_test, seed=args.seed)
    return 0


def cmd_predict(args) -> int:
    from semilabel.predict import predict_to_csv

    r = predict_to_csv(args.model, args.images, args.out, style=args.format, tta=args.tta, force=args.force,
                       batch_size=args.batch_size, device=args.device, resize=args.resize)
    print(f"wrote {r.count} predictions to {r.out} ({r.seconds:.1f} s, {r.images_per_second:.0f} images/s) "
          f"with {r.checkpoint}")
    return 0


def cmd_evaluate(args) -> int:
    from semilabel.evaluate import evaluate_predictions, evaluate_run

    if args.predictions is not None:
        if args.model is not None or args.images is not None:
            raise SemilabelError("evaluate: give either RUN_DIR --images PATH, or --predictions CSV, not both")
        if args.labels is None:
            raise SemilabelError("evaluate --predictions: also give --labels PATH")
        result = evaluate_predictions(args.predictions, args.labels, args.out)
        what = str(args.predictions)
    else:
        if args.model is None or args.images is None:
            raise SemilabelError("evaluate: give RUN_DIR --images PATH [--labels PATH], or --predictions CSV --labels PATH")
        out = args.out
        if out is None:
            out = (args.model if args.model.is_dir() else args.model.parent) / "evaluation"
        result = evaluate_run(args.model, args.images, args.labels, out, tta=args.tta, batch_size=args.batch_size,
                              device=args.device, resize=args.resize)
        what = f"{args.model} on {args.images}"
    print(f"{what}: {result.count} images")
    print(result.table())
    if result.files:
        print(f"confusion matrices and pairs: {result.files[0].parent}")
    return 0


def _style_reference(against: str | None) -> dict:
    """--against -> {column name: StyleStats} (empty for None)."""
    from semilabel.api import data_style, default_style

    if against is None:
        return {}
    if against == "defaults":
        return {"generated (default style)": default_style()}
    return {str(against): data_style(against)}


def cmd_report(args) -> int:
    from semilabel.data.style_stats import format_table
    from semilabel.report import STYLE_MD, write_report

    if args.data is not None:
        if args.run_dir is not None or args.out is not None:
            raise SemilabelError("report --data DIR compares data styles; give no RUN_DIR and no --out with it")
        from semilabel.api import data_style

        columns = {str(args.data): data_style(args.data), **_style_reference(args.against or "defaults")}
        print(format_table(columns))
        return 0
    if args.run_dir is None:
        raise SemilabelError("report: give a RUN_DIR, or --data DIR to compare data styles")
    page = write_report(args.run_dir, args.out, style_reference=_style_reference(args.against))
    style = page.parent / STYLE_MD
    if style.exists():
        print(style.read_text().rstrip())
    print(f"report: {page}")
    return 0


def cmd_export(args) -> int:
    from semilabel.export import export_onnx

    r = export_onnx(args.model, args.onnx, force=args.force, opset=args.opset, check=not args.no_check)
    check = "not checked" if r.max_abs_diff is None else f"max |ONNX - PyTorch| = {r.max_abs_diff:.1e}"
    print(f"wrote {r.path} from {r.checkpoint} (outputs: {', '.join(r.outputs)}; {check})")
    return 0


COMMANDS = {"make-data": cmd_make_data, "train": cmd_train, "demo": cmd_demo, "predict": cmd_predict,
            "evaluate": cmd_evaluate, "report": cmd_report, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from semilabel.errors import Interrupted

    try:
        return COMMANDS[args.command](args)
    except Interrupted as exc:
        if not exc.quiet:
            print(exc, file=sys.stderr)
        return exc.exit_code
    except SemilabelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
