"""The Spark engine: the same verification, tail, stats and named queries over
partitioned Parquet (hourly OCSF trees, canonical snapshots) on a Spark cluster.

Optional (``pip install 'caracal-forensics[spark]'``): pyspark is imported only when an
engine function runs. Where the session comes from, in order: an active SparkSession
(``pyspark``/``spark-submit`` made it), Spark Connect when ``$SPARK_REMOTE`` is set, else
a local one (``$CARACAL_FORENSICS_SPARK_MASTER``, default ``local[*]``) started with
Java 17 (``$JAVA_HOME``, or the system's OpenJDK 17 when it is unset).

Executors run the package itself: the readers, the C kernel and the stage SQL of the
local engine (``chain/stages.py``) over each piece of the input, so both engines compute
the same per-row results; what Spark adds is the distributed chain (``verify.py``).
"""

from __future__ import annotations

import glob
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The engines a command can run on.
ENGINES = ("local", "spark")
#: What the user installs for the Spark engine.
INSTALL_HINT = "install caracal-forensics[spark] (pip install 'caracal-forensics[spark]')"
MASTER_ENV = "CARACAL_FORENSICS_SPARK_MASTER"
#: Java versions Spark 3.5/4 run on; a newer default java (25) is passed over.
_JAVA_HOMES = ("/usr/lib/jvm/java-17-openjdk-*", "/usr/lib/jvm/java-21-openjdk-*")

#: The memory of a local session's JVM (driver and executor in one), unless
#: ``$SPARK_DRIVER_MEMORY`` says otherwise.
LOCAL_DRIVER_MEMORY = "3g"

_session: Any = None


def check_engine(engine: str, parameter: str = "engine") -> str:
    """``engine`` if it is one of ``ENGINES``, else a usage error naming the parameter."""
    if engine not in ENGINES:
        raise UsageError(f"{parameter} must be one of {', '.join(ENGINES)}, not {engine!r}",
                         parameter=parameter)
    return engine


def require() -> None:
    """A usage error, one line, when pyspark is not installed."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise UsageError(f"the spark engine needs pyspark: {INSTALL_HINT}") from None
    from ..pandas_gate import allow

    allow()  # pyspark checks for pandas and converts through it (toPandas, mapInArrow)
    # mapInArrow's pandas check warns about pandas 3 on every call; Arrow is what we use
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


def session() -> SparkSession:
    """The SparkSession to run on (see the module docstring); made once per process."""
    global _session
    require()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if _session is not None:
        return _session
    if os.environ.get("SPARK_REMOTE"):
        try:
            _session = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
        except ImportError as error:  # PySparkImportError: grpcio and the like
            raise UsageError("Spark Connect ($SPARK_REMOTE) needs pyspark's connect extra: "
                             f"pip install 'pyspark[connect]' ({error})") from None
        return _session
    _java_home()
    # executors run this interpreter (the one with the package installed)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (SparkSession.builder
               .master(os.environ.get(MASTER_ENV, "local[*]"))
               .appName("caracal-forensics")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    if builder_master_is_local(os.environ.get(MASTER_ENV, "local[*]")):
        # a shuffle of a local session over a few cores: 200 partitions (Spark's default,
        # sized for clusters) cost more in tasks than they spread
        builder = builder.config("spark.sql.shuffle.partitions", str(4 * (os.cpu_count() or 1)))
        # the driver is the executor: Spark's 1g default evicts a verify's cached rows
        # (1M events are ~0.5 GB) and recomputes them; $SPARK_DRIVER_MEMORY wins
        if not os.environ.get("SPARK_DRIVER_MEMORY"):
            builder = builder.config("spark.driver.memory", LOCAL_DRIVER_MEMORY)
        # errors only: Spark's default logging prints 7 lines about itself at each start
        logging = os.path.join(os.path.dirname(__file__), "log4j2.properties")
        builder = builder.config("spark.driver.extraJavaOptions",
                                 f"-Dlog4j2.configurationFile=file:{logging}")
    _session = builder.getOrCreate()
    _session.sparkContext.setLogLevel("ERROR")
    return _session


def builder_master_is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def _java_home() -> None:
    """Point ``$JAVA_HOME`` at the system's Java 17 (or 21) when it is unset: the default
    ``java`` may be one Spark does not run on."""
    if os.environ.get("JAVA_HOME"):
        return
    for pattern in _JAVA_HOMES:
        for home in sorted(glob.glob(pattern)):
            if os.path.exists(os.path.join(home, "bin", "java")):
                os.environ["JAVA_HOME"] = home
                return


def to_arrow(frame: Any):
    """A (small) Spark DataFrame collected as a pyarrow Table."""
    import pyarrow as pa

    if hasattr(frame, "toArrow"):  # pyspark 4
        return frame.toArrow()
    batches = frame._collect_as_arrow()  # pyspark 3.5
    if batches:
        return pa.Table.from_batches(batches)
    return pa.Table.from_pandas(frame.toPandas(), preserve_index=False)


class spark_errors:  # noqa: N801 - used as ``with spark_errors():``
    """Turn a typed error raised in an executor (an unreadable input file, ...) back into
    one line: Spark hands it over as a Java exception holding the Python traceback."""

    def __enter__(self) -> spark_errors:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        import re

        from ..errors import ForensicsError

        if error is None or isinstance(error, ForensicsError | KeyboardInterrupt):
            return
        text = str(error)
        found = re.findall(r"caracal_forensics\.errors\.\w+: ([^\n]+)", text)
        if found:
            raise ForensicsError(found[-1]) from None
