"""Hostile input files, built to make a small file cost a lot: `semilabel train` must
refuse each with exit 2 and one line, while staying within a few hundred MB.

Each case reads the data as `semilabel train` does first, in a child process under an
address-space limit (1.5 GB above the interpreter's), and reports the growth of its
peak resident memory (`resource.getrusage`) while reading. Without the bounds, the memo-reuse pickle
builds 2 GB, the memo-index pickle 1 GB and the zip member 1 GB before any refusal.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from semilabel.cli import main
from semilabel.data import safe_pickle
from semilabel.data.limits import ENV
from semilabel.data.safe_pickle import load_array_pickle, save_array_pickle
from semilabel.data.schema import COMBO
from semilabel.errors import DataError

GROWTH_LIMIT_MB = 100  # deep nesting took 295 MB, the others 1 GB or more, before the bounds
CHILD = r"""
import json, resource, sys
from semilabel.data.readers import read_dataset
from semilabel.errors import SemilabelError
vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 3 * 2**29, vm + 3 * 2**29))
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[1:]:
    try:  # what `semilabel train DATA` does first, with the message the command line prints
        read_dataset(path)
        code, message = 0, ""
    except SemilabelError as exc:
        code, message = 2, f"error: {exc}"
    except MemoryError:
        code, message = 1, "MemoryError"
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024
    print(json.dumps({"path": path, "code": code, "message": message, "peak_growth_mb": grown}), flush=True)
