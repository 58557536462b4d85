"""Parsing large JSON lines files on every core.

The stream (decompressed) is cut into blocks of whole lines, the blocks are parsed in
parallel, and their rows come back in file order, so that line numbers, errors and
skipped-line counts are exactly those of the serial reader.

With the C kernel (``native_pieces``) the blocks are parsed on threads: the kernel parses
a block's plain valid lines without the GIL and leaves any other line to the Python path
(``_lines.parse_block``). Without it, per-line JSON parsing with number literals kept is
Python work, bound to one core by the GIL: worker processes parse the blocks
(``read_json_lines_parallel``); they are spawned (not forked: DuckDB's threads may be
running in this process), without the HMAC key in their environment (``KeylessContext``):
they only parse.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing import context as mp_context

import pyarrow as pa

from ..errors import InputError
from ..settings import WORKERS_ENV, settings  # noqa: F401 - WORKERS_ENV: named here before
from ._batch import BadLines, count_skipped
from ._io import LONG_LINE, FileDigest, input_size, numbered_lines, open_binary

#: Files smaller than this are parsed in-process: spawning workers costs more.
PARALLEL_MIN_BYTES = 16 << 20
#: Bytes of whole lines handed to a worker at a time.
BLOCK_BYTES = 8 << 20

_pool: ProcessPoolExecutor | None = None
_threads: dict[int, ThreadPoolExecutor] = {}


def workers() -> int:
    """How many processes parse in parallel: all cores, or $CARACAL_FORENSICS_WORKERS."""
    return settings().workers or os.cpu_count() or 1


def parallel_worth_it(path: str) -> bool:
    try:
        size = input_size(path)
    except (OSError, InputError):
        return False
    return workers() > 1 and size >= PARALLEL_MIN_BYTES


#: What a worker process must not inherit: the HMAC key, given or named (FORMAT.md 2).
#: Workers only parse; a worker that needed the key would get it as an argument.
PRIVATE_ENVIRONMENT = ("AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY_FILE")
_spawning = threading.Lock()


@contextmanager
def _keyless_environment() -> Iterator[None]:
    """PRIVATE_ENVIRONMENT out of this process's environment meanwhile.

    A child gets the environment of this process as it is when the child is started, and
    ``/proc/<pid>/environ`` keeps that for the child's life: so the variables are taken
    out while a child is started (a worker, or multiprocessing's resource tracker) and
    put back right after."""
    with _spawning:
        kept = {name: os.environ.pop(name) for name in PRIVATE_ENVIRONMENT
                if name in os.environ}
        try:
            yield
        finally:
            os.environ.update(kept)


class KeylessProcess(mp_context.SpawnProcess):
    """A spawned process whose environment lacks PRIVATE_ENVIRONMENT."""

    @staticmethod
    def _Popen(process_obj):  # noqa: N802 - multiprocessing's name
        from multiprocessing.popen_spawn_posix import Popen

        class KeylessPopen(Popen):
            def _launch(self, process_obj) -> None:
                with _keyless_environment():
                    super()._launch(process_obj)

        return KeylessPopen(process_obj)


class KeylessContext(mp_context.SpawnContext):
    """The spawn start method with :class:`KeylessProcess`."""

    Process = KeylessProcess


def _executor() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        from multiprocessing import resource_tracker

        # the pool's queues start multiprocessing's resource tracker, a child too
        with _keyless_environment(), _hangup_ignored():
            resource_tracker.ensure_running()
        _pool = ProcessPoolExecutor(workers(), mp_context=_quiet_spawn_context(),
                                    initializer=_worker_started)
    return _pool


@contextmanager
def _hangup_ignored() -> Iterator[None]:
    """SIGHUP ignored meanwhile, so that a child started now (multiprocessing's resource
    tracker, which ignores SIGINT and SIGTERM itself) inherits that: a hang-up of the
    terminal killed it, and multiprocessing printed its warnings and tracebacks."""
    import signal

    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(hangup, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(hangup, signal.SIG_DFL if previous is None else previous)


class _QuietSpawnProcess(KeylessProcess):
    """A keyless "spawn" worker born with the stop signals blocked (a blocked signal stays
    blocked across exec) until ``_leave_interrupts_to_the_parent`` ignores them.

    Ctrl-C reaches every process of the terminal's group, and so may SIGTERM or a
    hang-up: workers leave them to the main process, which handles them and stops the
    pool. Else each worker printed its own KeyboardInterrupt traceback (one that was
    still importing broke the pool, and the main process hung on it)."""

    def start(self) -> None:
        import signal

        from ..interrupts import stop_signals

        stops = set(stop_signals())
        # blocked in this thread only, while it forks: one arriving now waits, not lost
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _QuietSpawnContext(KeylessContext):
    Process = _QuietSpawnProcess


def _quiet_spawn_context() -> mp_context.SpawnContext:
    return _QuietSpawnContext()


def _worker_started() -> None:
    """In a worker, first: stop signals left to the main process, and an end of its own
    when the main process is gone."""
    _leave_interrupts_to_the_parent()
    _end_with_the_parent()


#: How often a worker looks whether the main process still lives.
PARENT_CHECK_SECONDS = 1.0


def _end_with_the_parent() -> None:
    """A thread that ends this worker once its main process is gone (killed outright:
    ``kill -9``, the out-of-memory killer). A worker ignores the stop signals and waits
    for work on a queue it holds both ends of: it waited for ever, 185 MB each."""
    parent = os.getppid()

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _leave_interrupts_to_the_parent() -> None:
    """In a worker: ignore the stop signals (see _QuietSpawnProcess), then unblock them."""
    import signal

    from ..interrupts import stop_signals

    stops = set(stop_signals())
    for number in stops:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)


def _blocks(path: str, bad: BadLines) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes of whole lines) blocks of the decompressed file; a line
    past ``bad.max_line`` is refused or skipped (then a new block starts after it)."""
    from ..errors import InputError

    first = 1
    lines: list[bytes] = []
    size = 0
    try:
        for number, raw in numbered_lines(path, bad):
            if lines and number != first + len(lines):  # a line skipped: numbers go on
                yield first, b"".join(lines)
                lines, size = [], 0
            if not lines:
                first = number
            lines.append(raw)
            size += len(raw)
            if size >= BLOCK_BYTES:
                yield first, b"".join(lines)
                first += len(lines)
                lines, size = [], 0
    except InputError:
        if lines:  # the lines before the cut are parsed first
            yield first, b"".join(lines)
        raise
    if lines:
        yield first, b"".join(lines)


def parse_block(
    parse_lines: Callable[..., Iterator[pa.RecordBatch]],
    path: str,
    first_line: int,
    data: bytes,
    shape: str,
    skip: bool,
    max_line: int,
    schema: pa.Schema,
    timestamp_fields: tuple[str, ...],
) -> tuple[list[pa.RecordBatch], int, str | None]:
    """Worker: parse one block with ``parse_lines`` (``_lines.parse_lines``, handed in
    so this module stays below ``_lines``); return its batches and the lines it skipped."""
    bad = BadLines(skip=skip, max_line=max_line)
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
    parse_lines: Callable[..., Iterator[pa.RecordBatch]],
) -> Iterator[pa.RecordBatch]:
    """Batches in file order, parsed by worker processes (``parse_lines``: see
    :func:`parse_block`), at most 2 blocks per worker ahead."""
    pool = _executor()
    pending: deque[Future] = deque()
    ahead = 2 * workers()

    def collect(future: Future) -> Iterator[pa.RecordBatch]:
        batches, skipped, first = future.result()
        count_skipped(bad, skipped, first)
        yield from batches

    blocks = _blocks(path, bad)
    try:
        while True:
            try:
                first_line, data = next(blocks)
            except StopIteration:
                break
            except BaseException:
                while pending:  # the blocks before the cut (and their errors) come first
                    yield from collect(pending.popleft())
                raise
            pending.append(
                pool.submit(
                    parse_block, parse_lines, path, first_line, data, shape, bad.skip,
                    bad.max_line, schema,
                    timestamp_fields,
                )
            )
            while len(pending) >= ahead:
                yield from collect(pending.popleft())
        while pending:
            yield from collect(pending.popleft())
    finally:
        for future in pending:
            future.cancel()


