"""Imports every command module so that each registers itself on the typer app."""

from __future__ import annotations

from . import ingest  # noqa: F401