"""


def _read_in_child(*paths: Path) -> dict[str, dict]:
    """Read each of `paths` in turn in one child process; per path its exit code, its
    message and the growth of the peak memory so far (MB) since before the first."""
    import os

    proc = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == len(paths), proc.stderr[-2000:]
    return {r["path"]: r for r in reports}


def _original_folder(folder: Path, images: bytes) -> Path:
    folder.mkdir()
    (folder / "images_l.pkl").write_bytes(images)
    save_array_pickle(COMBO.to_multihot(np.zeros((4, 2), np.int64)), folder / "labels_l.pkl")
    return folder


class _SharedBuffer:
    """Pickles as numpy's `_frombuffer(shared, uint8, shape)`: every copy names the same
    memoised byte string, so the file holds it once and the reader rebuilds it each time."""

    shared = bytes(2**20)

    def __reduce__(self):
        from numpy._core.numeric import _frombuffer

        return (_frombuffer, (self.shared, np.dtype("u1"), (2**20,), "C"))


def memo_reuse() -> bytes:
    return pickle.dumps([_SharedBuffer() for _ in range(2000)], protocol=4)  # 1 MB file, 2 GB of arrays


def huge_memo_index() -> bytes:
    return b"\x80\x04N" + b"r" + (2**26).to_bytes(4, "little") + b"."  # LONG_BINPUT 2**26: a 512 MB memo table


def huge_declared_shape() -> bytes:
    from numpy._core.numeric import _frombuffer

    class Forged:
        def __reduce__(self):
            return (_frombuffer, (b"\0" * 16, np.dtype("u1"), (2**20, 2**20, 2**10), "C"))

    return pickle.dumps(Forged(), protocol=4)


def deep_nesting() -> bytes:
    depth = 3_000_000
    return b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b"."  # lists in lists, 6 MB file


HOSTILE_PICKLES = {
    "memo-reuse": (memo_reuse, "refused: the pickle would build more than twice its own size"),
    "huge-memo-index": (huge_memo_index, "memo index 67108864 beyond the 0 objects stored so far"),
    "huge-declared-shape": (huge_declared_shape, "needs 1125899906842624 bytes, found 16"),
    "deep-nesting": (deep_nesting, "refused: the pickle would build more than twice its own size"),
}


def test_hostile_files_are_refused_within_bounded_memory(tmp_path):
    """All cases in one child (one interpreter start): the peak after each must stay
    within GROWTH_LIMIT_MB of the peak before the first."""
    folders = {name: _original_folder(tmp_path / name, build()) for name, (build, _) in HOSTILE_PICKLES.items()}
    bomb = tmp_path / "bomb.npz"
    n = 21 * 2**14  # 56x56 images: 1,029 MB, a whole number of MiB
    _zip_of_zeros(bomb, "x.npy", _npy_header((n, 56, 56)), n * 56 * 56)
    with np.load(bomb) as npz:  # a genuine, readable member: its header matches its size
        assert npz.zip.getinfo("x.npy").file_size > 2**30 - 2**25
    reports = _read_in_child(*folders.values(), bomb)
    for name, folder in folders.items():
        report = reports[str(folder)]
        assert report["code"] == 2, (name, report)
        assert report["message"].startswith(f"error: {folder / 'images_l.pkl'}: "), (name, report)
        assert HOSTILE_PICKLES[name][1] in report["message"], (name, report)
        assert report["peak_growth_mb"] < GROWTH_LIMIT_MB, (name, report)
    report = reports[str(bomb)]
    assert report["code"] == 2 and report["message"].startswith(f"error: {bomb}[x.npy]: declares 1,0"), report
    assert "refused as a decompression bomb" in report["message"]
    assert report["peak_growth_mb"] < GROWTH_LIMIT_MB, report
    assert "\n" not in "".join(r["message"] for r in reports.values())  # one line each


def _zip_of_zeros(path: Path, name: str, header: bytes, zeros: int) -> None:
    """A one-member zip, deflated, holding `header` then `zeros` zero bytes, written
    without ever holding the zeros: after a full flush, deflate emits the same block for
    each identical chunk, so one block is repeated."""
    chunk = bytes(2**20)
    assert zeros % len(chunk) == 0
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH) == block
    crc = zlib.crc32(header)
    for _ in range(zeros // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    body = head + block * (zeros // len(chunk)) + c.flush()
    size, raw_name = len(header) + zeros, name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\3\4", 20, 0, 8, 0, 0x21, crc, len(body), size, len(raw_name), 0)
    central = struct.pack("<4s6H3L5H2L", b"PK\1\2", 20, 20, 0, 8, 0, 0x21, crc, len(body), size, len(raw_name),
                          0, 0, 0, 0, 0, 0)
    end = struct.pack("<4s4H2LH", b"PK\5\6", 0, 0, 1, 1, len(central) + len(raw_name),
                      len(local) + len(raw_name) + len(body), 0)
    path.write_bytes(local + raw_name + body + central + raw_name + end)


def _npy_header(shape: tuple[int, ...]) -> bytes:
    import io

    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return out.getvalue()


def test_npz_members_over_the_cap_are_refused_and_the_cap_can_be_raised(tmp_path, monkeypatch, capsys):
    data = tmp_path / "big.npz"
    images = np.random.default_rng(0).integers(0, 256, (400, 56, 56), dtype=np.uint8)  # 1.2 MB, incompressible
    np.savez(data, x=images, y=COMBO.to_multihot(np.zeros((400, 2), np.int64)))
    monkeypatch.setenv(ENV, "1")
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--quiet", "--no-report"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {data}: members declare 1.2 MB, over the 1.0 MB limit per file (raise it with {ENV}=MEGABYTES if the "
        f"file is genuine)"]
    monkeypatch.setenv(ENV, "2")
    from semilabel.data.readers import read_npz

    np.testing.assert_array_equal(read_npz(data).labeled.images, images)


def test_npz_header_asking_for_more_than_its_member_holds(tmp_path):
    data = tmp_path / "forged.npz"
    _zip_of_zeros(data, "x.npy", _npy_header((2**20, 56, 56)), 2**20)  # declares 3 GB, holds 1 MB
    from semilabel.data.readers import read_npz

    with pytest.raises(DataError, match=r"forged.npz\[x.npy\]: declares an array of shape \(1048576, 56, 56\)"):
        read_npz(data)


def test_a_pickle_over_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "x.pkl"
    save_array_pickle(np.zeros((3 * 2**20,), np.uint8), path)
    monkeypatch.setenv(ENV, "2")
    with pytest.raises(DataError, match=rf"x.pkl: file of 3.0 MB, over the 2.0 MB limit per file \(raise it with {ENV}"):
        load_array_pickle(path)
    monkeypatch.setenv(ENV, "4")
    assert load_array_pickle(path).shape == (3 * 2**20,)
    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(Exception, match=rf"{ENV}='lots': expected a positive number of megabytes"):
        load_array_pickle(path)


def _snapshot_stand_ins() -> dict:
    objects = {**{f"{m}.{n}": v for (m, n), v in safe_pickle._STAND_INS.items()},
               **{c.__name__: c for c in (safe_pickle._DtypeSpec, safe_pickle._ArrayStub, safe_pickle._Frozen)}}
    return {k: dict(vars(v)) if hasattr(v, "__dict__") else repr(v) for k, v in objects.items()}


@pytest.mark.parametrize("module, name", sorted(safe_pickle._STAND_INS))
@pytest.mark.parametrize("state", ["slots", "dict"])
def test_a_pickle_cannot_change_the_reader(tmp_path, module, name, state):
    """BUILD on a stand-in (what the reader gives for a NumPy name) tries to set an
    attribute on it; nothing may persist after the refusal."""
    before = _snapshot_stand_ins()
    attrs = b"}\x8c\x05pwnedK\x01s"  # {'pwned': 1}
    build = (b"N" + attrs + b"\x86" if state == "slots" else attrs) + b"b"
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x04c" + module.encode() + b"\n" + name.encode() + b"\n" + build + b".")
    with pytest.raises(DataError):
        load_array_pickle(path)
    assert _snapshot_stand_ins() == before
    target = safe_pickle._STAND_INS[(module, name)]
    assert not hasattr(target, "pwned")
    array = np.arange(12, dtype=np.int16).reshape(3, 4)  # the reader still reads what it should
    np.testing.assert_array_equal(load_array_pickle(_pickled(tmp_path, array)), array)


def _pickled(tmp_path: Path, array: np.ndarray) -> Path:
    path = tmp_path / "good.pkl"
    path.write_bytes(pickle.dumps(array, protocol=2))
    return path


@pytest.mark.parametrize("name", ["/etc/hostname", "../outside.png", "sub/../../outside.png"])
def test_labels_csv_naming_a_file_outside_the_folder_is_refused(tmp_path, capsys, name):
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    image = np.zeros((56, 56), np.uint8)
    Image.fromarray(image).save(data / "a.png")
    Image.fromarray(image).save(tmp_path / "outside.png")
    (data / "labels.csv").write_text(f"file,digit,letter\na.png,1,a\n{name},2,b\n")
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--quiet", "--no-report"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {data / 'labels.csv'}: row 1: file {name!r} is outside {data} (give a path relative to the folder, "
        f"without '..')"]


def test_labels_csv_naming_a_link_that_leaves_the_folder_is_refused(tmp_path):
    from PIL import Image

    from semilabel.data.readers import read_image_folder

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((56, 56), np.uint8)).save(tmp_path / "outside.png")
    Image.fromarray(np.zeros((56, 56), np.uint8)).save(data / "sub" / "inside.png")
    (data / "link.png").symlink_to(tmp_path / "outside.png")
    (data / "labels.csv").write_text("file,digit,letter\nsub/inside.png,1,a\nlink.png,2,b\n")
    with pytest.raises(DataError, match=r"labels.csv: row 1: file 'link.png' links outside"):
        read_image_folder(data)
    (data / "labels.csv").write_text("file,digit,letter\nsub/inside.png,1,a\n")
    assert len(read_image_folder(data)) == 1  # a subfolder inside is fine


def test_a_pickle_building_past_the_cap_is_refused_naming_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "images_l.pkl"
    path.write_bytes(memo_reuse())  # 1 MB file: the relative bound (3 MB) is above a 2 MB cap
    monkeypatch.setenv(ENV, "2")
    with pytest.raises(DataError, match=rf"images_l.pkl: refused: the pickle would build more than the 2.0 MB limit "
                                        rf"per file \(raise it with {ENV}=MEGABYTES"):
        load_array_pickle(path)


def _npy_declaring(shape: tuple[int, ...], version: int, data: bytes = b"") -> bytes:
    """An .npy image of format `version` (1, 2 or 3: numpy writes 3.0 for a header that
    needs utf-8) whose int64 header declares `shape`, followed by `data`."""
    header = repr({"descr": "<i8", "fortran_order": False, "shape": shape}).encode()
    length_format = "<H" if version == 1 else "<I"
    prefix = 8 + struct.calcsize(length_format)
    header += b" " * (-(prefix + len(header) + 1) % 64) + b"\n"  # numpy aligns the data to 64 bytes
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack(length_format, len(header)) + header + data


def _npz_holding(path: Path, member: bytes, **others: np.ndarray) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", member)
        for name, array in others.items():
            out = io.BytesIO()
            np.save(out, array)
            zf.writestr(f"{name}.npy", out.getvalue())
    return path


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_npy_header_declaring_more_than_its_bytes_is_refused_before_anything_is_allocated(tmp_path, version):
    """A glyph index file, an .npz data member and a glyph bank member, each declaring
    256 MB in a few bytes: one line naming the file and the shape, and no allocation."""
    import tracemalloc

    from semilabel.data.glyphs import load_glyph_bank
    from semilabel.data.readers import read_glyph_ids, read_npz

    genuine = np.arange(8, dtype=np.int64).reshape(4, 2)
    ids = tmp_path / "glyphs_l.npy"
    ids.write_bytes(_npy_declaring((4, 2), version, genuine.tobytes()))
    np.testing.assert_array_equal(np.load(ids), genuine)  # the crafted format is a real one
    np.testing.assert_array_equal(read_glyph_ids(ids), genuine)

    forged = _npy_declaring((2**24, 2), version, bytes(64))  # 256 MB declared
    ids.write_bytes(forged)
    data = _npz_holding(tmp_path / "data.npz", forged, y=COMBO.to_multihot(np.zeros((2**24, 2), np.int64))[:0])
    bank = _npz_holding(tmp_path / "bank.npz", forged, y=np.zeros(4, np.int64))
    declared = r"declares an array of shape \(16777216, 2\) and dtype int64 \(256.0 MB\) in a"
    for read, where in ((lambda: read_glyph_ids(ids), rf"{ids}: {declared} file of \d+ bytes: truncated or forged"),
                        (lambda: read_npz(data), rf"{data}\[x.npy\]: {declared} member of \d+ bytes"),
                        (lambda: load_glyph_bank(bank, 10), rf"{bank}\[x.npy\]: {declared} member")):
        tracemalloc.start()
        try:
            with pytest.raises(DataError, match=where) as err:
                read()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert "\n" not in str(err.value)
        assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MB allocated before the refusal"
