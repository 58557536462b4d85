"""What the commands share: their common options, where the sources come from, warn.

The command modules import this, never ``app.py``: the app imports the commands (and
registers them, ``app._register_commands``), so dependencies point one way. Imports stay
light here (typer only), so that ``--help`` starts instantly.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

SOURCE_ENV = "CARACAL_FORENSICS_SOURCE"

SourcesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        "-s",
        help=f"Export file, directory, glob or s3://bucket/prefix/ (repeatable). Default: "
        f"${SOURCE_ENV} (several separated by the OS path separator).",
        metavar="PATH",
        show_default=False,
    ),
]
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        metavar="PATTERN",
        help="Leave out the files a glob matches by name, path or directory name, "
        "e.g. 'notes.json' or 'old' (repeatable).",
        show_default=False,
    ),
]
OnBadLineOption = Annotated[
    str,
    typer.Option(
        "--on-bad-line",
        metavar="error|skip",
        help="'error' stops at the first malformed line; 'skip' continues and counts them.",
    ),
]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="local|spark",
        help="'spark' runs on Spark (pip install 'caracal-forensics[spark]'; hourly OCSF "
        "Parquet and snapshots; SPARK_REMOTE, or a local session). See README 'At scale'.",
    ),
]


def spark_sources(sources: list[str] | None, exclude: list[str] | None = None):
    """The sources for ``--engine spark`` (``spark.sources.SparkSources``)."""
    from ..spark import require

    require()  # one line when pyspark is missing, before anything is read
    from ..spark.sources import SparkSources

    return SparkSources(resolve_sources(sources), exclude=exclude or ())


def check_engine(engine: str) -> bool:
    """Whether --engine says spark (a usage error when it names no engine)."""
    from ..spark import check_engine as check

    return check(engine, "--engine") == "spark"


# --- the options of commands that verify (verify, report) ------------------------------
KeyFileOption = Annotated[
    str | None,
    typer.Option(
        "--key-file",
        metavar="FILE",
        help="File holding the HMAC key as hex (else $AUDIT_HMAC_KEY or $AUDIT_HMAC_KEY_FILE); "
        "only its fingerprint is ever shown. Without a key the HMAC is reported unverifiable.",
        show_default=False,
    ),
]
AnchorOption = Annotated[
    str | None,
    typer.Option(
        "--anchor",
        metavar="ANCHOR",
        help="Zone heads seen earlier, which the export must still hold: a verify --report, "
        "a snapshot's manifest.json, or zone_id,last_seq[,last_content_sha256] rows.",
        show_default=False,
    ),
]
VerifyZoneOption = Annotated[
    list[str] | None,
    typer.Option(
        "--zone", metavar="ZONE", help="Verify only this zone (repeatable).", show_default=False
    ),
]
RecoverOption = Annotated[
    bool,
    typer.Option(
        "--recover-microseconds/--no-recover-microseconds",
        help="Recover OCSF rows' microseconds so their content hash can be proven.",
    ),
]
ThroughOption = Annotated[
    str | None,
    typer.Option(
        "--through",
        metavar="HOUR",
        help="The hourly OCSF upload is complete through this hour (UTC, e.g. "
        "2026-05-11T10): an hour without a file from the first found through it is "
        "reported (missing_hour). Default: the watermark a snapshot's manifest records.",
        show_default=False,
    ),
]


def resolve_sources(sources: list[str] | None) -> list[str]:
    """--source values, else $CARACAL_FORENSICS_SOURCE; a usage error when neither is set."""
    from ..errors import UsageError

    if sources:
        return list(sources)
    env = os.environ.get(SOURCE_ENV, "").strip()
    if env:
        import re

        # an s3:// URL's colon is not a separator (os.pathsep is ":" on POSIX)
        separator = r":(?!//)" if os.pathsep == ":" else re.escape(os.pathsep)
        return [part for part in re.split(separator, env) if part]
    raise UsageError(f"no input: pass --source PATH or set {SOURCE_ENV}")


def open_snapshot(sources: list[str] | None, on_bad_line: str = "error", *,
                  by_zone: bool = False, exclude: list[str] | None = None):
    """Open the sources as a Snapshot, reporting skipped lines on stderr (``by_zone``:
    laid out for ``ingest``, see ``open_sources``; ``exclude``: --exclude's patterns)."""
    from ..errors import check_on_bad_line
    from ..snapshot import open_sources
    from .progress import progress

    check_on_bad_line(on_bad_line)  # before "no input": as it was
    paths = resolve_sources(sources)
    with progress("reading the sources"):  # on a terminal's stderr only
        snap = open_sources(paths, on_bad_line=on_bad_line, by_zone=by_zone,
                            exclude=exclude or ())
    if snap.skipped_lines:
        warn(f"skipped {snap.skipped_lines} malformed line(s) (--on-bad-line skip)")
    return snap


def warn(message: str) -> None:
    """One line on stderr, prefixed with the program name. A newline or a terminal escape
    in it (a hostile file name: ``b\\nad.csv``) is shown as an escape, never acted on."""
    if not message.isprintable():
        from ..render.table import printable

        message = printable(message)
    print(f"caracal-forensics: {message}", file=sys.stderr)


def discard_stdout() -> None:
    """Send what is still buffered for stdout to /dev/null, so the flush at exit neither
    fails nor prints "Exception ignored ... BrokenPipeError"."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def print_verdict(result, json_output: bool, print_text) -> None:
    """Print a result with a verdict (verify's report, a reconciliation) as JSON or with
    ``print_text``, then exit with its exit code: a reader that closed the pipe (``|
    head``) leaves that code standing."""
    try:
        if json_output:
            print(result.to_json())
        else:
            print_text(result)
        sys.stdout.flush()
    except BrokenPipeError:
        discard_stdout()
    raise typer.Exit(result.exit_code)


def zone_names_csvs(command):
    """Let the command's ``--zone`` also give the zone of an Admin API CSV whose file name
    does not (``sources.api_csv.zones_given``: a single --zone is such a CSV's zone); the
    error for one without says so with the flag."""
    import functools

    @functools.wraps(command)
    def run(*args, **kwargs):
        from ..errors import InputError
        from ..sources.api_csv import missing_zone, zones_given

        with zones_given(kwargs.get("zone")):
            try:
                return command(*args, **kwargs)
            except InputError as error:
                given = getattr(error, "zones_given", None)
                if given is None:
                    raise
                raise InputError(error.path, missing_zone(given, "pass --zone"),
                                 error.where) from None

    return run