# --- the C kernel on threads ------------------------------------------------------------

#: Bytes read from a file at a time (at least; more once a block's size is known).
READ_BYTES = 8 << 20
#: Bytes read at a time at most (``read_cap``): blocks of lines so long that 16,384 of
#: them do not fit go with fewer lines, so that a file of long lines cannot take the
#: memory (a few reads are in flight at once).
MAX_READ_BYTES = 32 << 20
#: Read buffers kept for reuse (each one block and a bit): as many as blocks can be in
#: flight on two workers, so that a read seldom needs fresh memory (2 left about one read
#: in two allocating anew).
POOLED_BUFFERS = 4


def _thread_pool(size: int) -> ThreadPoolExecutor:
    """The parsing threads (one pool per size, shared by every reader: never shut down, as
    another reader may be using it)."""
    pool = _threads.get(size)
    if pool is None:
        pool = _threads[size] = _started_pool(size, "caracal-jsonl")
    return pool


_reader_pool: ThreadPoolExecutor | None = None
_READER_PREFIX = "caracal-jsonl-read"


def _reader() -> ThreadPoolExecutor:
    global _reader_pool
    if _reader_pool is None:
        _reader_pool = _started_pool(1, _READER_PREFIX)
    return _reader_pool


def _started_pool(size: int, prefix: str) -> ThreadPoolExecutor:
    """A pool that is never shut down, its ``size`` workers started at once, a stop
    signal held meanwhile (``deferred_interrupts``). A pool starts a worker in
    ``submit()`` and notes it just after: an interrupt landing between the two left a
    worker that nothing ends, which Python's exit waited for for ever (a pool shut
    down ends it, one never shut down does not)."""
    from ..interrupts import deferred_interrupts

    with deferred_interrupts():
        pool = ThreadPoolExecutor(size, thread_name_prefix=prefix)
        # each task waits for all the others: none is idle, so each submit starts one
        everyone = threading.Barrier(size)
        try:
            for _ in range(size):
                pool.submit(everyone.wait)
        except BaseException:  # an interrupt not held (no CLI handler): leave none waiting
            everyone.abort()
            pool.shutdown(wait=False)
            raise
    return pool


