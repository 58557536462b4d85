"""The pieces of the input that Spark tasks read: a slice of one Parquet row group.

The driver lists them from the files' footers (``plan``); each executor reads its
pieces with the package's own readers (``read``), so a row carries the same provenance
(file, 1-based row) and the same shape fields as with the local engine. A zone spans as
many pieces as its rows fill: nothing ties a zone to one task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from ..errors import UsageError
from ..model import EVENT_SCHEMA, Shape

#: Rows per piece (a task's unit of reading) unless told otherwise: a row group is read
#: whole up to this many rows.
PIECE_ROWS = 1_000_000

#: The shapes the Spark engine reads: partitioned Parquet.
SHAPES = (Shape.OCSF_PARQUET, Shape.SNAPSHOT)

#: A piece as a Spark row.
PIECE_SCHEMA = "no long, path string, shape string, grp int, first long, start long, rows long"


@dataclass(frozen=True)
class Piece:
    no: int        # its number: rows are identified as (no << 32) + row within the piece
    path: str      # the Parquet file
    shape: str     # Shape.OCSF_PARQUET, or Shape.SNAPSHOT for a snapshot's event file
    grp: int       # row group
    first: int     # the row group's first row in the file (0-based)
    start: int     # the slice's first row within the row group
    rows: int


def plan(inputs: Sequence, piece_rows: int = PIECE_ROWS) -> list[Piece]:
    """The pieces of ``inputs`` (``sources.InputFile``: OCSF files and snapshots), in the
    order the local engine reads them."""
    from ..sources._parquet import open_parquet
    from ..sources.snapshot_dir import event_files

    other = [i for i in inputs if i.shape not in SHAPES]
    if other:
        raise UsageError(
            f"the spark engine reads hourly OCSF Parquet and canonical snapshots; "
            f"{other[0].path} is {other[0].shape} (use the local engine, or ingest it "
            f"into a snapshot first)", parameter="engine")
    pieces: list[Piece] = []
    step = max(1, int(piece_rows))
    for source in inputs:
        files = ([(source.path, Shape.OCSF_PARQUET)] if source.shape == Shape.OCSF_PARQUET
                 else [(f, Shape.SNAPSHOT) for f in event_files(source.path)])
        for path, shape in files:
            meta = open_parquet(path).metadata
            first = 0
            for grp in range(meta.num_row_groups):
                n = meta.row_group(grp).num_rows
                for start in range(0, n, step):
                    pieces.append(Piece(len(pieces), path, shape, grp, first, start,
                                        min(step, n - start)))
                first += n
    return pieces


def count_rows(inputs: Sequence, pieces: Sequence[Piece]) -> None:
    """Each OCSF input's rows, as the local engine counts them while reading."""
    held: dict[str, int] = {}
    for piece in pieces:
        held[piece.path] = held.get(piece.path, 0) + piece.rows
    for source in inputs:
        if source.shape == Shape.OCSF_PARQUET and not source.rows:
            source.rows = held.get(source.path, 0)


def read(piece: dict) -> pa.Table:
    """The events of one piece in EVENT_SCHEMA (run in an executor)."""
    from ..sources import ocsf_parquet
    from ..sources._batch import absent_list
    from ..sources._parquet import open_parquet

    parquet = open_parquet(piece["path"])
    if piece["shape"] == Shape.OCSF_PARQUET:
        names = parquet.schema_arrow.names
        present = {f: c for f, c in ocsf_parquet.COLUMNS.items() if c in names}
        table = parquet.read_row_group(piece["grp"], columns=list(present.values()))
        table = table.slice(piece["start"], piece["rows"])
        batch = ocsf_parquet._to_events(table, piece["path"], piece["first"] + piece["start"],
                                        present, absent_list(present))
        return pa.Table.from_batches([batch])
    table = parquet.read_row_group(piece["grp"]).slice(piece["start"], piece["rows"])
    columns = [table.column(name).cast(field.type) if name in table.column_names
               else pa.nulls(table.num_rows, field.type)
               for name, field in zip(EVENT_SCHEMA.names, EVENT_SCHEMA, strict=True)]
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)
