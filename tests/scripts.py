"""Benchmark scripts (benchmarks/ is no package) loaded as modules for their tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(relative: str, name: str) -> ModuleType:
    """benchmarks/`relative` imported as module `name` (registered in sys.modules, where
    its dataclasses look their module up); the caller pops it when done."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / relative)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
