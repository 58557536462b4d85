"""Table dump as CSV: ``COPY audit_events TO ... CSV HEADER`` (FORMAT.md 4.1).

jsonb columns are already PostgreSQL's jsonb text and are kept verbatim. An unquoted
empty value is SQL NULL, a quoted ``""`` is the empty string, as COPY writes them.
Arrow's streaming CSV reader does the parsing, on every core while the file is well formed
and on one thread (which knows the line of a short row) after any problem; ``source_line``
is 1 + the record number (the header is line 1), which is the physical line when no value
holds a newline.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import InputError
from ..model import EVENT_SCHEMA, TABLE_COLUMNS, UTC_MICROS, Shape
from ._batch import BadLines, absent_list, assemble_events, lines_from, long_rows
from ._io import FileDigest, open_binary, too_long

SHAPE = Shape.DB_CSV
#: 4 MiB blocks: verify of 1M events 2.2 -> 2.0 s against 1 MiB (fewer, larger batches
#: down the pipeline) for 160 MB more RSS; 8 MiB ones made the reader hold ~460 MB.
BLOCK_SIZE = 1 << 22
#: Parse with Arrow's threads first (about 1.6x faster on 2 cores); see ``read``.
PARALLEL = True
#: Converted batches waiting to be handed on (bounds the memory of the fast path).
IN_FLIGHT = 2
REQUIRED = ("id", "zone_id", "occurred_at")


def looks_like(header: list[str]) -> bool:
    return "zone_id" in header and "chain_hmac" in header and "event_type" in header


class RowHandler:
    """Arrow's ``invalid_row_handler`` (``decide(row)`` -> "skip" or "error") that knows
    when Arrow could not call it: Arrow decodes a short row as UTF-8 before calling the
    handler, so a short row that is not UTF-8 (a file cut inside a character) raises
    inside Arrow's callback, where Python prints it as "Exception ignored ... Traceback"
    and the row is an error. ``_quiet_undecodable`` keeps those off stderr and notes the
    error here (``undecodable``), so that the reader says it in one line (``not_utf8``)."""

    def __init__(self, decide) -> None:
        self.decide = decide
        self.undecodable: UnicodeDecodeError | None = None
        _quiet_undecodable()

    def __call__(self, row: pacsv.InvalidRow) -> str:
        return self.decide(row)


def _quiet_undecodable() -> None:
    """Install, once, the ``sys.unraisablehook`` that hands a RowHandler's decoding error
    to the handler instead of printing it; everything else goes to the hook before."""
    import sys

    previous = sys.unraisablehook
    if getattr(previous, "row_handlers", False):
        return

    def hook(unraisable) -> None:
        if isinstance(unraisable.object, RowHandler) and isinstance(
                unraisable.exc_value, UnicodeDecodeError):
            unraisable.object.undecodable = unraisable.exc_value
            return
        previous(unraisable)

    hook.row_handlers = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def not_utf8(path: str, handler: RowHandler, error: Exception) -> InputError | None:
    """The one-line error of a short row that was not UTF-8 (``handler.undecodable``),
    at Arrow's row number (the line, as ``source_line`` counts), else None."""
    import re

    if handler.undecodable is None:
        return None
    row = re.search(r"Row #(\d+)", str(error))
    return InputError(path, f"not UTF-8 text ({handler.undecodable.reason})",
                      f"line {row.group(1)}" if row else None)


def read(path: str, bad: BadLines, header: list[str], tap: FileDigest | None = None
         ) -> Iterator[pa.RecordBatch]:
    """The dump's events; ``tap`` sees the file's bytes once if the parallel pass reads
    it through (``Fingerprints``)."""
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InputError(
            path, f"CSV header lacks required column(s) {', '.join(missing)}", "line 1"
        )
    present = [name for name in TABLE_COLUMNS if name in header]
    absent = absent_list(header)
    done = 0
    if PARALLEL:
        # Fast path: Arrow parses blocks on every core while one worker thread converts
        # the previous block (Arrow's casts release the GIL; one worker keeps the
        # conversions, and so the errors and skip counts, in file order). Arrow cannot
        # say which line a short row is on, so any parse problem (or a decompression
        # error) falls back to the sequential reader below, which re-reads the file,
        # passes over the records already delivered and names the line exactly as before.
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="db-csv") as pool:
            queued: deque = deque()
            submitted = 0
            complete = True
            for batch in _parallel(path, header, present, tap):
                if batch is None:
                    complete = False
                    break
                queued.append(
                    (
                        pool.submit(_to_events, batch, path, 2 + submitted, absent, present, bad),
                        batch.num_rows,
                    )
                )
                submitted += batch.num_rows
                if len(queued) > IN_FLIGHT:
                    future, rows = queued.popleft()
                    yield future.result()
                    done += rows
            while queued:
                future, rows = queued.popleft()
                yield future.result()
                done += rows
        if complete:
            return
    yield from _sequential(path, bad, header, present, absent, done + 2)


def _open(stream, header: list[str], present: list[str], threads: bool, on_invalid,
          block_size: int | None = None):
    # Arrow holds a record in at most two blocks: a longer one is "straddling" (an error),
    # so no record takes more memory than that.
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(use_threads=threads, block_size=block_size or BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            include_columns=present,
            strings_can_be_null=True,
            null_values=[""],  # COPY writes NULL as an empty field, nothing else
            quoted_strings_can_be_null=False,
        ),
    )