def _read_some(
    stream, leftover: memoryview, size: int, compressed: bool
) -> tuple[memoryview, bool, BaseException | None]:
    """(leftover followed by about ``size`` more bytes, whether the stream ended, the error
    that cut it, if any).

    A plain file is read straight into fresh memory (mapped in huge pages: the
    allocator's page faults cost more than the read). A compressed stream is read as its
    line iterator reads it (one buffer fill at a time), so that what comes before a
    failure is what the serial reader saw.
    """
    from .. import jsonb_native

    if compressed:
        parts: list[bytes] = [bytes(leftover)]
        got = 0
        error: BaseException | None = None
        while got < size:
            try:
                part = stream.read1()
            except Exception as failure:
                error = failure
                break
            if not part:
                break
            parts.append(part)
            got += len(part)
        return memoryview(b"".join(parts)), got == 0 and error is None, error
    kept = len(leftover)
    view = memoryview(jsonb_native.buffer(kept + size))
    view[:kept] = leftover
    got, error = _fill(stream, view, kept)
    return view[:got], error is None and got == kept, error


def _fill(stream, view: memoryview, got: int) -> tuple[int, BaseException | None]:
    """Read into ``view[got:]`` until it is full or the stream ends: (the bytes now in
    ``view``, the error that stopped the reading, if any)."""
    try:
        while got < len(view):
            count = stream.readinto(view[got:])
            if not count:
                break
            got += count
    except Exception as error:
        return got, error
    return got, None


def read_cap(limit: int) -> int:
    """The most bytes a block read holds: blocks of lines longer than a sixteenth of it go
    out with fewer lines instead, and a line must fit in it with room to spare."""
    return max(MAX_READ_BYTES, 2 * (limit + 1))


