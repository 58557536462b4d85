"""How a signal stops a command: SIGINT (Ctrl-C) and SIGTERM become KeyboardInterrupt
where it is safe to raise one (not in a finalizer, not while an extension module
initialises), blocking native work is cancelled from a thread of its own, and the
process ends with one line and 128 + the signal, its exit bounded."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .options import warn


class Interrupted(KeyboardInterrupt):
    """A command stopped by a signal (``signum``), whatever error it surfaced as."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def interruptible(call: Callable[[], object]) -> object:
    """``call()`` with SIGINT and SIGTERM raised as KeyboardInterrupt, so that every
    ``finally`` and ``except BaseException`` of the library cleans up on either; raises
    Interrupted when a signal came, whatever the interrupt turned into on its way out
    (DuckDB's "Query interrupted", a cursor left with "an open result", typer's
    Exit(130)) or if some code swallowed it. Only the first signal is raised: a second
    Ctrl-C must not cut the clean-up short (see _StopSignals for a signal landing where
    raising it is unsafe)."""
    import signal

    from ..interrupts import stop_signals

    stop = _StopSignals()
    previous: dict[int, Any] = {}
    try:
        for number in stop_signals():
            if signal.getsignal(number) == signal.SIG_IGN:
                continue  # ignored by whoever started us (a background job, nohup): so be it
            previous[number] = signal.signal(number, stop.handle)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    if previous:
        stop.watcher = _CancelWatcher()
        sys.unraisablehook = stop.unraisable
    signalled = stop.signalled
    try:
        try:
            outcome = call()
        finally:
            for number, old in previous.items():
                # interrupted: what is left to clean up at exit (finalizers) finishes too
                signal.signal(number, signal.SIG_IGN if signalled else old)
            sys.unraisablehook = stop.previous_hook
            if stop.watcher is not None:
                stop.watcher.stop()
    except BaseException as error:
        if signalled:
            raise Interrupted(signalled[0]) from None
        if isinstance(error, KeyboardInterrupt):
            raise Interrupted(signal.SIGINT) from None
        raise
    if signalled:
        raise Interrupted(signalled[0])
    return outcome


class _StopSignals:
    """The handler of the stop signals while a command runs, and the interrupt it owes.

    Python drops an exception raised in a finalizer (a ``weakref.finalize`` callback, a
    ``__del__``, a generator closed as it is freed), printing "Exception ignored in ..."
    and a traceback, and the work goes on: seen in CI, Ctrl-C landing while a DuckDB
    connection's spill directory was being removed. A signal landing in a finalizer, or
    in an extension module's initialisation (``_raising_is_unsafe``), is therefore not
    raised there but delivered again shortly (the watcher thread's ``redeliver``), the
    finalizer or the import finishing meanwhile; one lost all the same (in a generator's
    ``finally``, which the handler cannot tell from any other) is taken from Python's
    report (``sys.unraisablehook``) and delivered again as well."""

    def __init__(self) -> None:
        self.signalled: list[int] = []
        self.watcher: _CancelWatcher | None = None
        self.previous_hook: Callable[[Any], object] = sys.unraisablehook  # put back after
        self._owed = True  # the first signal's KeyboardInterrupt, or a lost one, is due

    def handle(self, signum: int, frame: Any) -> None:
        from ..interrupts import hold_interrupt

        self.signalled.append(signum)
        if not self._owed:
            return
        if self.watcher is not None and _raising_is_unsafe(frame):
            self.watcher.redeliver(self.signalled[0])
            return
        self._owed = False
        if not hold_interrupt():  # held: raised where safe
            raise KeyboardInterrupt

    def unraisable(self, report: Any) -> None:
        if not (self.signalled and isinstance(report.exc_value, KeyboardInterrupt)):
            self.previous_hook(report)
            return
        if self.watcher is not None:
            self.watcher.redeliver(self.signalled[0])
        self._owed = True  # last: no signal handler runs between it and the return


