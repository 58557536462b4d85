"""Parsing large JSON lines files on every core.

Per-line JSON parsing with number literals kept is Python work, bound to one core by the
GIL. The main process cuts the (decompressed) stream into blocks of whole lines, worker
processes parse them into Arrow batches, and the batches come back in file order, so
line numbers, errors and skipped-line counts are exactly those of the serial reader.
Workers are spawned (not forked: DuckDB's threads may be running in this process).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import pyarrow as pa

from ._batch import BadLines
from ._io import open_binary

#: Files smaller than this are parsed in-process: spawning workers costs more.
PARALLEL_MIN_BYTES = 16 << 20
#: Bytes of whole lines handed to a worker at a time.
BLOCK_BYTES = 8 << 20
WORKERS_ENV = "CARACAL_FORENSICS_WORKERS"

_pool: ProcessPoolExecutor | None = None


def workers() -> int:
    """How many processes parse in parallel: all cores, or $CARACAL_FORENSICS_WORKERS."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return os.cpu_count() or 1


def parallel_worth_it(path: str) -> bool:
    try:
        size = os.path.getsize(path)
    except OSError:
        return False
    return workers() > 1 and size >= PARALLEL_MIN_BYTES


def _executor() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        import multiprocessing

        _pool = ProcessPoolExecutor(workers(), mp_context=multiprocessing.get_context("spawn"))
    return _pool


def _blocks(path: str) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes of whole lines) blocks of the decompressed file."""
    from ..errors import InputError

    first = 1
    lines: list[bytes] = []
    size = 0
    try:
        with open_binary(path) as stream:
            for raw in stream:
                lines.append(raw)
                size += len(raw)
                if size >= BLOCK_BYTES:
                    yield first, b"".join(lines)
                    first += len(lines)
                    lines, size = [], 0
    except Exception as error:
        if lines:
            yield first, b"".join(lines)
        raise InputError(
            path,
            f"truncated or unreadable compressed data: {error}",
            f"line {first + len(lines)}",
        ) from None
    if lines:
        yield first, b"".join(lines)


def parse_block(
    path: str,
    first_line: int,
    data: bytes,
    shape: str,
    skip: bool,
    schema: pa.Schema,
    timestamp_fields: tuple[str, ...],
) -> tuple[list[pa.RecordBatch], int, str | None]:
    """Worker: parse one block; return its batches and the lines it skipped."""
    from ._lines import parse_lines

    bad = BadLines(skip=skip)
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
        lines = [(first_line + i, part + b"\n") for i, part in enumerate(parts)]
    else:  # the file's last line has no newline: keep it so truncation is detected
        lines = [(first_line + i, part + b"\n") for i, part in enumerate(parts[:-1])]
        lines.append((first_line + len(parts) - 1, parts[-1]))
    batches = list(parse_lines(path, lines, bad, shape, schema, timestamp_fields))
    return batches, bad.count, bad.first


def read_json_lines_parallel(
    path: str,
    bad: BadLines,
    shape: str,
    schema: pa.Schema,
    timestamp_fields: tuple[str, ...],
) -> Iterator[pa.RecordBatch]:
    """Batches in file order, parsed by worker processes, at most 2 blocks per worker ahead."""
    pool = _executor()
    pending: deque[Future] = deque()
    ahead = 2 * workers()

    def collect(future: Future) -> Iterator[pa.RecordBatch]:
        batches, skipped, first = future.result()
        bad.count += skipped
        if bad.first is None:
            bad.first = first
        yield from batches

    try:
        for first_line, data in _blocks(path):
            pending.append(
                pool.submit(
                    parse_block, path, first_line, data, shape, bad.skip, schema, timestamp_fields
                )
            )
            while len(pending) >= ahead:
                yield from collect(pending.popleft())
        while pending:
            yield from collect(pending.popleft())
    finally:
        for future in pending:
            future.cancel()