def line_blocks(path: str, block_lines: int, tap: FileDigest | None = None,
                limit: int | None = None) -> Iterator[tuple[object, int, int, int]]:
    """(data, start, end, first line number): ``data[start:end]`` holds ``block_lines``
    whole lines of the decompressed file (the last block fewer, its last line perhaps
    without a newline; so too a block of lines so long that ``block_lines`` of them pass
    ``read_cap``). A line longer than ``limit`` (default: ``max_line_bytes()``) that does
    not fit a read comes as ``_lines.LONG_LINE`` for data, read past and never held whole.
    A cut-off or unreadable stream raises InputError naming the line after the last whole
    one, after the blocks before it, as ``numbered_lines`` does. ``tap`` sees every byte
    of an uncompressed file once, in order (its fingerprint)."""
    from .. import jsonb_native
    from ..errors import InputError
    from ._io import compression_of, max_line_bytes

    limit = max_line_bytes() if limit is None else limit
    cap = read_cap(limit)
    first = 1

    def cut_off(error: BaseException) -> InputError:
        return InputError(
            path, f"truncated or unreadable compressed data: {error}", f"line {first}"
        )

    try:
        compressed = compression_of(path) is not None
        stream = open_binary(path)
    except Exception as error:
        raise cut_off(error) from None
    if not compressed and stream.seekable():
        with stream:
            # the blocks cover the file end to end: each read starts where the last
            # block of the previous one stopped
            for block in _file_blocks(stream, block_lines, limit, cap):
                if isinstance(block, BaseException):
                    if isinstance(block, InputError):
                        raise block
                    raise cut_off(block) from None
                first = block[3] + block[4]
                if tap is not None and block[0] is not LONG_LINE:
                    # its view keeps the buffer from being taken again
                    tap.update_later(block[0][block[1] : block[2]])  # type: ignore[index]
                yield block[:4]
        if tap is not None:
            tap.finish()
        return
    with stream:
        # leftover: lines too few for a block yet; they lead the next read
        leftover, size = memoryview(b""), min(READ_BYTES, cap)
        while True:
            data, ended, error = _read_some(stream, leftover, size, compressed)
            leftover = memoryview(b"")  # copied: its buffer can go
            pos, end = 0, len(data)
            while True:
                stop, found = jsonb_native.find_lines(data, pos, end, block_lines)
                if found < block_lines:
                    break
                yield data, pos, stop, first
                size = min(cap, max(size, stop - pos))
                first += found
                pos = stop
            if error is not None:
                if found:  # whole lines only: a partial last one is lost, as with readline
                    last, _ = jsonb_native.find_lines(data, pos, end, found)
                    yield data, pos, last, first
                    first += found
                if isinstance(error, InputError):
                    raise error
                raise cut_off(error) from None
            if ended:
                if pos < end:
                    yield data, pos, end, first
                return
            whole = jsonb_native.find_lines(data, pos, end, found)[0] if found else pos
            if end - whole > limit or end - pos > cap:
                # too much to carry over: the whole lines go now, and a line longer than
                # the limit is read past
                if found:
                    yield data, pos, whole, first
                    first += found
                    pos = whole
                if end - whole > limit:
                    yield LONG_LINE, 0, 0, first
                    first += 1
                    try:
                        rest = _past_newline(stream)
                    except Exception as failure:
                        if isinstance(failure, InputError):
                            raise
                        raise cut_off(failure) from None
                    if rest is None:
                        return
                    leftover = rest
                    continue
            leftover = data[pos:end]
            # a long line: reads grow (up to the cap), copies stay linear
            size = min(cap, max(size, len(leftover)))


def _past_newline(stream) -> memoryview | None:
    """Read past the rest of a line (a piece at a time, never held whole): what follows
    its newline, or None at the end of the stream."""
    while part := stream.read1(1 << 20):
        at = part.find(b"\n")
        if at >= 0:
            return memoryview(part)[at + 1 :]
    return None


