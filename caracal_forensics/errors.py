"""Typed errors with a human message. The CLI turns each into one stderr line and exit 2.

The library never prints or exits; it raises one of these. ``str(error)`` is the line a
user sees, so it names the file and the line, row or row group when there is one.
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
    """A flag, key or parameter is wrong."""


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
    """A looked-up thing (request id, event id, query name) is not in the data."""

    exit_code = 1


class DatabaseError(ForensicsError):
    """A live PostgreSQL could not be read (refused, auth failed, no table, no rights)."""
