"""Interrupts and kills: real signals to a real child process running the CLI.

Ctrl-C (SIGINT) and SIGTERM end any command within a second with one line on stderr
(exit 130 and 143), whatever the command was doing, and leave no output and no
temporary files; after a kill -9 the next run removes what the dead one left. The
child gets a private TMPDIR, so what it leaves there is all that is looked at.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.paths import ROOT, SCHEMA
from support.tail import EXPORT

CLI = [sys.executable, "-c", "from caracal_forensics.cli import main; main()"]
#: Copies of the 240 vector events (ids made unique): ~70 MB, a few seconds of work.
COPIES = 300


@pytest.fixture(scope="module")
def big_export(tmp_path_factory) -> Path:
    """db.jsonl repeated COPIES times with unique ids (their hashes no longer match: verify
    has findings to explain, the slow path)."""
    lines = [x for x in (EXPORT / "db.jsonl").read_bytes().split(b"\n") if x]
    path = tmp_path_factory.mktemp("big") / "db.jsonl"
    with open(path, "wb") as out:
        for copy in range(COPIES):
            prefix = b'{"id":"k%d-' % copy
            out.write(b"\n".join(prefix + line[len(b'{"id":"'):] for line in lines) + b"\n")
    return path


def start(
    args: list[str], tmp: Path, env: dict[str, str] | None = None, new_session: bool = False,
    stdout: int = subprocess.DEVNULL,
) -> subprocess.Popen:
    environment = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("CARACAL_FORENSICS_DEBUG", None)
    return subprocess.Popen(
        [*CLI, *map(str, args)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=ROOT,
        start_new_session=new_session,
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(condition, process: subprocess.Popen, timeout: float = 60) -> None:
    """Until ``condition()``; fails if the child ended first (the data was too small)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"ended before the signal: {process.stderr.read()}"
        assert time.monotonic() < deadline, "the child never got there"
        time.sleep(0.005)


def spooling(tmp: Path):
    return lambda: any(tmp.glob("caracal-forensics-*/loaded-*"))


def busy(process: subprocess.Popen, seconds: float = 1.0):
    """Deep in the work: more CPU time than starting up takes."""
    return lambda: cpu_seconds(process.pid) > seconds


def writing_to_a_full_pipe(process: subprocess.Popen) -> bool:
    """The main thread waits in the kernel to write to a pipe (where the kernel says)."""
    try:
        return "pipe_write" in Path(f"/proc/{process.pid}/wchan").read_text()
    except OSError:
        return False


def stop(process: subprocess.Popen, signum: int, group: bool = False) -> tuple[float, str]:
    """Send ``signum`` (to its process group: as a terminal does); (seconds until the
    child exited, its stderr)."""
    assert process.poll() is None, "the child ended before the signal"
    sent = time.monotonic()
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"still running 30 s after the signal: {err}")
    return time.monotonic() - sent, err


def assert_interrupted(process, elapsed: float, err: str, signum: int) -> None:
    lines = err.splitlines()
    expected = "caracal-forensics: interrupted"
    if signum != signal.SIGINT:
        expected += f" ({signal.Signals(signum).name})"
    assert lines == [expected], err
    assert process.returncode == 128 + signum
    assert elapsed < 3, elapsed  # a second on a quiet machine; 2 busy cores are shared


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_mid_ingest_leaves_no_output_and_no_spool(big_export, tmp_path, signum) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "case"
    process = start(["ingest", "-s", big_export, "--out", out], tmp)
    wait_until(spooling(tmp), process)
    time.sleep(0.1)
    elapsed, err = stop(process, signum)
    assert_interrupted(process, elapsed, err, signum)
    assert not out.exists() or not list(out.iterdir())
    assert list(tmp.iterdir()) == []
    # and the run after it is not refused for a non-empty --out
    done = start(["ingest", "-s", EXPORT / "db.jsonl", "--out", out], tmp)
    assert done.wait(60) == 0, done.stderr.read()