def _raising_is_unsafe(frame: Any) -> bool:
    """Whether ``frame`` runs where a KeyboardInterrupt raised would be lost, or worse:
    in a finalizer (a ``weakref.finalize`` callback, a ``__del__``: Python drops it), or
    in an extension module's initialisation, which calls Python (DuckDB's creating its
    enums: nanobind aborts the process, "Critical nanobind error", seen with Ctrl-C while
    ``duckdb`` was being imported)."""
    while frame is not None:
        if frame.f_code in _UNSAFE_CODE or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _unsafe_code() -> frozenset[Any]:
    import weakref
    from importlib import _bootstrap_external  # type: ignore[attr-defined]

    loader = _bootstrap_external.ExtensionFileLoader
    return frozenset((weakref.finalize.__call__.__code__, loader.create_module.__code__,
                      loader.exec_module.__code__))


_UNSAFE_CODE = _unsafe_code()


#: The byte that asks the watcher to deliver a lost signal again (signals write their
#: number, 1-64; stop() writes 0).
_REDELIVER = b"\xff"
_REDELIVER_DELAY_SECONDS = 0.005


class _CancelWatcher:
    """A thread woken by every signal (``signal.set_wakeup_fd``) that cancels what the
    library registered as blocking (``interrupts.cancel_on_interrupt``): a main thread
    stuck in native code runs no signal handler until that wait ends."""

    def __init__(self) -> None:
        import signal
        import socket
        import threading

        self._receive, self._send = socket.socketpair()
        self._send.setblocking(False)
        self._signum: int = signal.SIGINT  # the signal to deliver again (redeliver)
        try:
            self._previous_fd = signal.set_wakeup_fd(self._send.fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            self._previous_fd = None
        self._thread = threading.Thread(target=self._watch, name="interrupt-watcher",
                                         daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        from ..interrupts import cancel_all

        while True:
            try:
                data = self._receive.recv(64)
            except OSError:
                return
            if not data or b"\0" in data:  # stop() asked to leave, or closed it
                return
            cancel_all()
            if _REDELIVER in data:
                self._deliver_again()

    def redeliver(self, signum: int) -> None:
        """Have ``signum`` delivered to the main thread again, shortly: it runs where
        raising it is unsafe now (see _StopSignals)."""
        self._signum = signum
        try:
            self._send.send(_REDELIVER)
        except OSError:
            pass

    def _deliver_again(self) -> None:
        import _thread
        import time

        # The main thread has long left the hook that asked (it needed the GIL to get
        # here); should the signal land in a finalizer once more, it comes back here.
        time.sleep(_REDELIVER_DELAY_SECONDS)
        _thread.interrupt_main(self._signum)

    def stop(self) -> None:
        import signal

        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
        try:
            self._send.send(b"\0")
        except OSError:
            pass
        self._thread.join(timeout=5)
        self._send.close()
        self._receive.close()


def exit_interrupted(interrupt: KeyboardInterrupt) -> None:
    """One line, and 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM; the exit is
    bounded (``_end_after``)."""
    import signal

    number = getattr(interrupt, "signum", signal.SIGINT)
    name = "" if number == signal.SIGINT else f" ({signal.Signals(number).name})"
    try:
        warn(f"interrupted{name}")
    except OSError:  # stderr went with the terminal (SIGHUP): the exit code says it
        pass
    _end_after(EXIT_GRACE_SECONDS, 128 + number)
    sys.exit(128 + number)


#: How long an interrupted process's exit may take before it is cut short.
EXIT_GRACE_SECONDS = 3.0


def _end_after(seconds: float, code: int) -> None:
    """End the process with ``code`` if its exit still runs ``seconds`` from now.

    An interrupt leaves the process to Python's exit, which joins every thread still
    running: one that nothing ends (a pool's worker started as the interrupt landed)
    held an interrupted command for ever. Past the grace the temporary directories are
    removed, as exit would, and the process ends without waiting."""
    import threading

    def end() -> None:
        import time

        from .. import tempdirs

        time.sleep(seconds)
        tempdirs.remove_all()
        os._exit(code)

    threading.Thread(target=end, name="exit-grace", daemon=True).start()
