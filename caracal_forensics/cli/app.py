"""The typer application: its commands (registered here, from one table), and how an
error or a signal ends the process (one line on stderr, an exit code)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from .. import __version__
from .options import discard_stdout, warn
from .stopping import exit_interrupted, interruptible

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
        outcome = interruptible(
            lambda: app(args=argv, prog_name="caracal-forensics", standalone_mode=False)
        )
    except KeyboardInterrupt as interrupt:  # first: whatever error the interrupt caused
        exit_interrupted(interrupt)
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
