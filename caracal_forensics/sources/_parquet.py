"""Opening Parquet files robustly: a corrupt footer or row group names itself."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ._io import compression_of, open_binary
from .objects import is_object_url, parquet_file


def open_parquet(path: str) -> pq.ParquetFile:
    """A ParquetFile (a compressed one is decompressed into memory first)."""
    try:
        if compression_of(path):
            with open_binary(path) as stream:
                return pq.ParquetFile(io.BytesIO(stream.read()))
        if is_object_url(path):  # ranged GETs: the footer, then each row group's columns
            return parquet_file(path)
        return pq.ParquetFile(path, memory_map=False)
    except InputError:
        raise
    except Exception as error:
        raise InputError(
            path, f"not a readable Parquet file (corrupt footer?): {_short(error)}"
        ) from None


def row_groups(
    path: str, parquet: pq.ParquetFile, columns: list[str]
) -> Iterator[tuple[int, pa.Table]]:
    """(first row index, table) per row group; a corrupt row group is an input error."""
    first = 0
    for index in range(parquet.num_row_groups):
        try:
            table = parquet.read_row_group(index, columns=columns)
        except Exception as error:
            raise InputError(
                path,
                f"corrupt data: {_short(error)}",
                f"row group {index + 1} of {parquet.num_row_groups}",
            ) from None
        yield first, table
        first += table.num_rows


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__
