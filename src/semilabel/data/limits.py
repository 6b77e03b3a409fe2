"""How much memory one input file may make the readers build.

A crafted file can be small and still ask for gigabytes (a pickle reusing one byte
string for many arrays, an `.npz` member of compressed zeros). Every reader checks
what a file declares against two bounds before building it:

- relative to the file's own size: a pickle holds its arrays' bytes, so it may build
  at most twice its size (plus 1 MiB); an `.npz` member may inflate at most
  `NPZ_RATIO` times (plus 64 MiB);
- absolute: `SEMILABEL_MAX_INPUT_MB` megabytes per file (default 2048), which a user
  with a larger dataset can raise; a folder of images counts as one file: the pixels
  its headers declare (3 bytes per colour pixel) must stay under the same cap before
  any is decoded (`semilabel.data.folders`);
- an array's `.npy` header (a file of its own or an `.npz` member, any format version)
  may declare no more than the bytes after it: every `.npy` and `.npz` is read through
  `semilabel.data.npy`, never with `np.load`.
"""

from __future__ import annotations

import os

from semilabel.errors import ConfigError, DataError

ENV = "SEMILABEL_MAX_INPUT_MB"
DEFAULT_MB = 2048
MB = 2**20
PICKLE_SLACK = 1 * MB
NPZ_RATIO = 200
NPZ_SLACK = 64 * MB


def max_input_bytes() -> int:
    """The absolute per-file cap in bytes, from SEMILABEL_MAX_INPUT_MB (default 2048)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MB * MB
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{ENV}={text!r}: expected a positive number of megabytes")
    return int(value * MB)


def over_cap(source: str, what: str, nbytes: int, cap: int, per: str = "file") -> DataError:
    """The one-line refusal for a file (or folder) that declares more than the absolute cap."""
    return DataError(f"{source}: {what} {nbytes / MB:,.1f} MB, over the {cap / MB:,.1f} MB limit per {per} "
                     f"(raise it with {ENV}=MEGABYTES if the {per} is genuine)")
