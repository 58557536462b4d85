"""Cancelling blocking work when the user interrupts.

Python runs a signal handler (the KeyboardInterrupt of Ctrl-C) only in the main thread,
between two bytecodes. A main thread blocked in native code that does not check for
signals never gets there: DuckDB waiting for its scan of a PostgreSQL COPY, itself
waiting for a statement still running on the server, hung ``snapshot --dsn`` for as
long as the server took. Code about to block that way registers how to cancel the wait
(``with cancel_on_interrupt(connection.cancel_safe): ...``); the CLI calls
:func:`cancel_all` from a thread of its own as soon as a stop signal arrives, the wait
ends, and the handler's KeyboardInterrupt can be raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_cancels: dict[int, Callable[[], object]] = {}
_next = [0]


@contextmanager
def cancel_on_interrupt(cancel: Callable[[], object]) -> Iterator[None]:
    """While the block runs, an interrupt calls ``cancel()`` (from another thread)."""
    with _lock:
        key = _next[0]
        _next[0] += 1
        _cancels[key] = cancel
    try:
        yield
    finally:
        with _lock:
            _cancels.pop(key, None)


def cancel_all() -> None:
    """Call every registered cancel; a failing one does not stop the others."""
    with _lock:
        cancels = list(_cancels.values())
    for cancel in cancels:
        try:
            cancel()
        except Exception:  # noqa: BLE001 - best effort: the interrupt goes on
            pass