def _parallel(path: str, header: list[str], present: list[str], tap: FileDigest | None = None
              ) -> Iterator[pa.RecordBatch | None]:
    """The records in file order, parsed on every core; None (then stop) on any problem."""
    try:
        stream = open_binary(path, tap)
    except Exception:
        yield None
        return
    try:
        try:
            reader = _open(stream, header, present, True, RowHandler(lambda _row: "error"))
        except Exception:
            yield None
            return
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                if tap is not None:
                    tap.finish()
                return
            except InputError:  # the file changed while it was read: no second reading
                raise
            except Exception:
                yield None
                return
            yield batch
    finally:
        stream.close()


def _sequential(
    path: str, bad: BadLines, header: list[str], present: list[str], absent: str | None,
    from_line: int, block_size: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """One thread, with the line of every short row; the records before ``from_line``
    (already delivered, their bad rows handled) are passed over. A record longer than a
    block (Arrow's "straddling" object) makes it read again from that record with blocks
    as large as the longest record accepted, and one longer still is refused."""
    import bisect

    bad_rows: list[tuple[int, str]] = []
    block_size = block_size or BLOCK_SIZE
    longer = False

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(
            (row.number or 0, f"expected {row.expected_columns} columns, got {row.actual_columns}")
        )
        return "skip" if bad.skip else "error"

    handler = RowHandler(on_invalid)
    stream = open_binary(path)
    next_line = 2
    try:
        reader = _open(stream, header, present, False, handler, block_size)
        handled = 0  # short rows of the first block are seen while opening the reader
        pending: set[int] = set()  # lines of skipped rows not yet passed
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            for line, problem in bad_rows[handled:]:
                if line >= from_line:
                    bad.handle(InputError(path, problem, f"line {line}"))
                pending.add(line)
            handled = len(bad_rows)
            rows = batch.num_rows
            numbers = None
            end = next_line + rows
            if pending:  # the parser may have seen a row of the next block already
                numbers = []
                line = next_line
                while len(numbers) < rows:
                    if line in pending:
                        pending.discard(line)
                    else:
                        numbers.append(line)
                    line += 1
                end = line
            if numbers is None:
                passed = min(rows, max(0, from_line - next_line))
            else:
                passed = bisect.bisect_left(numbers, from_line)
            if passed < rows:
                yield _to_events(
                    batch.slice(passed) if passed else batch,
                    path,
                    next_line + passed,
                    absent,
                    present,
                    bad,
                    numbers[passed:] if numbers else None,
                )
            next_line = end
    except (OSError, EOFError) as error:
        raise InputError(path, f"truncated or unreadable compressed data: {error}") from None
    except pa.ArrowInvalid as error:
        if "straddling" in str(error):  # the record after those read spans two blocks
            if block_size >= bad.max_line:
                raise too_long(path, bad.max_line, f"line {next_line}", "a CSV record"
                               ) from None
            longer = True
        elif bad_rows:  # the row handler saw it first and knows the line
            line, problem = bad_rows[-1]
            raise InputError(path, problem, f"line {line}") from None
        elif handler.undecodable is not None:
            raise not_utf8(path, handler, error) from None
        else:
            raise InputError(path, f"malformed CSV: {_short(error)}") from None
    finally:
        stream.close()
    if longer:
        yield from _sequential(path, bad, header, present, absent, max(from_line, next_line),
                               max(block_size, bad.max_line))


def _to_events(
    batch: pa.RecordBatch,
    path: str,
    first_line: int,
    absent: str | None,
    present: list[str],
    bad: BadLines,
    line_numbers: list[int] | None = None,
) -> pa.RecordBatch:
    """``line_numbers``: each record's line when skipped short rows leave gaps."""
    import pyarrow.compute as pc
    long = long_rows(batch, bad.max_line)
    if long is not None:  # refused, or skipped: the lines of the others are kept
        numbers = (lines_from(first_line, batch.num_rows).to_pylist() if line_numbers is None
                   else line_numbers)
        for index in pc.indices_nonzero(long).to_pylist():
            bad.handle(too_long(path, bad.max_line, f"line {numbers[index]}", "a CSV record"))
        keep = pc.invert(long)
        batch = batch.filter(keep)
        line_numbers = [n for n, k in zip(numbers, keep.to_pylist(), strict=True) if k]
    rows = batch.num_rows
    if line_numbers is None:
        lines = lines_from(first_line, rows)
    else:
        lines = pa.array(line_numbers, pa.int64())
    columns = {
        name: _convert(batch.column(name), EVENT_SCHEMA.field(name).type, path, name, lines)
        for name in present
    }
    batch_out = assemble_events(
        columns, rows, path=path, first_line=first_line, shape=SHAPE, digits=6, absent=absent
    )
    if line_numbers is not None:
        index = batch_out.schema.get_field_index("source_line")
        batch_out = batch_out.set_column(index, "source_line", lines)
    keep = None
    for name in REQUIRED:
        column = batch_out.column(name)
        missing = pc.is_null(column)
        if pa.types.is_string(column.type):  # a typed value converted is never empty
            missing = pc.fill_null(pc.or_(missing, pc.equal(column, "")), True)
        if not pc.any(missing).as_py():
            continue
        for index in pc.indices_nonzero(missing).to_pylist():
            bad.handle(InputError(path, f"missing required field {name!r}", f"line {lines[index]}"))
        keep = pc.invert(missing) if keep is None else pc.and_(keep, pc.invert(missing))
    return batch_out if keep is None else batch_out.filter(keep)


def _convert(
    column: pa.Array, target: pa.DataType, path: str, name: str, lines: pa.Array
) -> pa.Array:
    import pyarrow.compute as pc
    if target == pa.string():
        return column
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    kind = "a timestamp" if target == UTC_MICROS else "an integer"
    for index, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(
                path, f"{name} is not {kind}: {value[:60]!r}", f"line {lines[index].as_py()}"
            ) from None
    raise InputError(path, f"{name}: unconvertible values")  # pragma: no cover


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:200]