@pytest.mark.parametrize(
    ("command", "output"),
    [
        (["verify", "--key-file", EXPORT / "key.hex"], subprocess.DEVNULL),
        # its output goes to a pipe nobody reads yet, as to a pager: the child cannot end
        # before the signal (tail writes these 70 MB in about half a second)
        (["audit", "tail", "--limit", "0", "--json"], subprocess.PIPE),
    ],
    ids=["verify", "tail"],
)
def test_ctrl_c_mid_command_is_one_line_and_130(big_export, tmp_path, command, output) -> None:
    """Not DuckDB's "Query interrupted" nor verify's "connection has an open result"
    pointing at the manifest: the interrupt, and nothing left in TMPDIR."""
    process = start([*command, "-s", big_export], tmp_path, stdout=output)
    if output == subprocess.DEVNULL:
        wait_until(busy(process, 0.7), process)
    else:  # deep in the work, or (sooner on a faster machine) waiting for the reader
        wait_until(lambda: busy(process, 0.4)() or writing_to_a_full_pipe(process), process)
    elapsed, err = stop(process, signal.SIGINT)
    assert_interrupted(process, elapsed, err, signal.SIGINT)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_ctrl_c_in_a_terminal_reaches_the_worker_processes_too(big_export, tmp_path,
                                                               signum) -> None:
    """A terminal's Ctrl-C (or its hang-up) goes to the whole process group. Without the C
    kernel, JSON lines are parsed in worker processes: each printed its own
    KeyboardInterrupt traceback, and one still starting broke the pool and hung the
    command."""
    env = {"CARACAL_FORENSICS_NATIVE": "0", "CARACAL_FORENSICS_WORKERS": "2"}
    process = start(["stats", "-s", big_export], tmp_path, env=env, new_session=True)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    wait_until(lambda: children.read_text().split(), process)
    time.sleep(0.5)
    elapsed, err = stop(process, signum, group=True)
    assert_interrupted(process, elapsed, err, signum)
    assert list(tmp_path.iterdir()) == []


