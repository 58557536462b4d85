"""The Admin API's CSV export ``audit-{zone}.csv`` (FORMAT.md 6.2), read back into rows.

The export has no zone_id column: the zone is the file name's ``{zone}`` (or the
``zone`` parameter). The API cannot put ``:`` or ``/`` in a file name and writes ``_``
in their place (zone ``zone:prod/eu-1`` is saved as ``audit-zone_prod_eu-1.csv``), so
such a zone id comes back with ``_`` unless ``zone=`` gives the real one. Whoever opens
sources without calling ``read`` (``cf.open``, verify; the CLI's ``--zone``) names the
zones in ``zones_given``: one of them whose file name form is the name's ``{zone}`` is
that file's zone, and a single one is the zone of a CSV whose name carries none.

Cell rules undone: an empty cell is NULL (a metadata key absent); a ``'`` before ``=``,
``+``, ``-``, ``@``, TAB or CR is the spreadsheet formula guard and is dropped; the
``determining_policies`` names (joined by one space) become ``[{"policy": name}]``;
every column after it is a metadata key, put back into ``metadata_json`` as text
(arrays stay their space-joined text, which cannot be split back safely), except the
numeric keys ``NUMERIC_KEYS``, kept as the number written. A ``[object Object]`` cell
held an object the export threw away: it is never invented, the key is left out of
``metadata_json`` and named ``metadata_json.<key>`` in ``absent_fields``. The export
never carries diagnostics, hashes, HMAC, chain_seq or signature (all absent).
``source_line`` is the line a record starts on (the header is line 1; a record may span
lines, a quoted newline in a cell).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pyarrow as pa

from ..errors import InputError
from ..jsonb import dumps, loads
from ..model import Shape
from ._batch import BadLines, rows_to_batches
from ._io import csv_records
from .api_json import EXPORT_FIELDS

SHAPE = Shape.API_CSV
#: The row's own columns among the export fields (the rest are metadata keys).
ROW_COLUMNS = EXPORT_FIELDS[: EXPORT_FIELDS.index("determining_policies")]
#: Metadata keys whose values are numbers: a cell holding a JSON number is kept a number.
NUMERIC_KEYS = frozenset({"delegation_hop_count", "latency_ms", "upstream_status",
                          "response_bytes"})
#: What the export writes for an object value (its content is lost).
LOST = "[object Object]"
GUARDED = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NAME = re.compile(r"audit-(.+)\.csv(\.gz|\.zst)?")
#: Absent from every row of this shape.
ALWAYS_ABSENT = ("diagnostics_json", "content_sha256", "prev_content_sha256", "chain_hmac",
                 "chain_seq", "ingest_signature")


def looks_like(header: list[str]) -> bool:
    """The export's header: ``id`` and ``occurred_at``, only export fields (``fields=``
    may choose and order them), never a dump's zone_id or chain columns."""
    return (bool(header) and "id" in header and "occurred_at" in header
            and all(name in EXPORT_FIELDS for name in header))


def zone_from_name(path: str) -> str | None:
    """``{zone}`` of ``audit-{zone}.csv`` (``_`` where the zone id held ``:`` or ``/``)."""
    match = _NAME.fullmatch(os.path.basename(path))
    return match.group(1) if match else None


#: The zones given by whoever reads now (``zones_given``), innermost last. Module state,
#: not a context variable: the readers run on the spool's thread.
_GIVEN: list[tuple[str, ...]] = []


@contextmanager
def zones_given(zones: str | Sequence[str] | None) -> Iterator[None]:
    """While inside, the CSVs read take their zone from ``zones`` where their file name
    does not give it whole (see the module docstring); ``None`` or ``[]``: no zone given."""
    _GIVEN.append((zones,) if isinstance(zones, str) else tuple(zones or ()))
    try:
        yield
    finally:
        _GIVEN.pop()


def file_name_zone(zone: str) -> str:
    """A zone id as the API writes it into the file name (``:`` and ``/`` as ``_``)."""
    return zone.replace(":", "_").replace("/", "_")


def zone_of(path: str, zone: str | None = None) -> str:
    """The zone of the CSV at ``path``: ``zone``, else the file name's, given back whole
    by a zone given (``zones_given``) that it stands for, else the one zone given. An
    InputError naming the file otherwise; its ``zones_given`` says what was given, so
    that the CLI can word it with its flag."""
    if zone:
        return zone
    named = zone_from_name(path)
    given = _GIVEN[-1] if _GIVEN else ()
    if named:
        return next((z for z in given if file_name_zone(z) == named), named)
    if len(given) == 1:
        return given[0]
    error = InputError(path, missing_zone(given, "give the zone parameter (zones_given)"))
    error.zones_given = given  # type: ignore[attr-defined]
    raise error


def missing_zone(given: Sequence[str], how: str) -> str:
    """Why a CSV has no zone, and ``how`` to give it (the library's words or the CLI's)."""
    if not given:
        return ("an Admin API CSV has no zone_id column and this file is not named "
                f"audit-{{zone}}.csv: {how} with the zone of its events, or rename it so")
    return ("an Admin API CSV has no zone_id column, this file is not named "
            f"audit-{{zone}}.csv and {len(given)} zones are given ({', '.join(given)}): "
            f"{how} only once, with the zone of its events, or rename it so")


def unguard(cell: str) -> str:
    """A cell without the formula guard the export prepended."""
    if len(cell) >= 2 and cell[0] == "'" and cell[1] in GUARDED:
        return cell[1:]
    return cell


def read(path: str, bad: BadLines, zone: str | None = None) -> Iterator[pa.RecordBatch]:
    """The export's events; ``zone``: the zone id when the file is not ``audit-{zone}.csv``
    (or to give back a zone id holding ``:`` or ``/``)."""
    return rows_to_batches(_rows(path, bad, zone_of(path, zone)), path)


def _rows(path: str, bad: BadLines, zone: str) -> Iterator[dict]:
    for number, header, record in csv_records(path, bad):
        try:
            row = parse_record(header, record, zone)
        except ValueError as error:
            bad.handle(InputError(path, str(error), f"line {number}"))
            continue
        row.update(source_file=path, source_line=number, source_shape=SHAPE)
        yield row


def parse_record(header: list[str], record: list[str], zone: str) -> dict:
    """One CSV record as a model row (see the module docstring for the cell rules)."""
    row: dict = {"zone_id": zone, "occurred_at_digits": 3}
    absent = [name for name in ROW_COLUMNS if name not in header]
    absent += list(ALWAYS_ABSENT)
    metadata: dict = {}
    lost: list[str] = []
    for name, raw in zip(header, record, strict=True):
        cell = unguard(raw)
        if name in ROW_COLUMNS:
            row[name] = cell or None
        elif name == "determining_policies":
            row["determining_policies_json"] = (
                dumps([{"policy": policy} for policy in cell.split(" ")]) if cell else None)
        elif cell == LOST:
            lost.append(name)
        elif cell:
            metadata[name] = loads(cell) if name in NUMERIC_KEYS and _NUMBER.fullmatch(
                cell) else cell
    if "determining_policies" not in header:
        absent.append("determining_policies_json")
    row["metadata_json"] = dumps(metadata) if metadata else None
    absent += [f"metadata_json.{name}" for name in lost]
    for name in ("id", "occurred_at"):
        if not row.get(name):
            raise ValueError(f"missing required field {name!r}")
    row["absent_fields"] = ",".join(absent)
    return row
