"""Cancelling blocking work when the user interrupts.

Python runs a signal handler (the KeyboardInterrupt of Ctrl-C) only in the main thread,
between two bytecodes. A main thread blocked in native code that does not check for
signals never gets there: DuckDB waiting for its scan of a PostgreSQL COPY, itself
waiting for a statement still running on the server, hung ``snapshot --dsn`` for as
long as the server took. Code about to block that way registers how to cancel the wait
(``with cancel_on_interrupt(connection.cancel_safe): ...``); the CLI calls
:func:`cancel_all` from a thread of its own as soon as a stop signal arrives, the wait
ends, and the handler's KeyboardInterrupt can be raised.

Work that must not be interrupted where the signal lands holds it instead
(``with deferred_interrupts(): ...``): the CLI's handler then only notes it
(:func:`hold_interrupt`), the registered cancels still end the wait, and the block raises
KeyboardInterrupt as it ends, or where the work checks (:func:`check_interrupt`).
``snapshot --dsn`` reads PostgreSQL's COPY so: a KeyboardInterrupt raised in its reading
thread left psycopg ending a COPY whose stream Arrow's reading thread was still reading,
and that wait never ended (seen once in about fifty runs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Signals that stop a command, handled alike so that each cleans up: Ctrl-C (SIGINT),
#: SIGTERM (``kill``, a service manager, a container stop) and SIGHUP (the terminal or
#: the SSH session went away: a snapshot half written was left behind). Exit 128 + the
#: signal. Worker processes ignore them all and leave them to the main process.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def stop_signals() -> list[int]:
    """The numbers of STOP_SIGNALS this platform has."""
    import signal

    return [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]


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


_holding = [0]
_held = [False]


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """While the block runs, a stop signal is noted, not raised where it lands (see the
    module docstring); the block raises KeyboardInterrupt as it ends if one came (in
    place of the error the cancelled work ended with)."""
    _holding[0] += 1
    try:
        yield
    finally:
        _holding[0] -= 1
        if not _holding[0] and _held[0]:
            _held[0] = False
            raise KeyboardInterrupt


def hold_interrupt() -> bool:
    """For a signal handler: whether a block holds interrupts now (the interrupt is
    noted, to be raised when the block ends); False: raise it as usual."""
    if _holding[0]:
        _held[0] = True
        return True
    return False


def check_interrupt() -> None:
    """Raise KeyboardInterrupt here, a place safe for it, if one is held."""
    if _held[0]:
        raise KeyboardInterrupt
