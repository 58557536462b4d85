"""The library's settings from the environment, read in this one place.

Every ``CARACAL_FORENSICS_*`` variable the library honours is named and parsed here, so a
newcomer finds them in one list and a caller can pass an environment of its own
(``settings({"CARACAL_FORENSICS_WORKERS": "1"})``). The CLI reads its own two
(``CARACAL_FORENSICS_SOURCE``, ``CARACAL_FORENSICS_DEBUG``, in ``cli/app.py``); the HMAC
key's variables stay with ``keys.py``, which takes an environment of its own too.

Read on each call, not cached at import: a notebook (or a test) that sets a variable
sees it on the next connection. This module imports nothing heavy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: DuckDB's memory ceiling; beyond it, sorts and tables spill to a temporary directory.
MEMORY_LIMIT_ENV = "CARACAL_FORENSICS_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "1GB"
#: Processes that parse large text inputs in parallel (default: every core).
WORKERS_ENV = "CARACAL_FORENSICS_WORKERS"
#: ``0`` runs the pure-Python reference instead of the C kernels (jsonb, verify).
NATIVE_ENV = "CARACAL_FORENSICS_NATIVE"
#: More directories of named queries (``*.sql``), separated by the OS path separator.
QUERIES_ENV = "CARACAL_FORENSICS_QUERIES"
#: The longest line, JSON document or CSV record a reader accepts (``16MiB``, ``1048576``).
MAX_LINE_ENV = "CARACAL_FORENSICS_MAX_LINE_BYTES"
#: The S3-compatible endpoint of ``s3://`` sources (MinIO, Ceph, ...); else the AWS
#: tools' own variables below, else AWS itself.
S3_ENDPOINT_ENV = "CARACAL_FORENSICS_S3_ENDPOINT"
#: What the object store's client depends on: the endpoint variables, then the AWS tools'
#: credentials, profile, region and files (``sources/objects.py`` reads them from here).
AWS_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
OBJECT_STORE_ENVS = (S3_ENDPOINT_ENV, *AWS_ENDPOINT_ENVS, "AWS_ACCESS_KEY_ID",
                     "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                     "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                     "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")


@dataclass(frozen=True)
class Settings:
    """What the environment sets; each field's default is the library's default."""

    #: DuckDB memory limit text, such as ``1GB`` or ``512MB`` (checked)
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    #: parsing processes; None: one per core
    workers: int | None = None
    #: whether the C kernels may be used (when built)
    native: bool = True
    #: extra directories of named queries, after the bundled ``queries/``
    queries_dirs: tuple[str, ...] = ()
    #: the longest line a reader accepts, as given ("" for the default; checked, and
    #: parsed, where the readers take it: ``sources._io.max_line_bytes``)
    max_line_bytes: str = ""


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings ``environ`` (default ``os.environ``) holds; never raises, so that a
    command that does not use a setting is not stopped by it (a workers value that is not
    a positive number means one per core; the memory limit is checked where DuckDB takes
    it, ``engine.memory_limit``)."""
    env = os.environ if environ is None else environ
    memory = env.get(MEMORY_LIMIT_ENV, DEFAULT_MEMORY_LIMIT).strip()
    configured = env.get(WORKERS_ENV, "").strip()
    workers = int(configured) if configured.isdigit() and int(configured) > 0 else None
    extra = env.get(QUERIES_ENV, "")
    return Settings(
        memory_limit=memory,
        workers=workers,
        native=env.get(NATIVE_ENV, "1") != "0",
        queries_dirs=tuple(part for part in extra.split(os.pathsep) if part.strip()),
        max_line_bytes=env.get(MAX_LINE_ENV, "").strip(),
    )



def object_store_environment(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The variables of OBJECT_STORE_ENVS as ``environ`` (default ``os.environ``) sets
    them (None when unset): the object store's client is made from these alone."""
    env = os.environ if environ is None else environ
    return {name: env.get(name) for name in OBJECT_STORE_ENVS}


def adopt_object_store_environment(values: Mapping[str, str]) -> None:
    """In a worker of another engine (a Spark task): the driver's object-store variables
    (``object_store_environment``) where this process has none of its own."""
    for name, value in values.items():
        if name in OBJECT_STORE_ENVS and value:
            os.environ.setdefault(name, value)
