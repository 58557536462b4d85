"""The typer application: its commands (registered here, from one table), and how an
error or a signal ends the process (one line on stderr, an exit code)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from .. import __version__
from .options import discard_stdout, warn

app = typer.Typer(
    name="caracal-forensics",
    help="Offline forensics for exported Caracal audit data: filter, explain, verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
audit_app = typer.Typer(
    help="Read the audit stream (mirrors `caracal audit`).", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")
admin_app = typer.Typer(
    help="Read the admin changes, the second chain (admin_audit_events).",
    no_args_is_help=True,
)
app.add_typer(admin_app, name="admin")


def version_callback(value: bool) -> None:
    if value:
        print(f"caracal-forensics {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True)
    ] = False,
) -> None:
    """Offline forensics for exported Caracal audit data."""


#: Every command as (its group, its module in ``cli/``, its function), in the order
#: ``--help`` lists them; the function's name is the command's (``_`` as ``-``).
COMMANDS: tuple[tuple[str | None, str, str], ...] = (
    (None, "alerts", "alerts"), (None, "explain", "explain"), (None, "ingest", "ingest"),
    (None, "query", "query"), (None, "query", "sql"), (None, "verify", "verify"),
    (None, "report", "report"), (None, "snapshot", "snapshot"), (None, "stats", "stats"),
    (None, "timeline", "timeline"), (None, "reconcile", "reconcile"),
    ("audit", "audit", "tail"), ("admin", "admin", "tail"),
)

_registered: set[tuple[str | None, str, str]] = set()


def _register_commands(argv: list[str] | None = None) -> None:
    """Register the command ``argv`` runs on ``app`` or its group, or every command when
    ``argv`` names none exactly (None, ``--help``, a group alone, a typo: the help and
    click's "No such command" list them all). typer builds each registered command's
    options from its signature at every start (14 ms for all of them); a run needs its
    own. A new command: a function in a module of ``cli/`` (importing ``options``, not
    this module) and a line in ``COMMANDS``. Registering twice does nothing."""
    import importlib

    invoked = _invoked(argv)
    wanted = [invoked] if invoked else list(COMMANDS)
    if _registered.issuperset(wanted):
        return
    groups = {"audit": audit_app, "admin": admin_app}
    if invoked is None:  # all of them, in their order, after one run's own (tests)
        for typer_app in (app, *groups.values()):
            typer_app.registered_commands.clear()
        _registered.clear()
    for entry in wanted:
        group, module, function = entry
        command = getattr(importlib.import_module(f".{module}", __package__), function)
        (groups[group] if group else app).command()(command)
        _registered.add(entry)


def _invoked(argv: list[str] | None) -> tuple[str | None, str, str] | None:
    """The entry of ``COMMANDS`` that ``argv`` runs, if it names one: its first words,
    after flags only (the root's options, ``--version`` and ``--help``, take no value)."""
    path: list[str] = []
    for word in argv or ():
        if word.startswith("-"):
            if path:  # a group's or a command's own options: the path is what it is
                break
            continue
        path.append(word)
        if len(path) == 2 or path[0] not in ("audit", "admin"):
            break
    group, name = (path[0], path[1:]) if path[:1] in (["audit"], ["admin"]) else (None, path)
    return next((entry for entry in COMMANDS
                 if name and entry[0] == group and entry[2].replace("_", "-") == name[0]),
                None)


#: set to show the traceback of an unexpected error instead of its one line
DEBUG_VARIABLE = "CARACAL_FORENSICS_DEBUG"


def run(argv: list[str] | None = None) -> None:
    """Run the CLI; a ForensicsError becomes one stderr line and its exit code, and so
    does any other error (exit 2)."""
    from ..errors import ForensicsError

    try:
        _register_commands(sys.argv[1:] if argv is None else argv)
        # not standalone: click's usage errors come here, to be one line like the rest
        outcome = _interruptible(
            lambda: app(args=argv, prog_name="caracal-forensics", standalone_mode=False)
        )
    except KeyboardInterrupt as interrupt:  # first: whatever error the interrupt caused
        _exit_interrupted(interrupt)
    except ForensicsError as error:
        warn(f"error: {_in_flags(error)}")
        sys.exit(error.exit_code)
    except BrokenPipeError:
        # `... | head` closed the pipe: not an error for a filter command.
        discard_stdout()
        sys.exit(0)
    except SystemExit as stop:
        # click (and rich) meet a closed pipe first and exit 1 from inside their handler
        # of the BrokenPipeError; that is `| head` too, not a failure.
        if isinstance(stop.__context__, BrokenPipeError):
            discard_stdout()
            sys.exit(0)
        raise
    except OSError as error:  # the system refused a file no check looked at first
        warn(f"error: {error.filename or 'a file'}: {error.strerror or error}")
        sys.exit(2)
    except Exception as error:  # noqa: BLE001 - input no check foresaw, or a bug
        _exit_on_click_error(error)
        # Still one line and exit 2, never a traceback in an investigator's terminal;
        # CARACAL_FORENSICS_DEBUG=1 shows where it came from, and still exits 2 (1 would
        # say "tampered").
        if os.environ.get(DEBUG_VARIABLE):
            import traceback

            traceback.print_exc()
            sys.exit(2)
        _exit_on_unreadable_data(error)
        text = str(error).strip().splitlines()
        warn(f"error: unexpected {type(error).__name__}: {text[0][:300] if text else ''} "
             f"(set {DEBUG_VARIABLE}=1 for the traceback)")
        sys.exit(2)
    # a command's typer.Exit(code) (and --help's) comes back as its code
    sys.exit(outcome if isinstance(outcome, int) else 0)


#: The library's words for what the CLI calls otherwise, in one table: a UsageError names
#: its parameter(s) (``error.parameter``) and ``_in_flags`` puts the flag in its place
#: (the first time the message says it). A parameter not listed keeps its name.
FLAGS = {
    "decision": "--decision",
    "event_type": "--event-type",
    "zone": "--zone",
    "since": "--since",
    "until": "--until",
    "through": "--through",
    "request_id": "--request-id",
    "limit": "--limit",
    "interval": "--interval",
    "paths": "--source",
    "exclude": "--exclude",
    "on_bad_line": "--on-bad-line",
    "out_dir": "--out",
    "param": "--param",
    "load_queries()": "`caracal-forensics query --list`",
    "actor": "--actor",
    "entity_type": "--entity-type",
    "entity_id": "--entity-id",
    "method": "--method",
    "status": "--status",
}


def _in_flags(error: Exception) -> str:
    """An error's line as the CLI says it: the flag where the library names its parameter
    (``FLAGS``), and a stray file's way out is --exclude, not the library's
    ``exclude=[...]``."""
    import re

    text = str(error)
    names = getattr(error, "parameter", None)
    for name in (names,) if isinstance(names, str) else names or ():
        if name in FLAGS:
            pattern = rf"(?<![\w-]){re.escape(name)}(?![\w-])"
            text = re.sub(pattern, FLAGS[name].replace("\\", r"\\"), text, count=1)
    name = getattr(error, "exclude_name", None)
    if name is not None:
        import shlex

        text = text.replace(f"(pass exclude=[{name!r}] to leave it out)",
                            f"(pass --exclude {shlex.quote(name)} to leave it out)")
    return text


#: Signals that stop a command: Ctrl-C, and SIGTERM (``kill``, a service manager, a
#: container stop), handled alike so that both clean up; exit 128 + the signal.
_STOP_SIGNALS = ("SIGINT", "SIGTERM")


class Interrupted(KeyboardInterrupt):
    """A command stopped by a signal (``signum``), whatever error it surfaced as."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interruptible(call: Callable[[], object]) -> object:
    """``call()`` with SIGINT and SIGTERM raised as KeyboardInterrupt, so that every
    ``finally`` and ``except BaseException`` of the library cleans up on either; raises
    Interrupted when a signal came, whatever the interrupt turned into on its way out
    (DuckDB's "Query interrupted", a cursor left with "an open result", typer's
    Exit(130)) or if some code swallowed it. Only the first signal is raised: a second
    Ctrl-C must not cut the clean-up short (see _StopSignals for a signal landing in a
    finalizer)."""
    import signal

    stop = _StopSignals()
    previous: dict[int, Any] = {}
    try:
        for name in _STOP_SIGNALS:
            number = getattr(signal, name)
            if signal.getsignal(number) == signal.SIG_IGN:
                continue  # ignored by whoever started us (a background job, nohup): so be it
            previous[number] = signal.signal(number, stop.handle)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    previous_hook = sys.unraisablehook
    if previous:
        stop.watcher = _CancelWatcher()
        stop.previous_hook = previous_hook
        sys.unraisablehook = stop.unraisable
    signalled = stop.signalled
    try:
        try:
            outcome = call()
        finally:
            for number, old in previous.items():
                # interrupted: what is left to clean up at exit (finalizers) finishes too
                signal.signal(number, signal.SIG_IGN if signalled else old)
            sys.unraisablehook = previous_hook
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
        self.previous_hook: Callable[[Any], object] = sys.__unraisablehook__
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


def _exit_interrupted(interrupt: KeyboardInterrupt) -> None:
    """One line, and 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM; the exit is
    bounded (``_end_after``)."""
    import signal

    number = getattr(interrupt, "signum", signal.SIGINT)
    name = "" if number == signal.SIGINT else f" ({signal.Signals(number).name})"
    warn(f"interrupted{name}")
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


def _exit_on_unreadable_data(error: Exception) -> None:
    """A DuckDB error that got this far: SQL a user typed fails earlier, as a usage
    error, so this is the toolkit's own query failing on the data, typically a snapshot
    part corrupted in place (its size unchanged, which opening does not hash; ``verify``
    does, and names the file). One line, exit 2, and where to look. Running out of
    memory or of disk is said as such: it is the machine, not the evidence. Returns
    otherwise."""
    kind = type(error)
    if kind.__module__.lstrip("_") != "duckdb":
        return
    text = str(error).strip().splitlines()
    first = text[0][:300] if text else kind.__name__
    if kind.__name__ == "OutOfMemoryException" or first.startswith("Out of Memory Error"):
        from ..settings import MEMORY_LIMIT_ENV

        warn(f"error: out of memory: {first} (raise ${MEMORY_LIMIT_ENV}, or free memory)")
    elif "No space left on device" in first or "[errno 28]" in first.lower():
        warn(f"error: the disk is full: {first} (temporary files go to $TMPDIR)")
    else:
        from ..engine import query_error
        from ..errors import InputError

        found = query_error(error, prefix="reading the data failed")
        # a snapshot's file changed in place, named; else where to look
        warn(f"error: {found}" if isinstance(found, InputError) else
             f"error: reading the data failed: {first} "
             "(`verify` checks a snapshot's files against its manifest)")
    sys.exit(2)


def _exit_on_click_error(error: Exception) -> None:
    """click's own errors (a bad flag value, an unknown option or command; typer carries
    its own copy of click, older typers import click): one line and their exit code, as
    for every other user error, instead of click's four lines of usage and hint. A
    command group called with nothing still shows its help; Abort (Ctrl-C at a prompt)
    exits 1. Returns if ``error`` is none of these."""
    name = type(error).__name__
    if name == "Abort":
        sys.exit(1)
    message = getattr(error, "format_message", None)
    code = getattr(error, "exit_code", None)
    if not callable(message) or not isinstance(code, int):
        return
    if name == "NoArgsIsHelpError":
        error.show()  # type: ignore[attr-defined]
        sys.exit(code)
    context = getattr(error, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    warn(f"error: {message()}{hint}")
    sys.exit(code)
