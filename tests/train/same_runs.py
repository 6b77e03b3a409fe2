"""Same seed, same run: dump tiny fixed-step trainings of every recipe, compare two dumps.

Used to show that a change of the training loop's code leaves training bit for bit as
it was: run `dump` once with the old sources and once with the new ones on the path,
then `compare`. Everything runs on the CPU in fp32 with one thread, so nothing may
differ: metrics rows (less the timing columns), every step's learning rate, phase and
policy, the recorder's calls, the fault points reached, the final state, and every
tensor of the model, the best model, the EMA, the optimiser and the methods' state.

    python tests/train/same_runs.py data /tmp/runs-data.npz            # once, any sources
    PYTHONPATH=OLD/src python tests/train/same_runs.py dump /tmp/runs-data.npz /tmp/old.pt
    PYTHONPATH=NEW/src python tests/train/same_runs.py dump /tmp/runs-data.npz /tmp/new.pt
    python tests/train/same_runs.py compare /tmp/old.pt /tmp/new.pt

Besides the built-in recipes it runs SESEMI with Mean Teacher, a run under a time budget
whose steps take one second each on a stand-in clock (as tests/train/test_fit.py does),
and a run stopped after five steps and resumed from its last checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

TIMING_ROW = {"elapsed_s", "images_per_s"}
TIMING_STATE = {"phase_seconds", "train_seconds"}
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def make_data(out: str) -> None:
    """A small Combo set (240 labelled, 120 unlabelled with hidden labels, 60 test) as arrays."""
    from semilabel.data.combo import make_combo
    from semilabel.data.glyphs import load_glyph_bank

    digits = load_glyph_bank(SHARED / "digits_mnist.npz", 10)
    letters = load_glyph_bank(SHARED / "letters_unipen.npz", 26)
    s = make_combo([digits], [letters], n_labeled=240, n_unlabeled=120, n_test=60, seed=3)
    np.savez(out, lx=s.labeled.images, ly=s.labeled.labels, ux=s.unlabeled.images, uy=s.unlabeled.labels,
             tx=s.test.images, ty=s.test.labels)


def _dataset(path: str):
    from semilabel.data.readers import Dataset, ImageSet
    from semilabel.data.schema import COMBO

    a = np.load(path)
    return Dataset(ImageSet(a["lx"], a["ly"], "labeled"), ImageSet(a["ux"], a["uy"], "unlabeled"),
                   ImageSet(a["tx"], a["ty"], "test"), COMBO)


def _tiny(name: str, epochs: float = 1.0, **changes):
    from semilabel.config import load_config

    config = load_config(name)
    phases = tuple(dataclasses.replace(p, epochs=epochs) for p in config.phases)
    base = dict(width=8, batch_size=32, eval_batch_size=128, threads=1, device="cpu", precision="fp32",
                checkpoint_every_steps=3, phases=phases)
    return dataclasses.replace(config, **{**base, **changes})


def _configs() -> dict:
    from semilabel.config import PhaseConfig

    pseudo = _tiny("pseudo", 0.5, sesemi=True, pretext_batch_size=16, pseudo_threshold=0.0)
    held = _tiny("default")
    held = dataclasses.replace(held, phases=tuple(dataclasses.replace(p, epochs=e) for p, e in zip(held.phases, (0.5, 1.5))))
    return {
        # 16 planned steps: a short run (weak policy), the supervised start held at chance
        "default": _tiny("default"),
        "default-strong": _tiny("default", strong_min_steps=0, plateau_check_steps=3),
        # 4 + 12 planned steps: the supervised start at chance grows to 8 (half the run)
        "default-held": dataclasses.replace(held, plateau_check_steps=3),
        # the same, off chance at once (CHANCE_EXIT below 0): the hold ends at the first check
        "default-leaves-chance": dataclasses.replace(held, plateau_check_steps=3),
        "fixmatch": _tiny("fixmatch", method_options={"fixmatch": {"threshold": 0.5, "ratio": 0.5}}),
        "pseudo": pseudo,
        "pseudo-per-group": dataclasses.replace(pseudo, pseudo_threshold=0.6, pseudo_per_group=True,
                                                pseudo_max_fraction=0.5, pseudo_weight=0.7),
        "report": _tiny("report", 0.5, batch_size=32, pretext_batch_size=16),
        "sesemi-mean-teacher": dataclasses.replace(
            pseudo, ema_decay=0.9, pretext_weight=0.3, method_options={"mean_teacher": {"ratio": 0.5}},
            phases=(PhaseConfig("supervised", epochs=0.5, pretext_source="none"),
                    PhaseConfig("consistency", epochs=1.5, augment="strong", pretext_source="unlabeled",
                                methods=("mean_teacher",)))),
        "timed-held": _tiny("default", 100, time_budget=0.5, strong_min_steps=20),
        "resumed": pseudo,
    }


class _Recorder:
    def __init__(self):
        self.calls: list = []
        self.last: dict | None = None

    def epoch_end(self, row, payload, is_best):
        self.last = copy.deepcopy(payload())
        self.calls.append(("epoch_end", row["epoch"], is_best))

    def periodic(self, payload):
        self.last = copy.deepcopy(payload())
        self.calls.append(("periodic", self.last["state"]["step"]))

    def progress(self, *args):
        pass


def _one_run(name: str, config, dataset) -> dict:
    from semilabel import faults
    from semilabel.train import fit as fit_module

    seen: dict = {"steps": [], "faults": []}
    real_step, real_reached, real_time = fit_module._Trainer.step, faults.reached, fit_module.time

    class Clock:  # under a time budget: each optimiser step takes exactly one second
        now = 0.0

        @classmethod
        def monotonic(cls):
            return cls.now

    def step(self, phase, perm, lr):
        seen["steps"].append((self.state.step, phase.name, phase.augment, lr))
        Clock.now += 1.0
        return real_step(self, phase, perm, lr)

    fit_module._Trainer.step = step
    faults.reached = lambda point: seen["faults"].append((point, len(seen["steps"])))
    if config.time_budget is not None:
        fit_module.time = Clock
    chance_exit = fit_module.CHANCE_EXIT
    if name == "default-leaves-chance":
        fit_module.CHANCE_EXIT = -1.0
    try:
        recorder = _Recorder()
        if name == "resumed":
            polls = []
            try:
                fit_module.fit(config, dataset, recorder, stop=lambda: polls.append(1) or len(polls) == 5)
                raise AssertionError("not stopped")
            except fit_module.Interrupted:
                pass
            result = fit_module.fit(config, dataset, recorder, resume=recorder.last)
        else:
            result = fit_module.fit(config, dataset, recorder)
    finally:
        fit_module._Trainer.step, faults.reached, fit_module.time = real_step, real_reached, real_time
        fit_module.CHANCE_EXIT = chance_exit
    state = {k: v for k, v in dataclasses.asdict(result.state).items() if k not in TIMING_STATE}
    state["history"] = [{k: v for k, v in r.items() if k not in TIMING_ROW} for r in state["history"]]
    state["epoch_sums"] = {k: float(v) for k, v in state["epoch_sums"].items()}
    last = recorder.last or {}
    return {"state": state, "model": result.model.state_dict(), "best": result.best_model_state,
            "optimizer": last.get("optimizer"), "methods": last.get("methods"), "ema": last.get("ema"),
            "recorder": recorder.calls, **seen}


def dump(data: str, out: str) -> None:
    dataset = _dataset(data)
    runs = {}
    for name, config in _configs().items():
        runs[name] = _one_run(name, config, dataset)
        print(f"{name}: {runs[name]['state']['step']} steps, {len(runs[name]['state']['history'])} rows", flush=True)
    torch.save(runs, out)


def _differences(a, b, where: str) -> list[str]:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
        return [] if same else [where]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b))
    return [] if same else [f"{where}: {a!r} != {b!r}"]


def compare(first: str, second: str) -> int:
    a, b = torch.load(first, weights_only=False), torch.load(second, weights_only=False)
    problems = [] if a.keys() == b.keys() else [f"runs {sorted(set(a) ^ set(b))}"]
    for name in [n for n in a if n in b]:
        found = _differences(a[name], b[name], name)
        print(f"{name}: {'identical' if not found else f'{len(found)} differences'} "
              f"({a[name]['state']['step']} steps, {len(a[name]['state']['history'])} rows, "
              f"{len(a[name]['faults'])} fault points)")
        problems += found
    for line in problems[:20]:
        print("  ", line)
    return 1 if problems else 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "data":
        make_data(*args)
    elif command == "dump":
        dump(*args)
    elif command == "compare":
        sys.exit(compare(*args))
    else:
        sys.exit(f"unknown command {command!r}: data, dump or compare")
