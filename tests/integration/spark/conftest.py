"""One local Spark session (local[2]) for the whole test session: starting one takes
seconds, so every Spark test shares it, with few shuffle partitions and no UI."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    pytest.importorskip("pyspark")
    from caracal_forensics import spark as engine

    os.environ[engine.MASTER_ENV] = "local[2]"
    session = engine.session()
    session.conf.set("spark.sql.shuffle.partitions", "2")
    session.conf.set("spark.default.parallelism", "2")
    yield session
    session.stop()
    engine._session = None
