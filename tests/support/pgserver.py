"""A throwaway PostgreSQL server for the tests.

The server lives in a fresh temporary directory, listens on 127.0.0.1 on a free port
and on a unix socket in that directory. The unix socket trusts everyone; TCP from
127.0.0.1 requires scram-sha-256 passwords, so tests can exercise password auth.
When the tests run as root, initdb/pg_ctl/postgres run as the ``postgres`` OS user
(PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "postgres"  # only needed over TCP; the unix socket trusts


class PgNotInstalled(RuntimeError):
    """No PostgreSQL server binaries were found."""


def find_pg_bin() -> Path:
    """Locate the PostgreSQL bin dir: $PG_BIN, newest /usr/lib/postgresql/*/bin, $PATH."""
    env = os.environ.get("PG_BIN")
    candidates: list[Path] = [Path(env)] if env else []

    def version(path: str) -> tuple[int, ...]:
        parts = re.findall(r"\d+", Path(path).parent.name)
        return tuple(int(p) for p in parts)

    found = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(found, key=version, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "pg_ctl").is_file():
            return cand
    raise PgNotInstalled(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in $PG_BIN, "
        "/usr/lib/postgresql/*/bin or $PATH. Install them (e.g. `apt-get install "
        "postgresql-15 postgresql-contrib`, which the Makefile does) and rerun."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """A private PostgreSQL cluster: ``start()``, use, ``stop()``."""

    def __init__(self, bin_dir: Path | None = None, port: int | None = None) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir else find_pg_bin()
        self.port = port or _free_port()
        self.host = "127.0.0.1"
        self.base: Path | None = None
        self.datadir: Path | None = None
        self.sockdir: Path | None = None
        self._as_user: str | None = None
        self.started = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> PgServer:
        """initdb a fresh cluster in a temp dir and start it; return self."""
        if self.started:
            return self
        self._as_user = "postgres" if os.geteuid() == 0 else None
        parent = tempfile.gettempdir()
        if self._as_user and not os.stat(parent).st_mode & 0o001:
            parent = "/tmp"  # the postgres user must be able to reach the directory
        self.base = Path(tempfile.mkdtemp(prefix="caracal-pg-", dir=parent))
        self.datadir = self.base / "data"
        self.sockdir = self.base / "sock"
        self.sockdir.mkdir()
        if self._as_user:
            pw = pwd.getpwnam(self._as_user)
            for p in (self.base, self.sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(self.base, 0o755)
        pwfile = self.base / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self._as_user:
            pw = pwd.getpwnam(self._as_user)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        try:
            self._run_server_tool(
                "initdb",
                "-D",
                str(self.datadir),
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
            )
            (self.datadir / "pg_hba.conf").write_text(
                "# caracal-forensics test cluster\n"
                "local   all   all                  trust\n"
                "host    all   all   127.0.0.1/32   scram-sha-256\n"
            )
            if self._as_user:
                pw = pwd.getpwnam(self._as_user)
                os.chown(self.datadir / "pg_hba.conf", pw.pw_uid, pw.pw_gid)
            for attempt in range(3):
                try:
                    self._pg_ctl_start()
                    break
                except RuntimeError as exc:
                    # Another process took the port between _free_port() and the bind.
                    if attempt == 2 or "already in use" not in str(exc):
                        raise
                    self.port = _free_port()
        except BaseException:
            self._cleanup()
            raise
        self.started = True
        atexit.register(self.stop)  # in case the session ends without the fixture's stop
        return self

    def _pg_ctl_start(self) -> None:
        assert self.base is not None and self.datadir is not None
        opts = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.sockdir}",
                f"-h {self.host}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c password_encryption=scram-sha-256",
                "-c max_connections=50",
                "-c shared_buffers=32MB",
                "-c logging_collector=off",
            ]
        )
        self._run_server_tool(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(self.base / "server.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        try:
            if self.started and self.datadir is not None:
                self._run_server_tool(
                    "pg_ctl",
                    "-D",
                    str(self.datadir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                    check=False,
                )
        finally:
            self.started = False
            self._cleanup()
            atexit.unregister(self.stop)

    def _cleanup(self) -> None:
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_server_tool(self, tool: str, *args: str, check: bool = True) -> str:
        cmd = [str(self.bin_dir / tool), *args]
        if self._as_user:
            cmd = ["runuser", "-u", self._as_user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.base, timeout=120)
        if check and proc.returncode != 0:
            log = ""
            if self.base is not None and (self.base / "server.log").exists():
                log = (self.base / "server.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}"
            )
        return proc.stdout

    # -- clients -----------------------------------------------------------------------

    def dsn(
        self,
        user: str = SUPERUSER,
        dbname: str = "postgres",
        password: str | None = None,
        tcp: bool = False,
    ) -> str:
        """A libpq conninfo string; the unix socket (trust) unless tcp or a password."""
        host = self.host if (tcp or password is not None) else str(self.sockdir)
        parts = [f"host={host}", f"port={self.port}", f"user={user}", f"dbname={dbname}"]
        if password is not None:
            parts.append("password=" + _quote_conninfo(password))
        return " ".join(parts)

    def url(
        self, user: str = SUPERUSER, dbname: str = "postgres", password: str | None = None
    ) -> str:
        """A postgresql:// URL over TCP (password auth)."""
        from urllib.parse import quote

        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def psql(
        self,
        sql: str,
        dbname: str = "postgres",
        user: str = SUPERUSER,
        args: tuple[str, ...] = (),
    ) -> str:
        """Run ``sql`` with psql (unaligned, tuples only, stop on error); return stdout."""
        cmd = [
            str(self.bin_dir / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.sockdir),
            "-p",
            str(self.port),
            "-U",
            user,
            "-d",
            dbname,
            *args,
        ]
        env = {**os.environ, "PGCLIENTENCODING": "UTF8"}
        proc = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def connect(self, dbname: str = "postgres", user: str = SUPERUSER, **kwargs: Any) -> Any:
        """A psycopg (v3) connection over the unix socket, autocommit by default."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn(user=user, dbname=dbname), **kwargs)

    def create_database(self, name: str, schema_sql: str | Path | None = None) -> str:
        """CREATE DATABASE ``name`` (optionally load a schema file/text); return name."""
        self.psql(f'CREATE DATABASE "{name}"')
        if schema_sql is not None:
            text = schema_sql.read_text() if isinstance(schema_sql, Path) else schema_sql
            self.psql(text, dbname=name)
        return name


def _quote_conninfo(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
