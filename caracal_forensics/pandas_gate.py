"""Keep pandas out of a command-line process unless a step hands it data.

pyarrow's first conversion of Python values (``pa.array``, ``pa.scalar``, a compute call
with a Python operand) asks whether each value is a pandas object, and imports pandas,
where it is installed (the spark extra brings it), to find out: 0.11-0.13 s at the start
of ``stats`` or ``audit tail`` over a text export, ``verify``, ``explain``, for values
that are never pandas objects. It also changes what a nanosecond time becomes
(``pandas.Timestamp`` or ``datetime``), so a command's output could depend on whether
pandas happens to be installed.

:func:`decline` makes ``import pandas`` fail in this process: pyarrow then remembers
pandas as absent for those checks (an explicit ``from_pandas``/``to_pandas`` tries the
import again). Only the console script declines (``cli.main``): a notebook, or any other
program using the library, keeps pandas. The Spark engine hands pandas data frames about
and calls :func:`allow` before it starts.
"""

from __future__ import annotations

import sys

_DECLINED = "pandas"


class _Declined:
    """A finder (first on ``sys.meta_path``) that refuses pandas and its submodules."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname == _DECLINED or fullname.startswith(_DECLINED + "."):
            raise ModuleNotFoundError(
                f"{fullname} is not imported by the command line (pandas_gate.allow "
                "lets it)", name=fullname)
        return None


_FINDER = _Declined()


def decline() -> None:
    """Refuse ``import pandas`` from here on, unless it is imported already."""
    if _DECLINED not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def allow() -> None:
    """Let pandas be imported again (a no-op unless :func:`decline` was called)."""
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
