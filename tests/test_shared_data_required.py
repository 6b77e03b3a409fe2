"""Tests that need the real glyph banks skip without ../shared/data on a laptop, but in
CI (.ci/run sets SEMILABEL_REQUIRE_SHARED_DATA=1) such a skip fails the run: there the
banks are present, and a silent skip would hide the tests only they can run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NEEDS_BANKS = "tests/data/test_glyphs.py::test_real_bank_loads"  # takes the shared_data fixture


def _pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """That one test, with the banks looked for in an empty folder."""
    environ = {k: v for k, v in os.environ.items() if k != "SEMILABEL_REQUIRE_SHARED_DATA"}
    environ.update(SEMILABEL_SHARED_DATA=str(tmp_path), **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfEs", NEEDS_BANKS],
                          cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=120)


def test_without_the_banks_a_test_that_needs_them_skips_or_fails_when_required(tmp_path):
    local = _pytest(tmp_path)
    assert local.returncode == 0 and "SKIPPED [1]" in local.stdout, local.stdout[-2000:]
    ci = _pytest(tmp_path, SEMILABEL_REQUIRE_SHARED_DATA="1")
    assert ci.returncode == 1 and "needs ../shared/data but skipped" in ci.stdout, ci.stdout[-2000:]


def test_ci_requires_the_banks_and_runs_the_readme_command(tmp_path):
    """.ci/run with a stand-in `make` that reports what it was asked and in which environment."""
    (tmp_path / "make").write_text('#!/bin/sh\necho "make $* SEMILABEL_REQUIRE_SHARED_DATA=$SEMILABEL_REQUIRE_SHARED_DATA"\n')
    (tmp_path / "make").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SEMILABEL_REQUIRE_SHARED_DATA", None)
    run = subprocess.run([str(REPO_ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "make test SEMILABEL_REQUIRE_SHARED_DATA=1", run
