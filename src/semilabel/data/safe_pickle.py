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

Nothing in a file can change the reader: the names resolve to frozen wrappers that
refuse attribute writes (a BUILD opcode on them), so a refused file leaves the
process as it was. Nor can a small file build a lot: before unpickling, the opcodes
are scanned (without building anything) for the memory their objects would take and
for memo indices beyond the pickle's own count; while unpickling, every array and
byte string the stand-ins build is charged to the same budget (see
`semilabel.data.limits`), so one byte string reused for many arrays is refused too.
"""

from __future__ import annotations

import contextvars
import io
import math
import pickle
import pickletools
import sys
from pathlib import Path

import numpy as np

from semilabel.data.limits import ENV, MB, PICKLE_SLACK, max_input_bytes, over_cap
from semilabel.errors import DataError

_NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex
_MAX_NDIM = 32


def _refuse(message: str) -> None:
    raise pickle.UnpicklingError(message)


class _Budget:
    """Bytes a load may still build; `charge` refuses before an allocation past it."""

    def __init__(self, limit: int, why: str):
        self.limit, self.why, self.used = limit, why, 0

    def charge(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise _OverBudget(self)


class _OverBudget(Exception):
    def __init__(self, budget: _Budget):
        super().__init__(budget.why)
        self.budget = budget


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("semilabel_pickle_budget", default=None)


def _charge(nbytes: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(nbytes)


class _Frozen:
    """A stand-in as the unpickler sees it: callable, with no attribute a file can set."""

    __slots__ = ("_target",)

    def __init__(self, target) -> None:
        object.__setattr__(self, "_target", target)

    def __call__(self, *args, **kwargs):
        return self._target(*args, **kwargs)

    def __setattr__(self, name, value) -> None:
        _refuse("a pickle may not change the reader's classes or functions")

    __delattr__ = __setattr__

    def __reduce__(self):
        _refuse("stand-ins cannot be pickled")


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
    _charge(count * dt.itemsize)  # before the copy below allocates it
    flat = np.frombuffer(data, dtype=dt, count=count)
    array = flat.reshape(shape, order="F" if fortran else "C")
    return array if array.flags.writeable else array.copy()


def _ndarray_called(*args, **kwargs):
    _refuse("numpy.ndarray may only be rebuilt through _reconstruct")


_NDARRAY = _Frozen(_ndarray_called)  # stand-in for the `numpy.ndarray` class: only `_reconstruct`'s first argument


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
    if subtype is not _NDARRAY or rest:
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
    _charge(len(text))
    return text.encode("latin1")


def _empty_bytes(*args):
    """`bytes()`, as protocol 0-2 pickles spell empty array data; nothing else."""
    if args:
        _refuse("bytes() is only accepted without arguments")
    return b""


# (module, name) pairs that NumPy's own pickles name, and what we give them instead.
_RECONSTRUCT, _FROMBUFFER = _Frozen(_reconstruct), _Frozen(_frombuffer)
_DTYPE, _ENCODE, _EMPTY_BYTES = _Frozen(_DtypeSpec), _Frozen(_encode), _Frozen(_empty_bytes)
_STAND_INS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTYPE,
    ("_codecs", "encode"): _ENCODE,
    ("__builtin__", "bytes"): _EMPTY_BYTES,
    ("builtins", "bytes"): _EMPTY_BYTES,
}

_OBJECT_COST = 64  # bytes an opcode's object may take, a generous bound (a list, a tuple, a memo slot)
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


class _ViewReader:
    """A read-only file over bytes for pickletools: large arguments come back as views, not copies."""

    def __init__(self, data: bytes):
        self.data, self.view, self.pos = data, memoryview(data), 0

    def read(self, n: int = -1):
        end = len(self.data) if n < 0 else min(self.pos + n, len(self.data))
        out = self.view[self.pos:end] if end - self.pos > 65536 else self.data[self.pos:end]
        self.pos = end
        return out

    def readline(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        end = len(self.data) if end < 0 else end + 1
        out, self.pos = self.data[self.pos:end], end
        return out

    def tell(self) -> int:
        return self.pos


def _scan(data: bytes, budget: _Budget) -> int:
    """Walk the opcodes without building anything: charge each one's object and the
    size of its argument, and refuse memo indices that no pickler would write.

    Returns how many leading bytes hold whole, checked opcodes: all of `data`, or
    less where an opcode cannot be parsed (the unpickler then only sees those bytes
    and reports the file as damaged where the scan stopped)."""
    memo_ops = 0
    reader = _ViewReader(data)
    checked = 0
    ops = pickletools.genops(reader)
    while True:
        try:
            op, arg, _pos = next(ops)
        except StopIteration:
            return len(data)
        except (ValueError, KeyError, UnicodeDecodeError, OverflowError, AttributeError, TypeError):
            return checked
        cost = _OBJECT_COST
        if isinstance(arg, (bytes, bytearray, memoryview)):
            cost += len(arg)
        elif isinstance(arg, str):
            cost += sys.getsizeof(arg)
        budget.charge(cost)
        if op.name == "MEMOIZE" or op.name in _MEMO_PUTS:
            if op.name in _MEMO_PUTS and not (isinstance(arg, int) and 0 <= arg <= memo_ops):
                _refuse(f"memo index {arg} beyond the {memo_ops} objects stored so far")
            memo_ops += 1
        checked = reader.tell()


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
    cap = max_input_bytes()
    try:
        if path.is_file() and path.stat().st_size > cap:
            raise over_cap(str(path), "file of", path.stat().st_size, cap)
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a pickle file") from None
    if not data:
        raise DataError(f"{path}: file is empty")
    relative = 2 * len(data) + PICKLE_SLACK
    limit = min(relative, cap)
    why = "more than twice its own size" if relative <= cap else "the per-file limit"
    token = _BUDGET.set(_Budget(limit, why))
    try:
        checked = _scan(data, _Budget(limit, why))
        obj = _ArrayUnpickler(io.BytesIO(data[:checked] if checked < len(data) else data)).load()
    except _OverBudget as exc:
        if exc.budget.limit == cap:
            raise DataError(f"{path}: refused: the pickle would build more than the {cap / MB:,.1f} MB limit per "
                            f"file (raise it with {ENV}=MEGABYTES if the file is genuine)") from None
        raise DataError(f"{path}: refused: the pickle would build {why} ({limit / MB:,.1f} MB from a "
                        f"{len(data) / MB:,.1f} MB file); a NumPy array pickle holds its data") from None
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: unsafe or invalid pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, OverflowError) as exc:
        raise DataError(f"{path}: truncated or corrupt pickle ({exc.__class__.__name__})") from None
    except Exception as exc:  # anything else the unpickler raises on a damaged file
        raise DataError(f"{path}: corrupt pickle ({exc.__class__.__name__}: {exc})") from None
    finally:
        _BUDGET.reset(token)
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
