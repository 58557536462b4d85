"""A progress line on stderr for long work (reading the sources, ingest, verify), drawn
only when stderr is a terminal: nothing at all in a pipe, a file or a test's capture.

rich is imported only when there is a terminal to draw on, and the line is transient:
it is gone when the work ends, before any output is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """What a command may tell the progress line: how far it is (see :meth:`counting`)."""

    def __init__(self, bar: Any = None, task: Any = None) -> None:
        self._bar = bar
        self._task = task

    def counting(self, text: str) -> Callable[[int, int], None] | None:
        """A ``(done, total)`` callback (``verify``'s ``progress``) showing ``text`` and how
        far it is; None without a terminal, so the work skips its reports."""
        bar, task = self._bar, self._task
        if bar is None:
            return None

        def update(done: int, total: int) -> None:
            bar.update(task, description=text, completed=done, total=total)

        return update


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


@contextmanager
def progress(text: str) -> Iterator[Progress]:
    """A transient progress line on stderr saying ``text`` and the time elapsed, while
    the block runs; a no-op when stderr is not a terminal."""
    if not stderr_is_terminal():
        yield Progress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    bar = Bar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True, highlight=False, markup=False, emoji=False),
        transient=True,
        # stdout is the command's, never wrapped (pipes, `| head`, the BrokenPipe path)
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with bar:
        yield Progress(bar, bar.add_task(text, total=None))
