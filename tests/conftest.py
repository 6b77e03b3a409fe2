"""Shared fixtures: the real glyph banks (subsampled) and tiny generated Combo sets.

The real banks live in ../shared/data (relative to the repository root, or where
SEMILABEL_SHARED_DATA points) and are never copied into the project; tests that need
them (the `shared_data` fixture marks them `needs_shared_data`) skip when that folder is
absent, and fail instead with SEMILABEL_REQUIRE_SHARED_DATA=1, as .ci/run sets: in CI
the banks are there, and a skip would hide the tests that only they can run.
Everything else builds on small synthetic glyph banks so it runs anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from semilabel.data.combo import make_combo, write_combo
from semilabel.data.glyphs import GlyphBank
from semilabel.plots import save_image_grid

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEMILABEL_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")
REQUIRE_SHARED_DATA = "SEMILABEL_REQUIRE_SHARED_DATA"  # "1": a test that needs the banks fails without them
BANK_FILES = ("digits_mnist.npz", "digits_unipen.npz", "letters_unipen.npz")
N_WRITERS = 20  # real writers kept in the subsampled UNIPEN banks


def _shared_data_missing() -> str | None:
    missing = [name for name in BANK_FILES if not (SHARED_DATA / name).is_file()]
    if missing:
        return f"real glyph banks not found: {SHARED_DATA} lacks {', '.join(missing)}"
    return None


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "needs_shared_data: reads the real glyph banks of ../shared/data "
                                       f"(skipped without them; a failure with {REQUIRE_SHARED_DATA}=1)")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):  # directly or through another fixture
            item.add_marker(pytest.mark.needs_shared_data)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With SEMILABEL_REQUIRE_SHARED_DATA=1, a skip of a test that needs the banks is a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get(REQUIRE_SHARED_DATA) == "1" and item.get_closest_marker("needs_shared_data"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} needs ../shared/data but skipped ({reason}); {REQUIRE_SHARED_DATA}=1"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder holding the real glyph banks; skips the test when it is absent."""
    reason = _shared_data_missing()
    if reason:
        pytest.skip(reason)
    return SHARED_DATA


def _writers_with_every_class(writers: np.ndarray, labels: np.ndarray, n_classes: int) -> set[str]:
    order = np.lexsort((labels, writers))
    w, y = writers[order], labels[order]
    pairs = np.unique(np.stack([w, y.astype(str)], 1), axis=0)
    names, counts = np.unique(pairs[:, 0], return_counts=True)
    return set(names[counts == n_classes].tolist())


def _one_glyph_per_writer_and_class(npz, writers: list[str], n_classes: int, source: str) -> GlyphBank:
    all_writers, labels = npz["writer"].astype(str), npz["y"].astype(np.int64)
    keep = np.isin(all_writers, writers)
    idx = np.flatnonzero(keep)
    # first glyph of each (writer, class) pair, in file order: deterministic
    _, first = np.unique(np.stack([all_writers[idx], labels[idx].astype(str)], 1), axis=0, return_index=True)
    idx = np.sort(idx[first])
    return GlyphBank(npz["x"][idx], labels[idx], all_writers[idx], source)


@pytest.fixture(scope="session")
def real_banks(shared_data: Path) -> tuple[GlyphBank, GlyphBank]:
    """Small real UNIPEN banks: N_WRITERS people who wrote every digit and every letter,
    one glyph per (writer, class): 200 digits and 520 letters. Because every kept
    writer covers every class, any writer split keeps every class on both sides."""
    with np.load(shared_data / "digits_unipen.npz") as d, np.load(shared_data / "letters_unipen.npz") as l:
        full = sorted(_writers_with_every_class(d["writer"].astype(str), d["y"], 10)
                      & _writers_with_every_class(l["writer"].astype(str), l["y"], 26))
        assert len(full) >= N_WRITERS, "the shared banks changed: too few writers with every class"
        chosen = full[:: len(full) // N_WRITERS][:N_WRITERS]
        digits = _one_glyph_per_writer_and_class(d, chosen, 10, "digits_unipen(sub)")
        letters = _one_glyph_per_writer_and_class(l, chosen, 26, "letters_unipen(sub)")
    assert len(digits) == 10 * N_WRITERS and len(letters) == 26 * N_WRITERS
    return digits, letters


@pytest.fixture(scope="session")
def mnist_bank(shared_data: Path) -> GlyphBank:
    """50 MNIST digits per class, no writer ids (500 glyphs)."""
    with np.load(shared_data / "digits_mnist.npz") as d:
        labels = d["y"].astype(np.int64)
        idx = np.sort(np.concatenate([np.flatnonzero(labels == k)[:50] for k in range(10)]))
        return GlyphBank(d["x"][idx], labels[idx], None, "digits_mnist(sub)")


def synthetic_bank(n_classes: int, n_writers: int, seed: int, class_in_writer: bool = False) -> GlyphBank:
    """Hollow rectangles of random size and brightness, one glyph per (writer, class).

    Writer k is `w{k}`; with `class_in_writer` it is `w{k}/c{class}` instead, so a test
    can read back from a composed image's writer which class its glyph had."""
    rng = np.random.default_rng(seed)
    n = n_classes * n_writers
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        h, w = rng.integers(10, 20), rng.integers(4, 16)
        r0, c0 = (28 - h) // 2, (28 - w) // 2
        images[i, r0 : r0 + h, c0 : c0 + w] = rng.integers(150, 256)
        images[i, r0 + 2 : r0 + h - 2, c0 + 2 : c0 + w - 2] = 0  # hollow: a stroke outline
    labels = np.tile(np.arange(n_classes), n_writers).astype(np.int64)
    person = np.arange(n) // n_classes
    if class_in_writer:
        writers = np.array([f"w{p}/c{c}" for p, c in zip(person, labels)])
    else:
        writers = np.array([f"w{p}" for p in person])
    return GlyphBank(images, labels, writers, f"synthetic{n_classes}")


@pytest.fixture(scope="session")
def synthetic_banks() -> tuple[GlyphBank, GlyphBank]:
    """10 digit and 26 letter classes drawn by the same 10 synthetic writers."""
    return synthetic_bank(10, 10, seed=1), synthetic_bank(26, 10, seed=2)


@pytest.fixture(scope="session")
def tiny_combo(synthetic_banks):
    """A tiny generated Combo set (no shared data needed): 16 labelled, 20 unlabelled, 30 test."""
    digits, letters = synthetic_banks
    return make_combo([digits], [letters], n_labeled=16, n_unlabeled=20, n_test=30, seed=0)


@pytest.fixture(scope="session")
def tiny_combo_dir(tiny_combo, tmp_path_factory) -> Path:
    """`tiny_combo` written in the original pickle layout by write_combo, with its sample grid."""
    out = tmp_path_factory.mktemp("combo")
    write_combo(tiny_combo, out, draw_grid=save_image_grid)
    return out


@pytest.fixture(scope="session")
def tiny_train_dir(synthetic_banks, tmp_path_factory) -> Path:
    """A folder to train on (original layout): 40 labelled, 20 unlabelled, 10 test images;
    tests read it and write their runs elsewhere."""
    digits, letters = synthetic_banks
    out = tmp_path_factory.mktemp("train-data") / "data"
    write_combo(make_combo([digits], [letters], n_labeled=40, n_unlabeled=20, n_test=10, seed=0), out)
    return out


@pytest.fixture(scope="session")
def make_synthetic_bank():
    """The `synthetic_bank` factory, for tests that need banks of their own."""
    return synthetic_bank
