"""The bundled fixtures in the test session's S3 server (``s3`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.paths import FIXTURE_EXPORT
from support.s3server import S3Server, environment


@pytest.fixture(scope="session")
def ocsf_url(s3: S3Server) -> str:
    """The bundled hourly OCSF tree (fixtures/export/ocsf), uploaded under ``exports/``:
    ``s3://BUCKET/exports/`` holds ``audit/2026/05/11/2026-05-11T08.parquet`` and on."""
    return s3.upload(FIXTURE_EXPORT / "ocsf", "exports")


@pytest.fixture
def s3_env(s3: S3Server) -> Iterator[dict[str, str | None]]:
    """The reader's environment (this server's endpoint, the user's key) meanwhile."""
    values = s3.env()
    with environment(values):
        yield values
