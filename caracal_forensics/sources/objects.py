"""Exports in S3-compatible object storage (``s3://bucket/prefix/``), read in place.

An ``s3://`` URL is an input like a path: a prefix is listed as a directory is walked
(its objects with an export's name, in key order), an object is read as a file is. The
bytes are streamed through pyarrow's S3 filesystem (ranged GETs), never copied whole to
disk first: a Parquet file is read by row group, a text export as a stream.

Credentials and region come from where the AWS tools take them (``AWS_ACCESS_KEY_ID``
and friends, ``AWS_PROFILE``, ``~/.aws/credentials`` and ``~/.aws/config``, instance
metadata). A custom endpoint (MinIO, Ceph, as Caracal's exporter uses with
``AUDIT_EXPORT_S3_ENDPOINT``) is taken from ``CARACAL_FORENSICS_S3_ENDPOINT``, else
``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (pyarrow does not read those itself),
and addressed path-style (``http://host:9000/bucket/key``).

What says an object is still the one read is its size and ETag (``ObjectState``): taken
when it is found, and again once it is read, as a file's device, inode, size and times.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from collections.abc import Iterator
from typing import Any

from ..errors import InputError
from ..settings import AWS_ENDPOINT_ENVS, S3_ENDPOINT_ENV, object_store_environment

SCHEME = "s3://"
#: The endpoint of an S3-compatible store, as a URL (http://127.0.0.1:9000) or host:port.
ENDPOINT_ENV = S3_ENDPOINT_ENV
#: What a stream asks of the store at a time: each piece is one ranged GET.
READ_BYTES = 16 << 20


def is_object_url(path: object) -> bool:
    """Whether an input names object storage (``s3://``) rather than a local path."""
    return isinstance(path, str) and path[:5].lower() == SCHEME


def split_url(url: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``; an InputError when no bucket is named."""
    rest = url[len(SCHEME):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InputError(url, "names no bucket (s3://BUCKET/PREFIX/)")
    return bucket, key


def endpoint() -> str | None:
    """The configured endpoint (ENDPOINT_ENV, then the AWS variables), or None for AWS."""
    env = object_store_environment()
    for name in (ENDPOINT_ENV, *AWS_ENDPOINT_ENVS):
        value = (env[name] or "").strip()
        if value:
            return value
    return None


_filesystems: dict[tuple, Any] = {}

#: The filesystem depends on the environment (settings.OBJECT_STORE_ENVS): a change (a
#: test, a notebook cell setting a profile) makes another filesystem, never a stale one.


def filesystem(bucket: str = ""):
    """The pyarrow S3FileSystem for the current environment and ``bucket`` (its region)."""
    state = (*object_store_environment().values(), bucket)
    found = _filesystems.get(state)
    if found is None:
        found = _filesystems[state] = _make_filesystem(bucket)
    return found


def configured_region() -> str | None:
    """The region as the AWS tools find it: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, else
    the profile's (``AWS_PROFILE``, else default) ``region`` in the config file."""
    env = object_store_environment()
    region = env["AWS_REGION"] or env["AWS_DEFAULT_REGION"]
    if region:
        return region
    import configparser

    profile = env["AWS_PROFILE"] or env["AWS_DEFAULT_PROFILE"] or "default"
    path = env["AWS_CONFIG_FILE"] or os.path.expanduser("~/.aws/config")
    config = configparser.RawConfigParser()
    try:
        config.read(path, encoding="utf-8")
    except (OSError, configparser.Error):
        return None
    section = profile if profile == "default" else f"profile {profile}"
    return config.get(section, "region", fallback=None) or None


def _make_filesystem(bucket: str):
    from pyarrow import fs

    options: dict[str, Any] = {}
    region = configured_region()
    given = endpoint()
    if region is None and not given and bucket:
        try:  # AWS itself: the bucket's own region (pyarrow would take us-east-1)
            region = fs.resolve_s3_region(bucket)
        except Exception:
            region = None  # the first request says what is wrong
    if region:
        options["region"] = region
    if given:
        match = re.fullmatch(r"(?:(https?)://)?([^/]+)/?", given)
        if match is None:
            from ..errors import UsageError

            raise UsageError(f"{ENDPOINT_ENV} (or AWS_ENDPOINT_URL) must be a URL such as "
                             f"http://127.0.0.1:9000, not {given[:60]!r}")
        options["scheme"] = match.group(1) or "https"
        options["endpoint_override"] = match.group(2)
        options["force_virtual_addressing"] = False  # path-style, as MinIO and Ceph
        options.setdefault("region", "us-east-1")  # as Caracal's exporter defaults to
    try:
        return fs.S3FileSystem(**options)
    except Exception as error:  # a profile that names no credentials, ...
        raise InputError(SCHEME, f"cannot open the object store: {_short(error)}") from None


def _short(error: BaseException) -> str:
    """One line of what the store said: its error code and message, without request ids."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    match = re.search(r"AWS Error ([A-Z_]+) during (\w+) operation: ?(.*)", text)
    if match:
        code, operation, message = match.groups()
        message = re.sub(r"\s*\(Request ID: [^)]*\)", "", message).strip().rstrip(".")
        if message in ("", "No response body"):
            message = ""
        hint = _HINTS.get(code, "")
        return (f"{code.lower().replace('_', ' ')} ({operation}"
                + (f": {message}" if message else "") + ")" + hint)
    return text[:200]


_HINTS = {
    "ACCESS_DENIED": "; check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) and the "
                     "bucket's policy",
    "INVALID_ACCESS_KEY_ID": "; check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE)",
    "SIGNATURE_DOES_NOT_MATCH": "; check the secret key (AWS_SECRET_ACCESS_KEY, "
                                "AWS_PROFILE)",
    "NETWORK_CONNECTION": f"; is the endpoint right ({ENDPOINT_ENV}, AWS_ENDPOINT_URL)?",
}


def store_error(url: str, error: BaseException, doing: str = "cannot read") -> InputError:
    """The one-line InputError of a request the store refused or could not answer."""
    if isinstance(error, InputError):
        return error
    if isinstance(error, FileNotFoundError):
        return InputError(url, "no such object")
    return InputError(url, f"{doing}: {_short(error)}")


def _path(url: str) -> str:
    bucket, key = split_url(url)
    return f"{bucket}/{key}".rstrip("/") if key else bucket


def _store(url: str):
    return filesystem(split_url(url)[0])


# --- listing --------------------------------------------------------------------------


def expand(url: str, is_data_name) -> Iterator[tuple[str, bool]]:
    """(object URL, named_explicitly) of the objects a URL names: the object itself, or
    those under the prefix whose names ``is_data_name`` accepts, in key order. Nothing
    there is an InputError, as a path naming nothing is."""
    from pyarrow import fs

    store = _store(url)
    _bucket, key = split_url(url)
    if key and not key.endswith("/"):
        try:
            info = store.get_file_info(_path(url))
        except Exception as error:
            raise store_error(url, error, "cannot list") from None
        if info.type == fs.FileType.File:
            yield url, True
            return
    prefix = _path(url)
    try:
        infos = store.get_file_info(fs.FileSelector(prefix, recursive=True))
    except FileNotFoundError:  # the bucket is there (else "no such bucket"), the prefix not
        infos = []
    except Exception as error:
        raise store_error(url, error, "cannot list") from None
    files = sorted(i.path for i in infos if i.type == fs.FileType.File)
    if not files:
        raise InputError(url, "no objects under this prefix")
    _refuse_snapshots(url, files)
    for path in files:
        name = path.rsplit("/", 1)[-1]
        if not any(part.startswith(".") for part in path[len(prefix):].split("/")) \
                and is_data_name(name):
            yield SCHEME + path, False


def _refuse_snapshots(url: str, files: list[str]) -> None:
    """A canonical snapshot is a local directory (DuckDB reads its parts in place): one
    uploaded to a bucket is said so, not read as loose parts."""
    names = set(files)
    for path in files:
        if path.endswith("/manifest.json") and any(
                name.startswith(path[: -len("manifest.json")] + "events/") for name in names):
            raise InputError(SCHEME + path[: -len("/manifest.json")],
                             "a canonical snapshot in object storage: copy it to a local "
                             "directory and give that (snapshots are read in place)")


# --- states ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ObjectState:
    """What says an object is still the one that was found: its size and ETag (a new
    upload under the same key has another ETag)."""

    size: int
    etag: str

    @classmethod
    def of(cls, handle) -> ObjectState:
        metadata = handle.metadata() or {}
        etag = metadata.get(b"ETag") or metadata.get("ETag") or b""
        if isinstance(etag, bytes):
            etag = etag.decode("ascii", "replace")
        return cls(handle.size(), etag.strip('"'))


#: The state each object was last seen in (every HEAD records it): what was learnt of
#: an object's bytes (``read_head``, ``parquet_file``) is used again only while the
#: object is still seen in the state it was learnt in. Readers never depend on it for
#: integrity: every read is held to the state found at the start by a fresh HEAD.
_seen: dict[str, ObjectState] = {}
_learnt: dict[tuple[str, str], tuple[ObjectState, Any]] = {}


def _remember(url: str, state: ObjectState) -> ObjectState:
    _seen[url] = state
    return state


def _recall(url: str, what: str) -> Any:
    """What was learnt of the object as it is still seen, else None."""
    found = _learnt.get((url, what))
    if found is None or _seen.get(url) != found[0]:
        return None
    return found[1]


def _learn(url: str, what: str, state: ObjectState, value: Any) -> Any:
    _learnt[(url, what)] = (state, value)
    return value


def object_state(url: str) -> ObjectState:
    """The object's state now (one HEAD request); InputError when it cannot be had."""
    try:
        with _store(url).open_input_file(_path(url)) as handle:
            return _remember(url, ObjectState.of(handle))
    except Exception as error:
        raise store_error(url, error) from None


def state_or_none(url: str) -> ObjectState | None:
    """The object's state now, None when it is gone (or cannot be asked about)."""
    try:
        return object_state(url)
    except InputError:
        return None


# --- reading --------------------------------------------------------------------------


def open_file(url: str):
    """A random-access pyarrow file of the object (for Parquet: the footer, then row
    groups, each by ranged GETs) and its state when opened."""
    try:
        handle = _store(url).open_input_file(_path(url))
    except Exception as error:
        raise store_error(url, error) from None
    return handle, _remember(url, ObjectState.of(handle))


class RawObject(io.RawIOBase):
    """An object read from its first byte to its last, as a raw binary stream.

    The next ``request`` bytes are fetched (one ranged GET each) on a thread of the
    stream's own while the reader works through the last ones, at most ``AHEAD`` pieces
    ahead: a request's round trip no longer stalls the reader. Only the bytes the object
    had when opened are asked for; one uploaded again meanwhile is told by its ETag
    (``_io._WatchedObject``)."""

    #: pieces fetched ahead of the reader (each ``request`` bytes held at most)
    AHEAD = 2

    def __init__(self, url: str, request: int = READ_BYTES):
        import queue
        import threading

        self.url = url
        self._handle, self.state = open_file(url)
        self._request = max(1, request)
        self._piece = memoryview(b"")
        self._at = 0
        self._pieces: queue.Queue = queue.Queue(self.AHEAD)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._threading = threading

    def _fetch(self) -> None:
        """Put the object's pieces in order on the queue, then None (or the error)."""
        import queue

        offset, size = 0, self.state.size
        try:
            while offset < size and not self._stop.is_set():
                piece = self._handle.read_at(min(self._request, size - offset), offset)
                if not piece:
                    break  # shorter now: the reader's end check says so
                offset += len(piece)
                self._put(piece)
            item: Any = None
        except Exception as error:  # re-raised by the reader, as the store said it
            item = error
        while not self._stop.is_set():
            try:
                self._pieces.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _put(self, piece) -> None:
        import queue

        while not self._stop.is_set():
            try:
                self._pieces.put(piece, timeout=0.1)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._piece:
            if self._thread is None:
                self._thread = self._threading.Thread(target=self._fetch, daemon=True,
                                                      name="object-read-ahead")
                self._thread.start()
            elif self._at >= self.state.size:
                return 0
            item = self._pieces.get()
            if item is None:
                self._pieces.put(None)  # every later read is the end too
                return 0
            if isinstance(item, BaseException):
                raise store_error(self.url, item) from None
            self._piece = memoryview(item)
        got = min(len(buffer), len(self._piece))
        memoryview(buffer).cast("B")[:got] = self._piece[:got]
        self._piece = self._piece[got:]
        self._at += got
        return got

    def tell(self) -> int:
        return self._at

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            # a request under way is not waited for (Ctrl-C must not wait on the store):
            # the fetching thread stops after it, and the handle goes with the thread
            if self._thread is None or not self._thread.is_alive():
                self._handle.close()
        super().close()


def read_head(url: str, size: int) -> bytes:
    """The object's first ``size`` bytes (one ranged GET; none again while the object is
    seen unchanged: detection and each reader ask for its compression)."""
    known = _recall(url, "head")
    if known is not None and (len(known[0]) >= size or len(known[0]) < known[1]):
        return known[0][:size]  # as much as asked, or the whole object
    handle, state = open_file(url)
    try:
        data = handle.read_at(size, 0) if handle.size() else b""
    except Exception as error:
        raise store_error(url, error) from None
    finally:
        handle.close()
    return _learn(url, "head", state, (data, size))[0]


def parquet_file(url: str):
    """A ``pyarrow.parquet.ParquetFile`` of the object, its column chunks fetched
    coalesced (``pre_buffer``); the footer is read once per state of the object
    (detection, then the reader, open it)."""
    import pyarrow.parquet as pq

    handle, state = open_file(url)
    known = _recall(url, "parquet footer")
    parquet = pq.ParquetFile(handle, pre_buffer=True, metadata=known)
    if known is None:
        _learn(url, "parquet footer", state, parquet.metadata)
    return parquet


#: Objects looked at at once when a prefix is scanned (requests wait on the network).
PREFETCH_THREADS = 16


def prefetch(urls: list[str], head_bytes: int) -> dict[str, ObjectState]:
    """Each object's state, first ``head_bytes`` and (Parquet) footer, fetched on
    PREFETCH_THREADS threads: scanning a month of hourly objects one request after
    another would wait on some 4,000 round trips. Returns the states found (the state an
    object is then held to); an object that cannot be had is left to the scan, which
    says what is wrong with it in its order."""
    from concurrent.futures import ThreadPoolExecutor

    def warm(url: str) -> tuple[str, ObjectState | None]:
        try:
            state = object_state(url)
            if read_head(url, head_bytes).startswith(b"PAR1"):
                parquet_file(url)  # its footer, learnt
            return url, state
        except Exception:
            return url, None

    if not urls:
        return {}
    with ThreadPoolExecutor(min(PREFETCH_THREADS, len(urls)),
                            thread_name_prefix="object-prefetch") as pool:
        return {url: state for url, state in pool.map(warm, urls) if state is not None}


def object_sha256(url: str) -> tuple[int, str]:
    """Size and SHA-256 of the object's bytes, streamed."""
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with RawObject(url) as raw:
        while data := raw.read(READ_BYTES):
            digest.update(data)
            size += len(data)
    return size, digest.hexdigest()