def _file_blocks(stream, block_lines: int, limit: int, cap: int) -> Iterator:
    """``line_blocks`` of an uncompressed file, each with its number of lines appended;
    an error reading it comes last (after the whole lines before it), as a value.

    Each read fills a buffer of the same size, taken again once the blocks in it are parsed,
    so that the kernel zeroes no fresh memory for it; a read ends at the last whole block,
    the file position going back to the lines after it. A read that holds no whole block
    is done again with twice the room, up to ``cap``; at ``cap`` its whole lines go as a
    shorter block, and a line longer than ``limit`` that fills a read goes as LONG_LINE.
    """
    import sys

    from .. import jsonb_native

    pool: list[tuple[int, object]] = []  # (size, buffer)

    def free_buffer(size: int) -> memoryview:
        pool[:] = [kept for kept in pool if kept[0] >= size]
        for _, chunk in pool:
            # referenced by its pool entry, this loop and getrefcount only: no block has it
            if sys.getrefcount(chunk) <= 3:
                return memoryview(chunk)  # type: ignore[arg-type]
        chunk = jsonb_native.buffer(size)
        if len(pool) < POOLED_BUFFERS:
            pool.append((size, chunk))
        return memoryview(chunk)  # type: ignore[arg-type]

    first, offset, size = 1, 0, min(READ_BYTES, cap)
    while True:
        wanted = size
        view = free_buffer(wanted)[:wanted]
        try:
            stream.seek(offset)
        except Exception as error:
            yield error
            return
        got, error = _fill(stream, view, 0)
        if error is not None:
            pos = 0
            while pos < got:  # the whole lines read, then the error
                stop, found = jsonb_native.find_lines(view, pos, got, block_lines)
                if not found:
                    break
                if found < block_lines:
                    stop, _ = jsonb_native.find_lines(view, pos, got, found)
                yield view, pos, stop, first, found
                first, pos = first + found, stop
            yield error
            return
        pos = 0
        while True:
            stop, found = jsonb_native.find_lines(view, pos, got, block_lines)
            if found < block_lines:
                break
            yield view, pos, stop, first, found
            size = min(cap, max(size, (stop - pos) * 5 // 4 + 65536))  # a block and a bit
            first, pos = first + found, stop
        if got < wanted:  # the end of the file
            if pos < got:
                yield view, pos, got, first, found
            return
        if pos == 0:
            if not found and wanted > limit:  # one line, longer than the limit
                yield LONG_LINE, 0, 0, first, 1
                first += 1
                offset, error = _skip_line(stream, view, offset + got)
                if error is not None:
                    yield error
                    return
                if offset < 0:
                    return
                continue
            if wanted < cap:
                size = min(cap, 2 * wanted)
            else:  # reads are as large as they get: its whole lines go as they are
                pos, _ = jsonb_native.find_lines(view, 0, got, found)
                yield view, 0, pos, first, found
                first += found
        offset += pos


def _skip_line(stream, view: memoryview, offset: int) -> tuple[int, BaseException | None]:
    """Read on from ``offset`` into ``view`` (reused, never grown) to the end of the line:
    (the offset just after its newline, or -1 at the end of the file; a read error)."""
    from .. import jsonb_native

    while True:
        got, error = _fill(stream, view, 0)
        if error is not None:
            return offset, error
        if not got:
            return -1, None
        stop, found = jsonb_native.find_lines(view, 0, got, 1)
        if found:
            return offset + stop, None
        offset += got


def native_pieces(path: str, parse: Callable[[memoryview, int, int, int], object],
                  tap: FileDigest | None = None, limit: int | None = None) -> Iterator:
    """``_lines.Piece`` per block of ``_batch.BATCH_ROWS`` lines, in file order, parsed by
    the C kernel on ``workers()`` threads: ``parse(data, start, end, first_line)``, that is
    ``_lines.parse_block`` with the file's arguments bound. Memory stays flat: at most
    ``workers()`` blocks are being parsed or waiting to be taken, and one more is being
    read."""
    from . import _batch

    blocks = line_blocks(path, max(1, _batch.BATCH_ROWS), tap, limit)
    size = workers()
    if size <= 1:
        for block in blocks:
            yield parse(*block)
        return
    pool = _thread_pool(size)
    # the next block is read on a thread of its own while the others parse
    reader = _reader()
    pending: deque[Future] = deque()
    ahead = reader.submit(next, blocks, None)
    try:
        while True:
            try:
                block = ahead.result()
            except BaseException:
                while pending:  # the blocks before the cut come first
                    yield pending.popleft().result()
                raise
            if block is None:
                break
            ahead = reader.submit(next, blocks, None)
            pending.append(pool.submit(parse, *block))
            del block  # its read buffer goes back to the reader once parsed
            while len(pending) >= size or (pending and pending[0].done()):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        # This may run on the reader thread itself: the garbage collector finalising a
        # reader left half-read, while that thread reads for another reader (then this
        # reader's next read is queued behind the current task) or for this very one
        # (then it is the current task). Waiting would never end in either case: a read
        # not started is cancelled, and a running one is waited for only from elsewhere.
        if not ahead.cancel() and not threading.current_thread().name.startswith(
                _READER_PREFIX):
            try:
                ahead.result()  # let the read finish before the file is closed
            except BaseException:
                pass
        try:
            blocks.close()
        except ValueError:  # being read further up this very thread: it closes when done
            pass
