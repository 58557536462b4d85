"""The second chain: Caracal's ``admin_audit_events`` (FORMAT.md 6.4 and 8).

``read_admin(paths)`` reads every admin change export among the paths (files,
directories, globs; event exports beside them are left alone) into one Arrow table of
``model.ADMIN_SCHEMA``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from ..sources import BadLines, InputFile

__all__ = ["read_admin", "admin_inputs", "read_admin_inputs"]


def admin_inputs(paths: Sequence[str] | str, exclude: Sequence[str] = (),
                 fingerprint: bool = True) -> list[InputFile]:
    """The admin change exports among ``paths``, detected by content."""
    from ..sources import scan

    paths = [paths] if isinstance(paths, str) else list(paths)
    return [i for i in scan(paths, fingerprint=fingerprint, exclude=exclude, admin=True)
            if i.holds_admin]


def read_admin_inputs(inputs: list[InputFile], bad: BadLines | None = None) -> pa.Table:
    """The rows of these admin inputs, in input order then file order; sets ``rows``."""
    from ..sources import BadLines, read_admin_rows
    from .model import ADMIN_SCHEMA

    bad = bad or BadLines()
    batches = []
    for source in inputs:
        rows = 0
        for batch in read_admin_rows(source, bad):
            rows += batch.num_rows
            batches.append(batch)
        source.rows = rows
    import pyarrow as pa

    return pa.Table.from_batches(batches, schema=ADMIN_SCHEMA)


def read_admin(paths: Sequence[str] | str, on_bad_line: str = "error",
               exclude: Sequence[str] = ()) -> pa.Table:
    """Every admin change among ``paths`` as one table of ``model.ADMIN_SCHEMA`` (empty
    when there is none). ``on_bad_line``: "error" (an InputError naming the file and
    line) or "skip"."""
    from ..errors import check_on_bad_line
    from ..sources import BadLines

    check_on_bad_line(on_bad_line)
    inputs = admin_inputs(paths, exclude=exclude, fingerprint=False)
    return read_admin_inputs(inputs, BadLines(skip=on_bad_line == "skip"))
