"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Import the package from the source tree even when it is not pip-installed.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pgserver import PgServer  # noqa: E402


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """A private PostgreSQL server, started on first use and removed after the session.

    Fails (does not skip) when PostgreSQL is not installed: the Makefile installs it.
    """
    server = PgServer()  # raises PgNotInstalled with instructions if binaries are missing
    server.start()
    try:
        yield server
    finally:
        server.stop()
