"""Every helper of semilabel.distributed is used: a collective no code calls is one that
no test shows to match across ranks."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import semilabel
from semilabel import distributed


def test_every_helper_of_the_distributed_module_is_used():
    defined = {name for name, obj in vars(distributed).items()
               if inspect.isfunction(obj) and obj.__module__ == distributed.__name__}
    used: set[str] = set()  # imported from the module, read as distributed.NAME, or called inside it
    for path in Path(semilabel.__file__).parent.rglob("*.py"):
        inside = path.name == "distributed.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == distributed.__name__:
                used.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "distributed":
                used.add(node.attr)
            elif inside and isinstance(node, ast.Name):
                used.add(node.id)
    assert defined and defined <= used, sorted(defined - used)
