"""Ctrl-C during training: finish the step, save last.pt, then stop.

`stop_requested` installs handlers for SIGINT and SIGTERM that only raise a flag; the
training loop polls it between steps, so a checkpoint is never taken mid-update. A
second Ctrl-C stops at once (KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_requested() -> Iterator[Callable[[], bool]]:
    """Yield a function telling whether SIGINT/SIGTERM arrived; restore handlers on exit."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag.is_set  # signals only reach the main thread
        return

    def handler(signum, frame) -> None:
        if flag.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag.is_set
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
