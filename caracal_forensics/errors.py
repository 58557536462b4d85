"""Typed errors with a human message. The CLI turns each into one stderr line and exit 2
(4 for ``NotFoundError``; 1 is "tampered", never an error).

The library never prints or exits; it raises one of these. ``str(error)`` is the line a
user sees, so it names the file and the line, row or row group when there is one. The
library speaks of its parameters (``limit must be ...``); a ``UsageError`` about one
carries its name in ``parameter``, and the CLI says the flag instead (``cli/app.py``,
``FLAGS``).
"""

from __future__ import annotations


class ForensicsError(Exception):
    """Base class: a problem the user can fix (bad input, bad flag), not a bug."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ForensicsError):
    """A key or parameter is wrong. ``parameter``: the parameter's name, when the message
    begins with it (the CLI puts the flag in its place)."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self):  # rebuilt from its parts when it crosses a process boundary
        return (type(self), (self.message, self.parameter))


class HmacKeyError(UsageError):
    """The HMAC key is unusable (not hex, too short, unreadable file). Never holds the key."""


class InputError(ForensicsError):
    """An input file is unreadable, malformed or of an unknown shape.

    ``where`` is a human location inside the file: ``line 12``, ``row 7``, ``row group 3``.
    """

    def __init__(self, path: str, problem: str, where: str | None = None) -> None:
        self.path = path
        self.where = where
        self.problem = problem
        location = f"{path}: {where}" if where else path
        super().__init__(f"{location}: {problem}")

    def __reduce__(self):  # rebuilt from its parts when it crosses a process boundary
        return (type(self), (self.path, self.problem, self.where))


class NotFoundError(ForensicsError):
    """A looked-up thing (request id, event id, query name) is not in the data. Its own
    exit code, 4: not an input error (2), and never 1, which says "tampered"."""

    exit_code = 4


class DatabaseError(ForensicsError):
    """A live PostgreSQL could not be read (refused, auth failed, no table, no rights)."""


#: The values of ``on_bad_line``: stop at the first malformed line, or skip and count.
ON_BAD_LINE = ("error", "skip")


def check_choice(parameter: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` when it is one of ``choices``, else a UsageError naming ``parameter``."""
    if value not in choices:
        wanted = " or ".join(repr(choice) for choice in choices)
        raise UsageError(f"{parameter} must be {wanted}, not {value!r}", parameter)
    return value  # type: ignore[return-value]


def check_on_bad_line(value: object) -> str:
    """The one check of ``on_bad_line`` (open_sources, follow, verify)."""
    return check_choice("on_bad_line", value, ON_BAD_LINE)