def test_kill_9_leftovers_are_removed_by_the_next_run(big_export, tmp_path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    process = start(["ingest", "-s", big_export, "--out", tmp_path / "case"], tmp)
    wait_until(spooling(tmp), process)
    process.kill()
    process.wait(30)
    left = list(tmp.glob(f"caracal-forensics-{process.pid}-*"))
    assert left and any(left[0].glob("loaded-*"))  # what kill -9 leaves behind
    done = start(["stats", "-s", EXPORT / "db.jsonl"], tmp)
    assert done.wait(60) == 0, done.stderr.read()
    assert list(tmp.iterdir()) == []


def test_worker_processes_end_when_the_main_process_is_killed(big_export, tmp_path) -> None:
    """Worker processes ignore the stop signals (the main process handles them) and wait
    for work on a queue they hold both ends of: after a kill -9 of the main process they
    waited for ever. Now each ends within a few seconds of its parent."""
    env = {"CARACAL_FORENSICS_NATIVE": "0", "CARACAL_FORENSICS_WORKERS": "2"}
    process = start(["stats", "-s", big_export], tmp_path, env=env)
    listed = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    wait_until(lambda: len(listed.read_text().split()) >= 2, process)
    time.sleep(0.5)  # the workers started, their initializer run
    children = [int(pid) for pid in listed.read_text().split()]
    process.kill()
    process.wait(30)

    def gone(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        return state == "Z"  # ended, not yet reaped by its new parent

    deadline = time.monotonic() + 20
    while not all(gone(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in children if not gone(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []


_HOLDER = """
import sys, time
from caracal_forensics import tempdirs
print(tempdirs.make(), flush=True)
time.sleep(600)
"""


def test_a_live_process_keeps_its_directory_a_dead_one_loses_it(tmp_path) -> None:
    """The lock decides, not the pid: a live owner's directory is never swept, even when
    its name's pid is gone; a dead owner's is, even when its pid is alive (reused)."""
    from caracal_forensics import tempdirs

    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        held = Path(holder.stdout.readline().strip())
        assert held.parent == tmp_path
        # A directory named after a process that is alive (this one), whose lock nobody
        # holds: its owner died and the pid was reused.
        reused = tmp_path / f"caracal-forensics-{os.getpid()}-abcd1234"
        reused.mkdir()
        (reused / tempdirs.LOCK_NAME).touch()
        (reused / "spill.tmp").write_bytes(b"x" * 1000)
        # A live owner's directory whose name claims a pid that does not exist.
        renamed = tmp_path / "caracal-follow-999999999-abcd1234"
        held.rename(renamed)
        removed = tempdirs.sweep_stale(str(tmp_path))
        assert removed == [str(reused)]
        assert renamed.exists() and not reused.exists()
        holder.kill()
        holder.wait(30)
        assert tempdirs.sweep_stale(str(tmp_path)) == [str(renamed)]
        assert list(tmp_path.iterdir()) == []
    finally:
        if holder.poll() is None:
            holder.kill()


def test_tmpdir_with_a_quote_is_not_sql(tmp_path) -> None:
    """$TMPDIR went into ``SET temp_directory = '...'`` as it was: a quote broke every
    command, and ``'; SELECT ...`` ran."""
    tmp = tmp_path / "it's; SELECT 1; --"
    tmp.mkdir()
    done = start(["stats", "-s", EXPORT / "db.jsonl"], tmp)
    assert done.wait(60) == 0, done.stderr.read()
    assert list(tmp.iterdir()) == []


# --- snapshot --dsn: a real PostgreSQL -------------------------------------------------

APPLICATION = "caracal-forensics snapshot"
#: Rows a snapshot still streams when the signal comes (the server waits on the client).
STREAMED_ROWS = 200_000


def _sessions(pg) -> list[tuple[str, str]]:
    with pg.connect() as conn:
        return conn.execute(
            "SELECT state, left(query, 60) FROM pg_stat_activity WHERE application_name = %s",
            [APPLICATION],
        ).fetchall()


@pytest.fixture(scope="module")
def slow_dbs(pg) -> dict[str, str]:
    """Two audit databases: ``sleeping``, whose audit_events is a view that sleeps a
    minute before its first row; ``streaming``, a table of STREAMED_ROWS rows."""
    import uuid

    suffix = uuid.uuid4().hex[:8]
    sleeping = pg.create_database(f"sig_sleep_{suffix}", SCHEMA)
    pg.psql(
        "ALTER TABLE audit_events RENAME TO audit_events_stored; "
        "CREATE VIEW audit_events AS SELECT * FROM audit_events_stored "
        "WHERE pg_sleep(60) IS NOT NULL; "
        "INSERT INTO audit_events_stored (id, zone_id, event_type, occurred_at, "
        "content_sha256, chain_hmac, chain_seq) VALUES ('e', 'z', 't', now(), 'a', 'b', 1);",
        dbname=sleeping,
    )
    streaming = pg.create_database(f"sig_stream_{suffix}", SCHEMA)
    pg.psql(
        "INSERT INTO audit_events (id, zone_id, event_type, occurred_at, content_sha256, "
        "chain_hmac, chain_seq, metadata_json) "
        "SELECT 'ev-' || i, 'zone-' || (i % 4), 'token_exchange', "
        "timestamptz '2026-05-11' + i * interval '1 ms', md5(i::text), md5(i::text), "
        "i / 4 + 1, jsonb_build_object('principal_id', 'app-' || (i % 100), "
        f"'pad', repeat('x', 300)) FROM generate_series(1, {STREAMED_ROWS}) i",
        dbname=streaming,
    )
    return {"sleeping": sleeping, "streaming": streaming}


@pytest.mark.parametrize(
    ("database", "signum"),
    [("sleeping", signal.SIGINT), ("streaming", signal.SIGINT), ("streaming", signal.SIGTERM)],
    ids=["statement-running-SIGINT", "rows-streaming-SIGINT", "rows-streaming-SIGTERM"],
)
def test_snapshot_dsn_interrupt_ends_the_session(pg, slow_dbs, tmp_path, database, signum):
    """Ctrl-C during ``snapshot --dsn`` hung for over 10 minutes in the connection's
    rollback, holding an ``idle in transaction`` session (a statement still running on the
    server, or a COPY still streaming). Now the statement is cancelled and the
    connection closed: exit within a second, and no session left on the server."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "case"
    process = start(
        ["snapshot", "--dsn", pg.dsn(dbname=slow_dbs[database]), "--out", out], tmp
    )
    try:
        wait_until(lambda: any("COPY" in q for _, q in _sessions(pg)), process)
        time.sleep(0.2)
        elapsed, err = stop(process, signum)
    finally:
        if process.poll() is None:
            process.kill()
    assert_interrupted(process, elapsed, err, signum)
    deadline = time.monotonic() + 5
    while _sessions(pg) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sessions(pg) == []
    assert not out.exists() or not list(out.iterdir())
    assert list(tmp.iterdir()) == []


def test_a_signal_ignored_by_the_parent_stays_ignored(tmp_path) -> None:
    """A background job of a non-interactive shell (``cmd &``) or ``nohup`` starts with
    SIGINT ignored: a Ctrl-C meant for the terminal's foreground job must not stop it."""
    process = subprocess.Popen(
        [*CLI, "audit", "tail", "-s", EXPORT / "db.jsonl", "--follow", "--interval", "0.1",
         "--follow-max-seconds", "2", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    wait_until(lambda: any(tmp_path.glob("caracal-follow-*")), process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and err == ""


def test_what_psycopg_ignores_while_a_cancelled_copy_ends_is_not_printed(pg):
    """Ending a COPY cancelled by an interrupt, psycopg logs the error it ignores as a
    warning; without a handler Python printed it on stderr before our one line (seen in
    CI, by chance, under SIGTERM). A snapshot's connection leaves psycopg's warnings
    unprinted."""
    code = (
        "import logging, sys\n"
        "from caracal_forensics.pgsnapshot import _connect\n"
        "_connect(sys.argv[1]).close()\n"
        "logging.getLogger('psycopg').warning('error ignored terminating <Copy>: x')\n"
    )
    result = subprocess.run([sys.executable, "-c", code, pg.dsn()], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_an_interrupted_run_ends_though_a_thread_never_would(tmp_path) -> None:
    """An interrupt landing in ``ThreadPoolExecutor.submit`` just after a worker started
    left a worker that nothing ends (the pool never noted it); Python's exit waited for it
    for ever (seen once in 400 interrupted verifies). The interrupted CLI ends all the
    same, after its grace, its temporary directories removed."""
    code = (
        "import threading\n"
        "from caracal_forensics import tempdirs\n"
        "from caracal_forensics.cli.stopping import Interrupted, exit_interrupted\n"
        "tempdirs.make()\n"
        "threading.Thread(target=threading.Event().wait, name='orphan').start()\n"
        "exit_interrupted(Interrupted(2))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the interrupted process waited for a thread that never ends")
    assert (process.returncode, err) == (130, "caracal-forensics: interrupted\n")
    assert list(tmp_path.iterdir()) == []


def test_the_shared_parsing_pools_start_their_workers_at_once() -> None:
    """A worker started in ``submit()`` is one an interrupt can orphan: the pools that are
    never shut down start theirs when made, a signal held meanwhile."""
    import threading

    from caracal_forensics.sources import _parallel

    pool = _parallel._started_pool(3, "started-at-once")
    try:
        assert sum(t.name.startswith("started-at-once") for t in threading.enumerate()) == 3
        assert pool.submit(sum, [1, 2]).result(timeout=10) == 3
    finally:
        pool.shutdown()


def test_a_shared_pool_interrupted_while_starting_leaves_no_worker_waiting() -> None:
    """Without the CLI's handler (a notebook's Ctrl-C) the interrupt is not held: raised
    as the second worker is asked for, the first must not wait for ever for the others
    (a thread nothing ends holds the process's exit)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from caracal_forensics.sources import _parallel

    submits = []

    def profile(frame, event, arg) -> None:
        if event == "call" and frame.f_code is ThreadPoolExecutor.submit.__code__:
            submits.append(frame)
            if len(submits) == 2:
                signal.raise_signal(signal.SIGINT)  # Python's own handler: KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.setprofile(profile)
    try:
        with pytest.raises(KeyboardInterrupt):
            _parallel._started_pool(3, "interrupted-while-starting")
    finally:
        sys.setprofile(None)
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
            t.name.startswith("interrupted-while-starting") for t in threading.enumerate()):
        time.sleep(0.05)
    assert [t.name for t in threading.enumerate()
            if t.name.startswith("interrupted-while-starting")] == []


@pytest.mark.parametrize("module", ["caracal_forensics.cli.app", "typer",
                                    "caracal_forensics.cli.audit"])
def test_ctrl_c_while_starting_up_is_one_line_and_130(tmp_path, module) -> None:
    """Before the CLI handles signals (its modules being imported, its commands
    registered) Ctrl-C printed Python's KeyboardInterrupt traceback. Here SIGINT comes
    as ``module`` is about to be imported (an import hook raises it)."""
    code = (
        "import signal, sys\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r}:\n"
        "            sys.meta_path.remove(self)\n"
        "            signal.raise_signal(signal.SIGINT)\n"
        "sys.meta_path.insert(0, Hook())\n"
        "from caracal_forensics.cli import main\n"
        "sys.argv = ['caracal-forensics', 'audit', 'tail', '--help']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (result.returncode, result.stderr) == (130, "caracal-forensics: interrupted\n")
