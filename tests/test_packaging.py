"""Installing: pyproject.toml declares ranges (an installed CUDA torch is kept), while
`make` installs the exact versions of constraints.txt."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~ ]", r, maxsplit=1)[0]: r for r in project["dependencies"]}


def test_torch_is_a_range_in_pyproject_and_pinned_in_the_constraints_make_uses():
    reqs = _requirements()
    for name in ("torch", "torchvision"):
        assert ">=" in reqs[name] and "==" not in reqs[name], reqs[name]
    pins = dict(line.split("==") for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert set(pins) == {"torch", "torchvision"}
    for name, version in pins.items():
        floor = reqs[name].split(">=")[1]
        assert tuple(map(int, version.split("."))) >= tuple(map(int, floor.split(".")))
    assert "-c constraints.txt" in (REPO_ROOT / "Makefile").read_text()
