"""Read pickled NumPy arrays without running code from the file.

A pickle can name any importable callable and have it run on load. The original
data ships as pickles, so we rebuild NumPy arrays only, and we rebuild them
ourselves: the names that NumPy's pickles use (`_reconstruct`, `_frombuffer`,
`dtype`, `ndarray`, `_codecs.encode`) resolve to small stand-ins here that only
record the shape, the type code, the byte order and the raw bytes; the array is then
built with `np.frombuffer` from a freshly made numeric dtype. NumPy's own
`dtype.__setstate__` never runs on the file's values: it trusts the flags it is
given, so a forged state (an object dtype whose flags claim it holds no objects,
with pointer bytes as data) would crash or corrupt the process. Only plain numeric
dtypes are accepted.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import numpy as np

from semilabel.errors import DataError

_NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex
_MAX_NDIM = 32


def _refuse(message: str) -> None:
    raise pickle.UnpicklingError(message)


class _DtypeSpec:
    """Stand-in for `numpy.dtype(spec, align, copy)`; its state only gives the byte order."""

    def __init__(self, spec=None, align=False, copy=True, *rest):
        if not isinstance(spec, str) or not spec or len(spec) > 16 or rest:
            _refuse(f"dtype argument {spec!r} is not a plain type code")
        self.spec = spec
        self.byteorder = "="

    def __setstate__(self, state) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) < 5 or not isinstance(state[1], str):
            _refuse("malformed dtype state")
        if any(part is not None for part in state[2:5]):
            _refuse("structured or sub-array dtypes are not accepted")
        if state[1] not in ("<", ">", "|", "="):
            _refuse(f"unknown byte order {state[1]!r}")
        self.byteorder = state[1]

    def build(self) -> np.dtype:
        try:
            dtype = np.dtype(self.spec)
        except TypeError:
            _refuse(f"unknown dtype {self.spec!r}")
        if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            _refuse(f"arrays of dtype {dtype} are not accepted (only numbers; Python objects never)")
        if self.byteorder in ("<", ">") and dtype.itemsize > 1:
            dtype = dtype.newbyteorder(self.byteorder)
        return dtype


def _from_bytes(data, dtype, shape, fortran: bool) -> np.ndarray:
    """Validate everything, then build a fresh array with a canonical dtype."""
    if isinstance(data, list):
        _refuse("arrays of Python objects are not accepted")
    if not isinstance(data, (bytes, bytearray)):
        _refuse(f"array data must be bytes, found {type(data).__name__}")
    if not isinstance(dtype, _DtypeSpec):
        _refuse("array dtype is not a NumPy dtype")
    if not isinstance(shape, tuple) or len(shape) > _MAX_NDIM or not all(
            type(s) is int and s >= 0 for s in shape):
        _refuse(f"bad array shape {shape!r}")
    dt = dtype.build()
    count = math.prod(shape)
    if count * dt.itemsize != len(data):
        _refuse(f"array of shape {shape} and dtype {dt} needs {count * dt.itemsize} bytes, found {len(data)}")
    flat = np.frombuffer(data, dtype=dt, count=count)
    array = flat.reshape(shape, order="F" if fortran else "C")
    return array if array.flags.writeable else array.copy()


class _NdarrayMarker:
    """Stand-in for the `numpy.ndarray` class: only valid as `_reconstruct`'s first argument."""

    def __new__(cls, *args, **kwargs):
        _refuse("numpy.ndarray may only be rebuilt through _reconstruct")


class _ArrayStub:
    """What `_reconstruct(ndarray, (0,), b'b')` returns; `__setstate__` gets the array."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            _refuse("malformed array state")
        if len(state) == 5:
            state = state[1:]  # drop the version
        shape, dtype, fortran, data = state
        self.array = _from_bytes(data, dtype, shape, bool(fortran))


def _reconstruct(subtype=None, shape=None, typecode=None, *rest):
    if subtype is not _NdarrayMarker or rest:
        _refuse("_reconstruct may only rebuild numpy.ndarray")
    return _ArrayStub()


def _frombuffer(buffer=None, dtype=None, shape=None, order="C", *rest):
    if rest or order not in ("C", "F"):
        _refuse("malformed _frombuffer arguments")
    return _from_bytes(buffer, dtype, shape, order == "F")


def _encode(text=None, encoding="latin1", errors="strict", *rest):
    """`_codecs.encode`, as protocol-2 pickles use it for array bytes: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict" or rest:
        _refuse("_codecs.encode is only accepted for latin-1 array bytes")
    return text.encode("latin1")


def _empty_bytes(*args):
    """`bytes()`, as protocol 0-2 pickles spell empty array data; nothing else."""
    if args:
        _refuse("bytes() is only accepted without arguments")
    return b""


# (module, name) pairs that NumPy's own pickles name, and what we give them instead.
_STAND_INS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NdarrayMarker,
    ("numpy", "dtype"): _DtypeSpec,
    ("_codecs", "encode"): _encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        stand_in = _STAND_INS.get((module, name))
        if stand_in is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays are accepted")
        return stand_in

    def persistent_load(self, pid):  # noqa: D401 - pickle API
        raise pickle.UnpicklingError("persistent ids are not accepted")


def load_array_pickle(path: str | Path) -> np.ndarray:
    """Load one NumPy array from a pickle file, refusing anything else.

    Raises DataError (one line naming the file) for a missing, empty, truncated or
    foreign pickle; the file's code never runs.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a pickle file") from None
    if not data:
        raise DataError(f"{path}: file is empty")
    try:
        obj = _ArrayUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: unsafe or invalid pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, OverflowError) as exc:
        raise DataError(f"{path}: truncated or corrupt pickle ({exc.__class__.__name__})") from None
    except Exception as exc:  # anything else the unpickler raises on a damaged file
        raise DataError(f"{path}: corrupt pickle ({exc.__class__.__name__}: {exc})") from None
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise DataError(f"{path}: truncated or corrupt pickle (array state missing)")
        obj = obj.array
    if not isinstance(obj, np.ndarray):
        kind = "a dtype" if isinstance(obj, _DtypeSpec) else type(obj).__name__
        raise DataError(f"{path}: expected a pickled NumPy array, found {kind}")
    return obj


def save_array_pickle(array: np.ndarray, path: str | Path) -> None:
    """Write one array as a pickle, atomically (the original data's format)."""
    from semilabel.io_utils import atomic_write_bytes

    atomic_write_bytes(path, pickle.dumps(np.ascontiguousarray(array), protocol=4))
