"""The command line: a thin typer layer over the library (one module per command group).

Imports stay inside functions so ``caracal-forensics --help`` starts instantly.
"""

from __future__ import annotations


def main() -> None:
    """Console-script entry point: the command runs in a process of its own, without
    pandas (``pandas_gate``)."""
    from ..pandas_gate import decline
    from .app import run

    decline()

    run()
