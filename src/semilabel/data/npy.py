"""Read `.npy` arrays and `.npz` archives without trusting what their headers declare.

An `.npy` header names the array's shape and dtype, and `np.load` allocates that much
before it reads a byte of data, so a file of a hundred bytes can ask for terabytes (in
every format version: 1.0, 2.0 and 3.0). Every array the readers take from such a file,
alone (`read_npy`) or as an `.npz` member (`read_npz_arrays`), goes through `_read_array`: it
parses the header itself, checks the declared size against the bytes the file or member
holds (see `semilabel.data.limits`), and only then allocates, once, the buffer it reads
the data into. Python objects are never accepted.
"""

from __future__ import annotations

import ast
import math
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from semilabel.data.limits import MB, NPZ_RATIO, NPZ_SLACK, max_input_bytes, over_cap
from semilabel.errors import DataError

MAGIC = b"\x93NUMPY"
# format version -> (header length field, header text encoding), as numpy.lib.format writes them
HEADER_FORMATS = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}
MAX_HEADER = 10_000  # characters, numpy's own bound for a header read without trusting the file
HEADER_KEYS = {"descr", "fortran_order", "shape"}


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """`array` in .npy format at exactly `path` (np.save given a name would add ".npy"
    to a temporary file's), closed before the caller's atomic write syncs it."""
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def read_npy(path: str | Path) -> np.ndarray:
    """The array of a `.npy` file: its declared size checked against the file's, and the
    file against the per-file cap. Any problem: one DataError line naming the file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: is not a file")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: file is empty")
    cap = max_input_bytes()
    if size > cap:
        raise over_cap(str(path), "file of", size, cap)
    try:
        with path.open("rb") as fh:
            return _read_array(fh, size, str(path), "file")
    except OSError as exc:
        raise DataError(f"{path}: unreadable .npy file ({exc.strerror or exc})") from None


def read_npz_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an `.npz`, by name (`x.npy` -> `x`; members of other names are not
    arrays and are left out). Refused before anything is decoded: members over the
    per-file cap in all, or inflating more than NPZ_RATIO times; then each member's
    declared array against the member's size (`_read_array`)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: is not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip member, or an empty zip
        raise DataError(f"{path}: not an .npz file (no zip signature; truncated or another format)")
    try:
        with zipfile.ZipFile(path) as zf:
            _check_member_sizes(path, zf.infolist())
            arrays = {}
            for info in (m for m in zf.infolist() if m.filename.endswith(".npy")):
                with zf.open(info) as fh:  # yields at most the member's declared size (zipfile stops there)
                    arrays[info.filename[:-4]] = _read_array(fh, info.file_size, f"{path}[{info.filename}]", "member")
            return arrays
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: truncated or not an .npz file ({exc.__class__.__name__})") from None
    except Exception as exc:  # e.g. NotImplementedError for a compression zipfile lacks
        raise DataError(f"{path}: unreadable .npz ({exc.__class__.__name__}: {exc})") from None


def _check_member_sizes(path: Path, members: list[zipfile.ZipInfo]) -> None:
    cap = max_input_bytes()
    total = 0
    for info in members:
        total += info.file_size
        if total > cap:
            raise over_cap(str(path), "members declare", total, cap)
        if info.file_size > NPZ_RATIO * info.compress_size + NPZ_SLACK:
            raise DataError(f"{path}[{info.filename}]: declares {info.file_size / MB:,.0f} MB from "
                            f"{info.compress_size / MB:,.1f} MB compressed (over {NPZ_RATIO}x): refused as a "
                            f"decompression bomb")


def _size(nbytes: int) -> str:
    return f"{nbytes:,} bytes" if nbytes < MB else f"{nbytes / MB:,.1f} MB"


def _read_exactly(fh: BinaryIO, n: int, where: str, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise DataError(f"{where}: truncated .npy ({what} cut short)")
    return data


def _header(fh: BinaryIO, where: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran order, bytes before the data) from an `.npy` header."""
    magic = fh.read(len(MAGIC) + 2)
    if len(magic) < len(MAGIC) + 2 or not magic.startswith(MAGIC):
        raise DataError(f"{where}: not a .npy array (no NumPy header)")
    version = (magic[-2], magic[-1])
    if version not in HEADER_FORMATS:
        raise DataError(f"{where}: .npy format version {version[0]}.{version[1]} is not one this reader knows "
                        f"({', '.join(f'{a}.{b}' for a, b in HEADER_FORMATS)})")
    length_format, encoding = HEADER_FORMATS[version]
    (length,) = struct.unpack(length_format, _read_exactly(fh, struct.calcsize(length_format), where, "header length"))
    if length > MAX_HEADER:
        raise DataError(f"{where}: .npy header of {length:,} bytes (at most {MAX_HEADER:,}): damaged or forged")
    text = _read_exactly(fh, length, where, "header")
    try:
        header = ast.literal_eval(text.decode(encoding))
    except (SyntaxError, ValueError, TypeError, UnicodeDecodeError, MemoryError, RecursionError):
        raise DataError(f"{where}: damaged .npy header") from None
    if not isinstance(header, dict) or set(header) != HEADER_KEYS:
        raise DataError(f"{where}: damaged .npy header (expected the keys {sorted(HEADER_KEYS)})")
    shape, fortran = header["shape"], header["fortran_order"]
    if not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape) or len(shape) > 64:
        raise DataError(f"{where}: damaged .npy header (shape {shape!r})")
    if not isinstance(fortran, bool):
        raise DataError(f"{where}: damaged .npy header (fortran_order {fortran!r})")
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        raise DataError(f"{where}: damaged .npy header (dtype {header['descr']!r})") from None
    if dtype.hasobject:
        raise DataError(f"{where}: holds Python objects, which are not accepted")
    return shape, dtype, fortran, len(MAGIC) + 2 + struct.calcsize(length_format) + length


def _read_array(fh: BinaryIO, nbytes: int, where: str, kind: str) -> np.ndarray:
    """The one place an array is read from `.npy` bytes: `fh` at the start of an `.npy`
    image of `nbytes` bytes (a file, or a member of `kind` "member"). The declared size
    must fit in the bytes after the header, which bounds what is allocated by the file's
    own size; the data is read into that one buffer."""
    shape, dtype, fortran, offset = _header(fh, where)
    count = math.prod(shape)
    needed = count * dtype.itemsize
    if needed > nbytes - offset:
        raise DataError(f"{where}: declares an array of shape {shape} and dtype {dtype} ({_size(needed)}) in a "
                        f"{kind} of {_size(nbytes)}: truncated or forged")
    if needed == 0:
        try:
            return np.empty(shape, dtype)  # no data (an empty array, or items of no size)
        except (ValueError, MemoryError):
            raise DataError(f"{where}: damaged .npy header (shape {shape})") from None
    buffer = bytearray(needed)
    view, got = memoryview(buffer), 0
    while got < needed:
        n = fh.readinto(view[got:])
        if not n:
            raise DataError(f"{where}: truncated .npy (its data stops at byte {offset + got:,} of "
                            f"{offset + needed:,})")
        got += n
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
