"""The command line: a thin typer layer over the library (one module per command group).

Imports stay inside functions so ``caracal-forensics --help`` starts instantly.
"""

from __future__ import annotations


def main() -> None:
    """Console-script entry point: the command runs in a process of its own, without
    pandas (``pandas_gate``)."""
    try:
        from ..pandas_gate import decline
        from .app import run

        decline()
    except KeyboardInterrupt:  # Ctrl-C while starting up, before run() handles signals
        import sys

        print("caracal-forensics: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    run()
