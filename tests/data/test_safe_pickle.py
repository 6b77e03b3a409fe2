"""The array-only unpickler: NumPy pickles load, anything that could run code does not."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from semilabel.data import safe_pickle
from semilabel.data.safe_pickle import load_array_pickle, save_array_pickle
from semilabel.errors import DataError

PACKAGE_DIR = Path(safe_pickle.__file__).resolve().parents[1]  # the `semilabel` folder under test

ARRAYS = {
    "uint8 images": (np.arange(3 * 56 * 56) % 256).astype(np.uint8).reshape(3, 56, 56),
    "float32 4-d": np.linspace(0, 1, 2 * 1 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8),
    "int64 labels": np.eye(36, dtype=np.int64)[:5],
    "big-endian float": np.arange(12, dtype=">f8").reshape(3, 4),
    "bool": np.array([[True, False], [False, True]]),
    "fortran order": np.asfortranarray(np.arange(20, dtype=np.int16).reshape(4, 5)),
    "empty": np.zeros((0, 36), np.uint8),
    "0-d": np.array(2.5),
}


def write(path: Path, obj, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
@pytest.mark.parametrize("name", list(ARRAYS))
def test_numpy_pickles_load(tmp_path, protocol, name):
    array = ARRAYS[name]
    loaded = load_array_pickle(write(tmp_path / "a.pkl", array, protocol))
    assert type(loaded) is np.ndarray
    # same type; byte order may come back native (plain pickle.loads does that too)
    assert loaded.dtype.newbyteorder("=") == array.dtype.newbyteorder("=") and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)
    assert loaded.flags.writeable


def test_old_numpy_module_path_loads(tmp_path):
    """Pickles made by NumPy 1.x name numpy.core.multiarray, not numpy._core."""
    array = ARRAYS["uint8 images"]
    data = pickle.dumps(array, protocol=2)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old
    (tmp_path / "old.pkl").write_bytes(old)
    np.testing.assert_array_equal(load_array_pickle(tmp_path / "old.pkl"), array)


def test_save_then_load_round_trip(tmp_path):
    array = ARRAYS["uint8 images"][:, ::2]  # not contiguous
    save_array_pickle(array, tmp_path / "sub" / "x.pkl")
    np.testing.assert_array_equal(load_array_pickle(tmp_path / "sub" / "x.pkl"), array)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.pkl"]  # no temporary left behind


# ---- hostile pickles ----------------------------------------------------------------------
class _System:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (builtins.eval, (self.code,))


def _payloads(marker: Path):
    return {
        "os.system": _System(f"touch {marker}"),
        "builtins.eval": _Eval(f"__import__('pathlib').Path({str(marker)!r}).touch()"),
        "inside an object array": np.array([_System(f"touch {marker}")], dtype=object),
        "inside a list": [ARRAYS["bool"], _Eval(f"open({str(marker)!r}, 'w').close()")],
    }


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "inside an object array", "inside a list"])
def test_malicious_pickle_refused_and_never_runs(tmp_path, protocol, kind):
    # Control: the payload is real; a plain pickle.loads does run it.
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_payloads(control)[kind], protocol=protocol))
    assert control.exists(), "the test payload should run under plain pickle"

    marker = tmp_path / "marker"
    path = write(tmp_path / "evil.pkl", _payloads(marker)[kind], protocol)
    with pytest.raises(DataError) as err:
        load_array_pickle(path)
    assert str(path) in str(err.value)
    assert not marker.exists(), "code from the pickle ran"


@pytest.mark.parametrize("obj, found", [
    ({"x": np.zeros(3)}, "dict"),
    ([np.zeros(3)], "list"),
    (3, "int"),
    ("text", "str"),
    (None, "NoneType"),
])
def test_non_array_objects_refused(tmp_path, obj, found):
    path = write(tmp_path / "thing.pkl", obj)
    with pytest.raises(DataError, match="expected a pickled NumPy array") as err:
        load_array_pickle(path)
    assert str(path) in str(err.value) and found in str(err.value)


def test_numpy_scalar_and_dtype_refused(tmp_path):
    for obj in (np.float64(1.5), np.dtype("uint8")):
        with pytest.raises(DataError):
            load_array_pickle(write(tmp_path / "s.pkl", obj))


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("array", [
    np.array([1, "two", 3.0], dtype=object),
    np.array([[1, 2], [3, 4]], dtype=object),
    np.zeros(3, dtype=[("a", "u1"), ("b", "O")]),
], ids=["mixed", "ints", "structured-with-object"])
def test_object_dtype_arrays_refused(tmp_path, protocol, array):
    path = write(tmp_path / "obj.pkl", array, protocol)
    with pytest.raises(DataError, match=r"object|Python objects|structured") as err:
        load_array_pickle(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("dtype", ["U5", "S3", "datetime64[s]", [("a", "u1"), ("b", "f4")]])
def test_non_numeric_dtypes_refused(tmp_path, dtype):
    with pytest.raises(DataError):
        load_array_pickle(write(tmp_path / "x.pkl", np.zeros(3, dtype=dtype)))


def test_forged_dtype_state_cannot_smuggle_object_pointers(tmp_path):
    """An object dtype whose pickled state claims it holds no Python objects, with raw
    bytes (pointer values) as data: NumPy's own rebuild accepts that and the process
    dereferences 0x4141... when the array is used or freed. The loader must refuse it
    without crashing; it runs in a child process so a crash cannot take pytest down."""
    script = textwrap.dedent(f"""
        import pickle, sys, types
        import numpy as np
        # skip semilabel/__init__.py (it imports torch): only the data layer is needed here
        package = types.ModuleType("semilabel")
        package.__path__ = [{str(PACKAGE_DIR)!r}]
        sys.modules["semilabel"] = package
        from semilabel.data.safe_pickle import load_array_pickle
        from semilabel.errors import DataError

        class Dtype:
            def __init__(self, flags): self.flags = flags
            def __reduce__(self):
                return (np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, self.flags))

        class Forged:
            def __init__(self, flags): self.flags = flags
            def __reduce__(self):
                reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
                return (reconstruct, (np.ndarray, (0,), b"b"),
                        (1, (2,), Dtype(self.flags), False, b"\\x41" * 16))

        for flags in (0, 1):  # no object flags at all; refcount flag without list-pickle flag
            path = {str(tmp_path)!r} + f"/forged{{flags}}.pkl"
            open(path, "wb").write(pickle.dumps(Forged(flags), protocol=2))
            try:
                array = load_array_pickle(path)
            except DataError as exc:
                print("refused", exc)
            else:
                print("LOADED", array.dtype, array.dtype.hasobject)
                print(array)  # touches the forged pointers
        """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"child crashed ({result.returncode}): {result.stderr[-2000:]}"
    assert result.stdout.count("refused") == 2, result.stdout + result.stderr


def test_forged_numeric_dtype_flags_are_ignored(tmp_path):
    """A uint8 dtype state with object flags set must not confuse the loader either."""
    array = np.arange(6, dtype=np.uint8)
    data = pickle.dumps(array, protocol=2)
    forged = data.replace(b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t", b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x3ft")
    assert forged != data
    (tmp_path / "f.pkl").write_bytes(forged)
    loaded = load_array_pickle(tmp_path / "f.pkl")
    assert loaded.dtype == np.uint8 and not loaded.dtype.hasobject
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize("data", [
    b"x" * 10 + pickle.dumps(ARRAYS["bool"]),  # junk before a good pickle
    pickle.dumps(ARRAYS["bool"], protocol=2).replace(b"latin1", b"rot13"),  # a codec other than latin-1
    pickle.dumps(ARRAYS["bool"], protocol=2).replace(b"_reconstruct", b"_reconstrucx"),
], ids=["junk", "codec", "unknown-name"])
def test_tampered_pickles_refused(tmp_path, data):
    (tmp_path / "t.pkl").write_bytes(data)
    with pytest.raises(DataError):
        load_array_pickle(tmp_path / "t.pkl")


# ---- damaged files ----------------------------------------------------------------------
def test_empty_file(tmp_path):
    (tmp_path / "images_l.pkl").write_bytes(b"")
    with pytest.raises(DataError, match=r"images_l\.pkl: file is empty"):
        load_array_pickle(tmp_path / "images_l.pkl")


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.99])
def test_truncated_pickle(tmp_path, protocol, fraction):
    data = pickle.dumps(ARRAYS["uint8 images"], protocol=protocol)
    path = tmp_path / "labels_l.pkl"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DataError) as err:
        load_array_pickle(path)
    assert str(path) in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_array_pickle(tmp_path / "nope.pkl")
    with pytest.raises(DataError, match="is a folder"):
        load_array_pickle(tmp_path)


def test_text_file_refused(tmp_path):
    (tmp_path / "notes.pkl").write_text("these are not the arrays you are looking for\n")
    with pytest.raises(DataError, match=r"notes\.pkl"):
        load_array_pickle(tmp_path / "notes.pkl")
