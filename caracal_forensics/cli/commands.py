"""Imports every command module so that each registers itself on the typer app."""

from __future__ import annotations

from . import (
    alerts,  # noqa: F401
    audit,  # noqa: F401
    explain,  # noqa: F401
    ingest,  # noqa: F401
    query,  # noqa: F401
    report,  # noqa: F401
    snapshot,  # noqa: F401
    stats,  # noqa: F401
    verify,  # noqa: F401
)
