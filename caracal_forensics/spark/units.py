"""The pieces of the input that Spark tasks read: a slice of one Parquet row group.

The driver lists them from the files' footers (``plan``); each executor reads its
pieces with the package's own readers (``read``), so a row carries the same provenance
(file, 1-based row) and the same shape fields as with the local engine. A zone spans as
many pieces as its rows fill: nothing ties a zone to one task.
"""

from __future__ import annotations

import os
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
PIECE_SCHEMA = ("no long, path string, shape string, grp int, first long, start long, "
                "rows long, at string")


@dataclass(frozen=True)
class Piece:
    no: int        # its number: rows are identified as (no << 32) + row within the piece
    path: str      # the Parquet file
    shape: str     # Shape.OCSF_PARQUET, or Shape.SNAPSHOT for a snapshot's event file
    grp: int       # row group
    first: int     # the row group's first row in the file (0-based)
    start: int     # the slice's first row within the row group
    rows: int
    at: str = ""   # where a task opens it: the path made absolute (a task's working
    #                directory is not ours, with Spark Connect or on a cluster)

    def row(self) -> tuple:
        """The piece as a row of PIECE_SCHEMA."""
        return (self.no, self.path, self.shape, self.grp, self.first, self.start, self.rows,
                self.at or self.path)


def plan(inputs: Sequence, piece_rows: int = PIECE_ROWS) -> list[Piece]:
    """The pieces of ``inputs`` (``sources.InputFile``: OCSF files and snapshots), in the
    order the local engine reads them."""
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
            meta = parquet_file(path).metadata
            first = 0
            for grp in range(meta.num_row_groups):
                n = meta.row_group(grp).num_rows
                at = path if is_remote(path) else os.path.abspath(path)
                for start in range(0, n, step):
                    pieces.append(Piece(len(pieces), path, shape, grp, first, start,
                                        min(step, n - start), at))
                first += n
    return pieces


#: URL schemes read through pyarrow's S3 filesystem (s3a:// is what Spark users write).
REMOTE = ("s3a://", "s3://")


def aws_env() -> dict[str, str]:
    """The driver's object-store settings for the tasks (``use_env``): the variables
    ``settings.OBJECT_STORE_ENVS`` names, as every ``s3://`` source reads them."""
    from ..settings import object_store_environment

    return {name: value for name, value in object_store_environment().items() if value}


def use_env(env: dict[str, str]) -> None:
    """In a task: the driver's object-store settings where the executor has none."""
    from ..settings import adopt_object_store_environment

    adopt_object_store_environment(env)


def is_remote(path: str) -> bool:
    return path.startswith(REMOTE)


def s3(path: str) -> tuple[object, str]:
    """(pyarrow's S3FileSystem, "bucket/key") for an s3a:// or s3:// URL, made as for every
    ``s3://`` source (``sources.objects.filesystem``: credentials, region, the endpoint
    of a MinIO/Ceph-style store addressed path-style)."""
    from ..sources.objects import filesystem

    inner = path.split("://", 1)[1]
    return filesystem(inner.split("/", 1)[0]), inner


def parquet_file(path: str):
    """A ParquetFile of a local path (``sources._parquet.open_parquet``) or an S3 URL."""
    if not is_remote(path):
        from ..sources._parquet import open_parquet

        return open_parquet(path)
    import pyarrow.parquet as pq

    from ..errors import InputError

    filesystem, inner = s3(path)
    try:
        return pq.ParquetFile(filesystem.open_input_file(inner))
    except Exception as error:
        raise InputError(path, f"not a readable Parquet object: {str(error)[:200]}") from None


def remote_inputs(paths: Sequence[str], spark) -> list:
    """The hourly OCSF objects under s3a:// (or s3://) prefixes, as ``InputFile``s: URL,
    size, and SHA-256 computed in the executors (each object streamed once)."""
    from pyarrow import fs

    from ..sources import InputFile, ocsf_parquet

    found: list = []
    for path in paths:
        filesystem, inner = s3(path)
        scheme = path.split("://", 1)[0]
        info = filesystem.get_file_info(inner)
        if info.type == fs.FileType.File:
            listed = [info]
        else:
            listed = filesystem.get_file_info(fs.FileSelector(inner.rstrip("/"), recursive=True))
        for item in sorted(listed, key=lambda i: i.path):
            if item.type == fs.FileType.File and item.path.endswith(".parquet"):
                url = f"{scheme}://{item.path}"
                if not ocsf_parquet.looks_like(parquet_file(url).schema_arrow):
                    raise UsageError(f"{url} is not an hourly OCSF Parquet file", "engine")
                found.append(InputFile(path=url, shape=Shape.OCSF_PARQUET, bytes=item.size,
                                       sha256=""))
    if found:
        digests = dict(spark.createDataFrame([(i.path,) for i in found], "path string")
                       .repartition(min(len(found), 64))
                       .mapInArrow(_sha256_task(aws_env()), "path string, sha256 string")
                       .collect())
        for source in found:
            source.sha256 = digests[source.path]
    return found


def _sha256_task(env: dict[str, str]):
    """mapInArrow: SHA-256 of each object, streamed (runs in the executors)."""
    return lambda batches: _sha256s(env, batches)


def _sha256s(env, batches):
    import hashlib

    use_env(env)
    for batch in batches:
        paths = batch.column("path").to_pylist()
        digests = []
        for path in paths:
            filesystem, inner = s3(path)
            digest = hashlib.sha256()
            with filesystem.open_input_stream(inner) as stream:
                while chunk := stream.read(1 << 22):
                    digest.update(chunk)
            digests.append(digest.hexdigest())
        yield pa.RecordBatch.from_pydict({"path": paths, "sha256": digests})


def scan_any(paths: Sequence[str], exclude: Sequence[str], spark) -> list:
    """``sources.scan`` of local paths, ``remote_inputs`` of s3a:// and s3:// URLs."""
    from ..sources import scan

    local = [p for p in paths if not is_remote(p)]
    remote = [p for p in paths if is_remote(p)]
    return ((scan(local, exclude=exclude) if local else [])
            + (remote_inputs(remote, spark) if remote else []))


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

    parquet = parquet_file(piece.get("at") or piece["path"])
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
