"""``make bench``: the toolkit side by side with jq, plain Python, hand-written SQL and openssl.

    BENCH_N=1000000 .venv/bin/python bench/run.py      # default N = 1,000,000
    BENCH_N=20000 .venv/bin/python bench/run.py        # a smoke check in a minute
    BENCH_BIG=1 .venv/bin/python bench/run.py          # also the 10,000,000-event snapshot
    .venv/bin/python bench/run.py --render bench/out/results-n1000000.json   # RESULTS.md again

Environment:
  BENCH_N              events in the generated exports (default 1000000)
  BENCH_BIG=1          also tail/explain/verify over a BENCH_BIG_N-event snapshot
  BENCH_BIG_N          events of the big snapshot (default 10000000)
  BENCH_BIG_JQ=1       with BENCH_BIG: generate the big CLI JSON lines and run jq on them
                       for real (else jq's time at BENCH_N is scaled linearly, and says so)
  BENCH_ONLY           comma list of groups to run: baselines,ingest,tail,broad,verify,
                       startup,big,spark (bench/spark_bench.py, when pyspark is installed)
  BENCH_RECOVER_EVENTS OCSF rows for the microsecond-recovery run (default 50000; 0 = all)
  BENCH_TIMEOUT        seconds before one command is killed (default 1800)
  BENCH_REPEAT         runs of a command under 10 s, the fastest kept (default 3)
  BENCH_OUT            where data and raw results go (default bench/out)
  BENCH_WRITE_RESULTS=1  write bench/RESULTS.md even below 1,000,000 events (a smaller
                       run otherwise writes bench/out/RESULTS-n<N>.md)

Every measurement is a fresh child process: wall seconds (perf_counter around the child)
and peak memory (the larger of GNU time's %M, the child's ru_maxrss, and the sum of the
tree's RSS sampled every 0.1 s, so worker processes count). events/s = events in the
input / wall seconds. A ratio is baseline seconds / toolkit seconds (above 1: the toolkit
is faster). Prints a table per group and writes bench/RESULTS.md (sections "Optimisation
log" and "Hot spots" of an existing RESULTS.md are kept) and bench/out/results-*.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import generate  # noqa: E402
from sql_baseline import NO_EVENT_TYPE  # noqa: E402

PY = os.path.join(ROOT, ".venv", "bin", "python")
CF = os.path.join(ROOT, ".venv", "bin", "caracal-forensics")
JQ = shutil.which("jq") or "/usr/bin/jq"
TIME = "/usr/bin/time"
RECIPES = os.path.join(ROOT, "tests", "data", "seed_recipes.json")
RESULTS_MD = os.path.join(HERE, "RESULTS.md")
#: Sections of RESULTS.md that a run never rewrites (the lead's log, profile notes).
KEPT_SECTIONS = ("Optimisation log", "Hot spots", "Spark engine")
PAGE = os.sysconf("SC_PAGE_SIZE")

N = int(os.environ.get("BENCH_N", "1000000"))
BIG = os.environ.get("BENCH_BIG", "") not in ("", "0")
BIG_N = int(os.environ.get("BENCH_BIG_N", "10000000"))
BIG_JQ = os.environ.get("BENCH_BIG_JQ", "") not in ("", "0")
ONLY = {g.strip() for g in os.environ.get("BENCH_ONLY", "").split(",") if g.strip()}
RECOVER_EVENTS = int(os.environ.get("BENCH_RECOVER_EVENTS", "50000"))
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "1800"))
#: A command that finishes under REPEAT_UNDER seconds runs REPEAT times and keeps its
#: fastest run (on 2 shared cores one run varies by 20-30%); peak memory is the largest.
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
REPEAT_UNDER = 10.0
OUT = os.environ.get("BENCH_OUT", os.path.join(HERE, "out"))
SCRATCH = os.path.join(OUT, "scratch")


# --- measuring one child process --------------------------------------------------------


@dataclass
class Run:
    """One measured command."""

    task: str
    group: str
    title: str
    command: str
    seconds: float | None = None
    peak_mib: float | None = None
    rc: int | None = None
    events: int | None = None
    rows: int | None = None
    note: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    compare: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.seconds is not None and not self.error

    @property
    def rate(self) -> float | None:
        if not self.ok or not self.events or not self.seconds:
            return None
        return self.events / self.seconds


def _tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and all its descendants (via /proc/*/task/*/children)."""
    total = 0
    stack = [root]
    seen = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as handle:
                    stack.extend(int(c) for c in handle.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(run: Run, argv: list[str] | str, *, shell: bool = False,
            env: dict[str, str] | None = None, cwd: str | None = None,
            keep_stdout: bool = False, before_each=None) -> Run:
    """Run one command (again, up to REPEAT times, while it is quick and not killed); the
    fastest run's seconds, the largest peak memory, every run's seconds in ``runs_s``.
    ``before_each`` makes a run repeatable (e.g. removes the output it wrote); runs that
    end with different exit codes make the task an error rather than a time."""
    times: list[float] = []
    peaks: list[float] = []
    codes: list[int | None] = []
    while True:
        if before_each is not None:
            before_each()
        _measure_once(run, argv, shell=shell, env=env, cwd=cwd, keep_stdout=keep_stdout)
        times.append(run.seconds or 0.0)
        peaks.append(run.peak_mib or 0.0)
        codes.append(run.rc)
        if len(times) >= REPEAT or run.error or (run.seconds or 0) >= REPEAT_UNDER:
            break
    run.seconds = min(times)
    run.peak_mib = max(peaks)
    if len(times) > 1:
        run.extra["runs_s"] = [round(t, 3) for t in times]
    if len(set(codes)) > 1 and not run.error:
        run.error = f"runs disagree: exit codes {codes}"
    return run


def _measure_once(run: Run, argv: list[str] | str, *, shell: bool = False,
                  env: dict[str, str] | None = None, cwd: str | None = None,
                  keep_stdout: bool = False) -> Run:
    """Run one command in a fresh process group; fill seconds, peak_mib, rc, rows."""
    os.makedirs(SCRATCH, exist_ok=True)
    run.command = argv if isinstance(argv, str) else shlex.join(argv)
    out_path = os.path.join(SCRATCH, f"{run.task}.stdout")
    err_path = os.path.join(SCRATCH, f"{run.task}.stderr")
    rss_path = os.path.join(SCRATCH, f"{run.task}.maxrss")
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("COLUMNS", None)
    # GNU time reports the child's own ru_maxrss (KiB). Measured straight from here, a
    # child's maxrss would include this runner's pages copied at fork, before exec.
    wrapped = [TIME, "-f", "%M", "-o", rss_path]
    wrapped += ["bash", "-c", argv] if shell else list(argv)
    peak = [0]
    done = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(wrapped, stdout=out, stderr=err, env=full_env,
                                 cwd=cwd or ROOT, start_new_session=True)

        def sample() -> None:
            while not done.wait(0.1):
                peak[0] = max(peak[0], _tree_rss(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(TIMEOUT, lambda: _kill_group(child.pid))
        timer.start()
        try:
            _pid, status, _usage = os.wait4(child.pid, 0)
        finally:
            elapsed = time.perf_counter() - started
            timer.cancel()
            done.set()
            sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
    run.rc = child.returncode
    run.seconds = elapsed
    try:
        with open(rss_path) as handle:
            maxrss = int(handle.read().strip().splitlines()[-1]) * 1024
        os.unlink(rss_path)
    except (OSError, ValueError, IndexError):
        maxrss = 0
    run.peak_mib = max(maxrss, peak[0]) / 2**20
    run.extra["maxrss_mib"] = round(maxrss / 2**20, 1)
    run.extra["tree_rss_mib"] = round(peak[0] / 2**20, 1)
    if run.rc is not None and (run.rc < 0 or elapsed >= TIMEOUT):
        run.error = f"killed (exit {run.rc})" + (" (timeout)" if elapsed >= TIMEOUT else "")
    with open(out_path, "rb") as handle:
        data = handle.read()
    run.rows = data.count(b"\n")
    if keep_stdout:
        run.extra["stdout"] = data.decode("utf-8", "replace")
    with open(err_path, "rb") as handle:
        tail = handle.read().decode("utf-8", "replace").strip().splitlines()
    if tail:
        run.extra["stderr"] = tail[-1][:300]
    os.unlink(out_path)
    os.unlink(err_path)
    return run


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # our own child's process group, by its id
    except ProcessLookupError:
        pass


# --- the tasks ----------------------------------------------------------------------------


class Bench:
    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.info: dict[str, Any] = {}

    def add(self, run: Run) -> Run:
        self.runs[run.task] = run
        status = "ok" if run.ok else f"FAILED {run.error}"
        rate = f" {run.rate:,.0f} ev/s" if run.rate else ""
        print(f"  {run.task:38s} {run.seconds or 0:8.2f}s {run.peak_mib or 0:7.0f} MiB"
              f"{rate} {status}", flush=True)
        return run

    def cf(self, task: str, group: str, title: str, args: list[str], *, events: int | None,
           compare: list[str] | None = None, expect_rc: tuple[int, ...] = (0,),
           json_report: bool = False, env: dict[str, str] | None = None,
           before_each=None) -> Run:
        run = Run(task, group, title, "", events=events, compare=compare or [])
        measure(run, [CF, *args], env=env, keep_stdout=json_report, before_each=before_each)
        if run.rc not in expect_rc and not run.error:
            run.error = f"exit {run.rc}: {run.extra.get('stderr', '')}"
        if json_report and not run.error:
            try:
                report = json.loads(run.extra.pop("stdout"))
                run.extra["status"] = report.get("status")
                run.extra["events_checked"] = report.get("events_checked")
                kinds: dict[str, int] = {}
                for finding in report.get("findings", []):
                    kinds[finding["kind"]] = kinds.get(finding["kind"], 0) + 1
                run.extra["findings"] = kinds
                run.note = (f"{report.get('status')}, {report.get('events_checked')} checked"
                            + (f", findings {kinds}" if kinds else ""))
            except (ValueError, KeyError) as error:
                run.error = f"unreadable report: {error}"
        run.extra.pop("stdout", None)
        return self.add(run)


def machine() -> dict[str, Any]:
    import duckdb
    import pyarrow

    cpu = "?"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    try:
        import polars
        polars_version = polars.__version__
    except ImportError:
        polars_version = "-"
    jq = subprocess.run([JQ, "--version"], capture_output=True, text=True).stdout.strip()
    ssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
        return done.stdout.strip()

    dirty = [line for line in git("status", "--porcelain", "caracal_forensics").splitlines()
             if line.strip()]
    native = subprocess.run(
        [PY, "-c", "from caracal_forensics.chain import native; print(native.AVAILABLE)"],
        capture_output=True, text=True, cwd=ROOT,
    ).stdout.strip() or "no (module missing)"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD")
        + (f" + {len(dirty)} uncommitted file(s) in caracal_forensics/" if dirty else ""),
        "native_kernel": native,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "polars": polars_version,
        "jq": jq,
        "openssl": ssl,
        "kernel": platform.release(),
        "load_before": os.getloadavg(),
    }


def openssl_speed(bench: Bench) -> None:
    run = Run("openssl_sha256", "baselines", "openssl speed -seconds 2 sha256", "")
    measure(run, ["openssl", "speed", "-seconds", "2", "sha256"], keep_stdout=True)
    text = run.extra.pop("stdout", "")
    # "sha256  123.45k  456.78k ... " columns: 16, 64, 256, 1024, 8192, 16384 bytes
    match = re.search(r"^sha256\s+(.+)$", text, re.M)
    if match:
        values = [float(v.rstrip("k")) * 1000 for v in match.group(1).split()]
        sizes = [16, 64, 256, 1024, 8192, 16384]
        speeds = dict(zip(sizes, values, strict=False))
        run.extra["bytes_per_s"] = speeds
        per_core = speeds.get(1024) or max(values)
        # An event: SHA-256 over the preimage (the generated ones average PREIMAGE bytes,
        # ceil((len + 9) / 64) compression blocks) plus the HMAC (ipad block + 2 blocks of
        # the 129-byte message, opad block + 1 block): blocks per event at 64 bytes each.
        preimage = bench.info.get("preimage_bytes", 520)
        blocks = -(-(preimage + 9) // 64) + 3 + 2
        cores = os.cpu_count() or 1
        bound = per_core / 64 / blocks * cores
        run.extra["events_per_s_bound"] = bound
        run.note = (f"{per_core / 1e6:,.0f} MB/s per core at 1 KiB; {blocks} SHA-256 blocks "
                    f"per event ({preimage} B preimage + HMAC) -> about {bound:,.0f} "
                    f"events/s on {cores} cores")
    else:
        run.error = "could not parse openssl speed output"
    bench.add(run)


def preimage_bytes(meta: dict) -> int:
    """Average preimage length of the generated events (for the hashing bound)."""
    import duckdb

    snapshot = meta["files"]["snapshot"].replace("'", "''")
    con = duckdb.connect()
    value = con.sql(
        f"""SELECT avg(strlen(concat_ws(chr(31), id, zone_id, event_type,
                   coalesce(request_id, ''), coalesce(decision, ''), policy_set_id,
                   policy_set_version_id, manifest_sha, evaluation_status,
                   coalesce(determining_policies_json, 'null'),
                   coalesce(diagnostics_json, 'null'), coalesce(metadata_json, 'null'),
                   '1778486400000000000')))
              FROM (SELECT * FROM read_parquet('{snapshot}/events/*.parquet') LIMIT 100000)"""
    ).fetchall()[0][0]
    con.close()
    return int(value or 520)


def recipes(principal: str) -> list[dict]:
    try:
        with open(RECIPES, encoding="utf-8") as handle:
            found = json.load(handle)["recipes"]
    except (OSError, ValueError, KeyError):
        found = [  # the brief's fallback, until tests/data/seed_recipes.json exists
            {"name": "denies_for_application",
             "jq": 'select(.decision=="deny" and .metadata.principal_id=="APP")',
             "jmespath": "decision == 'deny' && metadata.principal_id == 'APP'"},
            {"name": "denies_requiring_step_up",
             "jq": 'select(.decision=="deny" and '
                   '([.diagnostics[]?|select(.step_up_required)]|length>0))',
             "jmespath": "decision == 'deny' && diagnostics[?step_up_required != null]"},
            {"name": "jti_collisions", "jq": 'select(.event_type=="jti_collision")',
             "jmespath": "event_type == 'jti_collision'"},
        ]
    return [dict(r, jq=r["jq"].replace("APP", principal),
                 jmespath=r.get("jmespath", "").replace("APP", principal)) for r in found]


def jq_baselines(bench: Bench, meta: dict, path: str, events: int, suffix: str = "") -> None:
    principal, request = meta["principal"], meta["request_id"]
    group = "baselines" if not suffix else "big"
    for recipe in recipes(principal):
        run = Run(f"jq_{recipe['name']}{suffix}", group, f"jq recipe {recipe['name']}", "",
                  events=events)
        measure(run, [JQ, "-c", recipe["jq"], path])
        if run.rc != 0 and not run.error:
            run.error = f"exit {run.rc}: {run.extra.get('stderr', '')}"
        bench.add(run)
    run = Run(f"jq_request{suffix}", group, "jq: every event of one request "
              "(explain / tail --request-id)", "", events=events)
    measure(run, [JQ, "-c", f'select(.request_id == "{request}")', path])
    bench.add(run)
    run = Run(f"jq_broad{suffix}", group, "jq: newest 100 denies (select | tail -n 100)", "",
              events=events)
    measure(run, f"{shlex.quote(JQ)} -c 'select(.decision == \"deny\")' "
                 f"{shlex.quote(path)} | tail -n 100", shell=True)
    bench.add(run)


def sql_baselines(bench: Bench, meta: dict, n: int) -> None:
    files = meta["files"]
    plan = [
        ("principal_denies", ["cli_jsonl", "db_csv", "snapshot"]),
        ("request", ["cli_jsonl", "db_csv", "snapshot"]),
        ("broad", ["cli_jsonl", "snapshot"]),
        ("step_up_denies", ["cli_jsonl", "snapshot"]),
        ("jti_collisions", ["cli_jsonl", "snapshot"]),
    ]
    paths = {"cli_jsonl": files["cli.jsonl"], "db_csv": files["db.csv"],
             "snapshot": files["snapshot"]}
    for task, shapes in plan:
        for shape in shapes:
            run = Run(f"sql_{task}_{shape}", "baselines",
                      f"DuckDB SQL {task} over {shape}", "", events=n)
            measure(run, [PY, os.path.join(HERE, "sql_baseline.py"), task, shape, paths[shape],
                          "--request-id", meta["request_id"], "--principal", meta["principal"]],
                    keep_stdout=True)
            try:
                run.rows = json.loads(run.extra.pop("stdout"))["rows"]
            except (ValueError, KeyError):
                run.error = f"exit {run.rc}: {run.extra.get('stderr', '')}"
            bench.add(run)


def plain_baselines(bench: Bench, meta: dict, n: int) -> None:
    for shape, flag, path in (("csv", "--csv", meta["files"]["db.csv"]),
                              ("jsonl", "--jsonl", meta["files"]["db.jsonl"])):
        run = Run(f"plain_verify_{shape}", "baselines",
                  f"plain Python verifier over db.{shape}", "", events=n)
        measure(run, [PY, os.path.join(HERE, "plain_verify.py"), "--key-file",
                      meta["key_file"], flag, path], keep_stdout=True)
        try:
            result = json.loads(run.extra.pop("stdout"))
            run.note = f"{result['status']}, {result['events']} events"
        except (ValueError, KeyError):
            run.error = f"exit {run.rc}: {run.extra.get('stderr', '')}"
        bench.add(run)


def floor_task(bench: Bench, meta: dict, n: int) -> None:
    """bench/floors.py: each essential step alone, and the floor of each task it implies."""
    files = meta["files"]
    run = Run("floors", "baselines", "essential steps alone (bench/floors.py)", "", events=n)
    measure(run, [PY, os.path.join(HERE, "floors.py"), "--csv", files["db.csv"],
                  "--ocsf", files["ocsf"], "--snapshot", files["snapshot"],
                  "--key-file", meta["key_file"]], keep_stdout=True)
    try:
        run.extra["floors"] = json.loads(run.extra.pop("stdout"))
        tasks = run.extra["floors"]["tasks"]
        run.note = "floors: " + ", ".join(f"{task} {t['floor']:.2f}s"
                                         for task, t in tasks.items())
    except (ValueError, KeyError):
        run.error = f"exit {run.rc}: {run.extra.get('stderr', '')}"
    bench.add(run)


def ingest_tasks(bench: Bench, meta: dict, n: int) -> None:
    files = meta["files"]
    for shape, source in (("db_csv", files["db.csv"]), ("db_jsonl", files["db.jsonl"]),
                          ("cli_jsonl", files["cli.jsonl"]), ("ocsf", files["ocsf"])):
        out = os.path.join(SCRATCH, f"ingest-{shape}")
        run = bench.cf(f"ingest_{shape}", "ingest", f"ingest from {shape}",
                       ["ingest", "--source", source, "--out", out], events=n,
                       before_each=lambda out=out: shutil.rmtree(out, ignore_errors=True))
        if shape == "db_csv" and run.ok:
            # The snapshot the later groups read is the one this toolkit just wrote (its
            # manifest may carry what newer readers rely on), not the cached one.
            old = files["snapshot"] + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(files["snapshot"], old)
            shutil.move(out, files["snapshot"])
            shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


def tail_tasks(bench: Bench, meta: dict, n: int, snapshot: str, jsonl: str | None,
               suffix: str = "", with_recipes: bool = True) -> None:
    request, principal = meta["request_id"], meta["principal"]
    group = "tail" if not suffix else "big"
    sources = [("snapshot", snapshot)] + ([("cli_jsonl", jsonl)] if jsonl else [])
    for shape, source in sources:
        sql_shape = shape if not suffix else None

        def cmp(jq_task: str, sql_task: str | None, shape: str = shape,
                sql_shape: str | None = sql_shape) -> list[str]:
            out = [jq_task + suffix]
            if sql_task and sql_shape:
                out.append(f"sql_{sql_task}_{sql_shape}")
            return out

        bench.cf(f"tail_request_{shape}{suffix}", group,
                 f"audit tail --request-id R --json ({shape})",
                 ["audit", "tail", "--source", source, "--request-id", request, "--json"],
                 events=n, compare=cmp("jq_request", "request"))
        bench.cf(f"explain_{shape}{suffix}", group, f"explain R ({shape})",
                 ["explain", request, "--source", source],
                 events=n, compare=cmp("jq_request", "request"))
        bench.cf(f"explain_json_{shape}{suffix}", group, f"explain R --json ({shape})",
                 ["explain", request, "--source", source, "--json"],
                 events=n, compare=cmp("jq_request", "request"))
        bench.cf(f"tail_broad_{shape}{suffix}", group,
                 f"audit tail --decision deny --limit 100 --json ({shape})",
                 ["audit", "tail", "--source", source, "--decision", "deny", "--limit", "100",
                  "--json"], events=n, compare=cmp("jq_broad", "broad"))
        bench.cf(f"query_principal_{shape}{suffix}", group,
                 f"query denies_for_principal --json ({shape})",
                 ["query", "denies_for_principal", "--param", f"principal_id={principal}",
                  "--json", "--source", source],
                 events=n, compare=cmp("jq_denies_for_application", "principal_denies"))
        if with_recipes:
            recipe_tasks(bench, principal, n, shape, source, group, suffix)


#: The broad projection of issue 20 (the seed's ``| jq '{...}'`` without the limit).
PROJECTION_JQ = "{policy_set_version_id, decision, determining_policies}"
PROJECTION = ("{policy_set_version_id: policy_set_version_id, decision: decision, "
              "determining_policies: determining_policies}")
#: Shapes the hand-written COPY statements run on, as sql_baseline.py names them.
COPY_SHAPES = {"snapshot": "snapshot", "cli_jsonl": "cli_jsonl"}


def recipe_tasks(bench: Bench, principal: str, n: int, shape: str, source: str, group: str,
                 suffix: str = "") -> None:
    """Every seed recipe and the broad projection as ``tail --limit 0 --query``, and every
    event as ``--json``, each beside jq and the hand-written DuckDB statement."""
    def cmp(name: str) -> list[str]:
        out = [f"jq_{name}{suffix}"]
        if not suffix:
            out.append(f"copy_{name}_{COPY_SHAPES[shape]}")
        return out

    for recipe in recipes(principal):
        if not recipe.get("jmespath"):
            continue
        bench.cf(f"recipe_{recipe['name']}_{shape}{suffix}", group,
                 f"audit tail --limit 0 --query '{recipe['name']}' ({shape})",
                 ["audit", "tail", "--source", source, "--limit", "0", "--query",
                  recipe["jmespath"]], events=n, compare=cmp(recipe["name"]))
    bench.cf(f"recipe_projection_{shape}{suffix}", group,
             f"audit tail --limit 0 --query '{PROJECTION_JQ}' ({shape})",
             ["audit", "tail", "--source", source, "--limit", "0", "--query", PROJECTION],
             events=n, compare=cmp("projection"))
    # what a run costs before it prints: the start-up the recipes' ratios stand on
    bench.cf(f"recipe_nothing_{shape}{suffix}", group,
             f"audit tail --limit 0 --query (an event type no event has) ({shape})",
             ["audit", "tail", "--source", source, "--limit", "0", "--query",
              f"event_type == '{NO_EVENT_TYPE}'"], events=n,
             compare=[] if suffix else [f"copy_nothing_{COPY_SHAPES[shape]}"])
    bench.cf(f"tail_json_all_{shape}{suffix}", group,
             f"audit tail --limit 0 --json ({shape})",
             ["audit", "tail", "--source", source, "--limit", "0", "--json"], events=n,
             compare=[] if suffix else [f"copy_json_{COPY_SHAPES[shape]}"])


def broad_baselines(bench: Bench, meta: dict, n: int) -> None:
    """jq's broad projection, and the hand-written ``COPY (SELECT ...) TO '/dev/stdout'
    (FORMAT JSON)`` of each recipe, the projection and every event (sql_baseline.py)."""
    path = meta["files"]["cli.jsonl"]
    if "jq_denies_for_application" not in bench.runs:
        jq_baselines(bench, meta, path, n)
    run = Run("jq_projection", "broad", f"jq -c '{PROJECTION_JQ}'", "", events=n)
    measure(run, [JQ, "-c", PROJECTION_JQ, path])
    bench.add(run)
    paths = {"snapshot": meta["files"]["snapshot"], "cli_jsonl": path}
    names = [r["name"] for r in recipes(meta["principal"])] + ["projection", "json",
                                                              "nothing"]
    for name in names:
        for shape in COPY_SHAPES.values():
            run = Run(f"copy_{name}_{shape}", "broad",
                      f"DuckDB COPY ... (FORMAT JSON) {name} over {shape}", "", events=n)
            measure(run, [PY, os.path.join(HERE, "sql_baseline.py"), f"copy_{name}", shape,
                          paths[shape], "--principal", meta["principal"]])
            if run.rc != 0 and not run.error:
                run.error = f"exit {run.rc}: {run.extra.get('stderr', '')}"
            bench.add(run)


def broad_tasks(bench: Bench, meta: dict, n: int) -> None:
    broad_baselines(bench, meta, n)
    files = meta["files"]
    for shape, source in (("snapshot", files["snapshot"]), ("cli_jsonl", files["cli.jsonl"])):
        recipe_tasks(bench, meta["principal"], n, shape, source, "broad")


def api_probe(bench: Bench, meta: dict, snapshot: str, suffix: str = "") -> None:
    run = Run(f"api_query_time{suffix}", "tail" if not suffix else "big",
              "Python API query time (open once, then each query)", "",
              events=meta["events"])
    measure(run, [PY, os.path.join(HERE, "api_probe.py"), snapshot, meta["request_id"],
                  meta["principal"]], keep_stdout=True)
    try:
        run.extra["probe"] = json.loads(run.extra.pop("stdout"))
        parts = []
        for name, q in run.extra["probe"]["queries"].items():
            if "error" in q:
                parts.append(f"{name}: {q['error']}")
            else:
                parts.append(f"{name} {q['cold'] * 1000:.0f}/{q['warm'] * 1000:.0f} ms")
        run.note = (f"open {run.extra['probe']['open'] * 1000:.0f} ms; cold/warm: "
                    + "; ".join(parts))
    except (ValueError, KeyError):
        run.error = f"exit {run.rc}: {run.extra.get('stderr', '')}"
    bench.add(run)


def ocsf_subset(meta: dict, wanted: int) -> tuple[list[str], int]:
    import pyarrow.parquet as pq

    chosen, rows = [], 0
    for path in meta["ocsf_files"]:
        if wanted and rows >= wanted:
            break
        chosen.append(path)
        rows += pq.ParquetFile(path).metadata.num_rows
    return chosen, rows


def verify_tasks(bench: Bench, meta: dict, n: int) -> None:
    files, key = meta["files"], meta["key_file"]
    plan = [
        ("snapshot", files["snapshot"], ["plain_verify_csv", "plain_verify_jsonl"]),
        ("db_csv", files["db.csv"], ["plain_verify_csv"]),
        ("db_jsonl", files["db.jsonl"], ["plain_verify_jsonl"]),
        ("cli_jsonl", files["cli.jsonl"], ["plain_verify_jsonl"]),
    ]
    for shape, source, compare in plan:
        bench.cf(f"verify_{shape}", "verify", f"verify {shape}",
                 ["verify", "--source", source, "--key-file", key, "--json"], events=n,
                 compare=compare, expect_rc=(0, 1, 3), json_report=True)
    # a wrong key: every HMAC fails, which the clean pass answers too, with or without a
    # prev column (the CLI's JSON lines: its HMAC is the link)
    wrong_key = os.path.join(OUT, "wrong-key.hex")
    with open(wrong_key, "w") as out:
        out.write("ab" * 32 + "\n")
    for shape, source in (("snapshot", files["snapshot"]), ("cli_jsonl", files["cli.jsonl"])):
        bench.cf(f"verify_{shape}_wrong_key", "verify", f"verify {shape} with a wrong key",
                 ["verify", "--source", source, "--key-file", wrong_key, "--json"],
                 events=n, compare=[f"verify_{shape}"], expect_rc=(1,), json_report=True)
    bench.cf("verify_ocsf_norecover", "verify", "verify ocsf --no-recover-microseconds",
             ["verify", "--source", files["ocsf"], "--key-file", key, "--json",
              "--no-recover-microseconds"], events=n, compare=["plain_verify_csv"],
             expect_rc=(0, 1, 3), json_report=True)
    subset, rows = ocsf_subset(meta, RECOVER_EVENTS)
    sources = [arg for path in subset for arg in ("--source", path)]
    label = f"{len(subset)} of {len(meta['ocsf_files'])} hourly files, {rows} events"
    without = bench.cf("verify_ocsf_subset_norecover", "verify",
                       f"verify ocsf subset ({label}) --no-recover-microseconds",
                       ["verify", *sources, "--key-file", key, "--json",
                        "--no-recover-microseconds"], events=rows, expect_rc=(0, 1, 3),
                       json_report=True)
    with_rec = bench.cf("verify_ocsf_subset_recover", "verify",
                        f"verify ocsf subset ({label}) with microsecond recovery",
                        ["verify", *sources, "--key-file", key, "--json"], events=rows,
                        expect_rc=(0, 1, 3), json_report=True)
    if without.ok and with_rec.ok and with_rec.seconds > without.seconds:
        rate = rows / (with_rec.seconds - without.seconds)
        with_rec.extra["recovery_events_per_s"] = rate
        with_rec.note += (f"; recovery alone {rate:,.0f} events/s "
                          "(rows / extra seconds over --no-recover)")


def admin_tasks(bench: Bench) -> None:
    """The admin chain's key-order search at its worst: every row spends the whole budget
    (bench/admin_orders.py); per row = seconds / rows."""
    import admin_orders

    rows = admin_orders.ROWS
    path, key = admin_orders.write(os.path.join(OUT, "admin"), rows)
    run = bench.cf("verify_admin_key_order_worst", "verify",
                   f"verify admin chain, key-order search at its worst ({rows} rows, each "
                   "the whole budget)", ["verify", "--source", path, "--key-file", key,
                                         "--json"],
                   events=rows, expect_rc=(3,), json_report=True)
    if run.ok and run.seconds:
        run.note += f"; {run.seconds / rows:.3f} s per row at worst"


def startup_tasks(bench: Bench) -> None:
    times, peaks = [], []
    for attempt in range(7):
        run = measure(Run(f"help_{attempt}", "startup", "", ""), [CF, "--help"])
        times.append(run.seconds)
        peaks.append(run.peak_mib)
    run = Run("help", "startup", "caracal-forensics --help (median of 7; min in note)", "",
              seconds=statistics.median(times), peak_mib=max(peaks), rc=0)
    run.command = f"{CF} --help"
    run.note = f"min {min(times):.3f}s, max {max(times):.3f}s"
    bench.add(run)


def big_tasks(bench: Bench, small: dict | None) -> None:
    print(f"== the {BIG_N:,}-event snapshot (BENCH_BIG)", flush=True)
    began = time.perf_counter()
    meta = generate.generate(BIG_N, OUT, big=True, big_jsonl=BIG_JQ,
                             log=lambda m: print(m, flush=True))
    bench.info["big_generation_seconds"] = meta.get("generation_seconds")
    bench.info["big_generation_wall"] = time.perf_counter() - began
    bench.info["big_meta"] = {k: meta[k] for k in ("events", "request_id", "principal",
                                                   "counts", "bytes", "timings")}
    snapshot = meta["files"]["snapshot"]
    suffix = "_big"
    jsonl = meta["files"].get("cli.jsonl")
    if jsonl:
        jq_baselines(bench, meta, jsonl, BIG_N, suffix)
    elif small is not None:
        scale = BIG_N / small["events"]
        for task in [t for t in list(bench.runs) if t.startswith("jq_") and
                     not t.endswith(suffix)]:
            base = bench.runs[task]
            if not base.ok:
                continue
            bench.runs[task + suffix] = Run(
                task + suffix, "big", base.title + f" (scaled x{scale:g} from N)",
                base.command, seconds=base.seconds * scale, peak_mib=base.peak_mib, rc=0,
                events=BIG_N, note=f"extrapolated linearly from {small['events']:,} events; "
                "BENCH_BIG_JQ=1 measures it for real")
    # --query recipes stream every event through Python: minutes each at this size, and
    # not among issue 5's targets; BENCH_BIG_RECIPES=1 runs them anyway.
    tail_tasks(bench, meta, BIG_N, snapshot, None, suffix,
               with_recipes=os.environ.get("BENCH_BIG_RECIPES", "") not in ("", "0"))
    api_probe(bench, meta, snapshot, suffix)
    run = Run(f"tail_json_all_pipe{suffix}", "big",
              f"audit tail --limit 0 --json of {BIG_N:,} events into a pipe (| wc -l)", "",
              events=BIG_N)
    measure(run, f"{shlex.quote(CF)} audit tail --source {shlex.quote(snapshot)} --limit 0 "
                 "--json | wc -l", shell=True)
    if run.rc != 0 and not run.error:
        run.error = f"exit {run.rc}: {run.extra.get('stderr', '')}"
    bench.add(run)
    bench.cf(f"verify_snapshot{suffix}", "big", f"verify the {BIG_N:,}-event snapshot",
             ["verify", "--source", snapshot, "--key-file", meta["key_file"], "--json"],
             events=BIG_N, expect_rc=(0, 1, 3), json_report=True)


# --- reporting ------------------------------------------------------------------------------

GROUPS = [
    ("baselines", "Baselines"),
    ("ingest", "Ingest"),
    ("tail", "Tail and explain"),
    ("broad", "Broad results (issue 20): recipes, projection, every event"),
    ("verify", "Verify"),
    ("startup", "Start-up"),
    ("big", "Big snapshot (BENCH_BIG)"),
]


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else (f"{value:.3f}" if value < 10 else f"{value:.1f}")


def _ratio_text(bench: Bench, run: Run) -> str:
    parts = []
    for name in run.compare:
        base = bench.runs.get(name)
        if base is None or not base.ok or not run.ok or not run.seconds:
            continue
        parts.append(f"{base.seconds / run.seconds:.1f}x vs {name}")
    return "; ".join(parts)


def table_rows(bench: Bench, group: str) -> list[list[str]]:
    rows = []
    for run in bench.runs.values():
        if run.group != group or re.fullmatch(r"help_\d+", run.task):
            continue
        rate = run.rate
        result = run.note
        if run.error:
            result = f"FAILED: {run.error}"
        rows.append([
            run.task, _fmt_s(run.seconds) if run.seconds is not None else "-",
            f"{rate:,.0f}" if rate else "-",
            f"{run.peak_mib:,.0f}" if run.peak_mib else "-",
            str(run.rows) if run.rows is not None else "-",
            _ratio_text(bench, run), result,
        ])
    return rows


HEAD = ["task", "seconds", "events/s", "peak MiB", "out lines", "ratio (baseline s / s)",
        "result"]


def print_tables(bench: Bench) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(160, shutil.get_terminal_size().columns))
    for group, title in GROUPS:
        rows = table_rows(bench, group)
        if not rows:
            continue
        table = Table(title=title, show_lines=False)
        for name in HEAD:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    targets = evaluate_targets(bench)
    table = Table(title="Issue 5 targets")
    for name in ("target", "measured", "met"):
        table.add_column(name, overflow="fold")
    for target, measured, met in targets:
        table.add_row(target, measured, met)
    console.print(table)
    if _floors(bench):
        table = Table(title="What this machine allows (bench/floors.py)")
        for name in FLOOR_HEAD:
            table.add_column(name, overflow="fold")
        for row in floor_rows(bench):
            table.add_row(*row)
        console.print(table)


def _get(bench: Bench, task: str) -> Run | None:
    run = bench.runs.get(task)
    return run if run is not None and run.ok else None


def _rate_target(bench: Bench, task: str, floor: float, label: str) -> tuple[str, str, str]:
    run = _get(bench, task)
    if run is None or run.rate is None:
        return (label, "not measured" if task not in bench.runs else "failed", "-")
    met = run.rate >= floor
    return (label, f"{run.rate:,.0f} events/s ({task})" + ("" if met else _ceiling(bench, task)),
            "met" if met else "NOT met")


def _ratio_target(bench: Bench, task: str, base: str, floor: float,
                  label: str) -> tuple[str, str, str]:
    run, baseline = _get(bench, task), _get(bench, base)
    if run is None or baseline is None:
        return (label, "not measured", "-")
    ratio = baseline.seconds / run.seconds
    met = ratio >= floor
    return (label, f"{ratio:.1f}x ({base} {baseline.seconds:.1f}s / {task} {run.seconds:.2f}s)"
            + ("" if met else _ceiling(bench, task, baseline)), "met" if met else "NOT met")


def _floors(bench: Bench) -> dict[str, dict]:
    run = _get(bench, "floors")
    return run.extra.get("floors", {}).get("tasks", {}) if run else {}


def _ceiling(bench: Bench, task: str, baseline: Run | None = None) -> str:
    """What bench/floors.py says the machine allows for a task, to set beside a miss."""
    floor = _floors(bench).get(task)
    run = _get(bench, task)
    if floor is None or run is None or not run.events:
        return ""
    if baseline is not None:
        return (f"; at most {baseline.seconds / floor['floor']:.1f}x here "
                f"(floor {floor['floor']:.2f}s, see below)")
    return f"; at most {run.events / floor['floor']:,.0f} ev/s here (floor {floor['floor']:.2f}s)"


def floor_rows(bench: Bench) -> list[list[str]]:
    """Per task: its essential steps' CPU seconds, the floor they imply, and how near the
    toolkit's measured wall time comes to it."""
    rows = []
    steps = _get(bench, "floors").extra["floors"]["steps"] if _floors(bench) else {}
    for task, floor in _floors(bench).items():
        run = _get(bench, task)
        needs = " + ".join(f"{step} {steps[step]['cpu']:.2f}" for step in floor["steps"])
        rate = f"{run.events / floor['floor']:,.0f}" if run and run.events else "-"
        measured = f"{run.seconds:.2f}" if run else "-"
        share = f"{floor['floor'] / run.seconds:.0%}" if run else "-"
        rows.append([task, needs, f"{floor['cpu']:.2f}", f"{floor['floor']:.2f}", rate,
                     measured, share])
    return rows


FLOOR_HEAD = ["task", "essential steps (CPU s each)", "CPU s", "floor s", "at most events/s",
              "measured s", "floor / measured"]


def evaluate_targets(bench: Bench) -> list[tuple[str, str, str]]:
    out = [
        _rate_target(bench, "verify_snapshot", 1_000_000, "verify a snapshot >= 1,000,000 ev/s"),
        _rate_target(bench, "verify_snapshot_big", 1_000_000,
                     f"verify a {BIG_N:,}-event snapshot >= 1,000,000 ev/s"),
        _rate_target(bench, "verify_db_csv", 500_000, "verify table-dump CSV >= 500,000 ev/s"),
        _rate_target(bench, "verify_ocsf_norecover", 500_000,
                     "verify OCSF Parquet >= 500,000 ev/s (without recovery)"),
    ]
    rec = _get(bench, "verify_ocsf_subset_recover")
    if rec is not None and rec.extra.get("recovery_events_per_s"):
        rate = rec.extra["recovery_events_per_s"]
        out.append(("microsecond recovery >= 10,000 ev/s", f"{rate:,.0f} events/s",
                    "met" if rate >= 10_000 else "NOT met"))
    else:
        out.append(("microsecond recovery >= 10,000 ev/s", "not measured", "-"))
    out += [
        _rate_target(bench, "verify_db_jsonl", 150_000, "verify JSON lines (db) >= 150,000 ev/s"),
        _rate_target(bench, "verify_cli_jsonl", 150_000,
                     "verify JSON lines (cli) >= 150,000 ev/s"),
        _ratio_target(bench, "verify_db_csv", "plain_verify_csv", 15,
                      "verify CSV >= 15x the plain Python verifier"),
        _ratio_target(bench, "verify_db_jsonl", "plain_verify_jsonl", 10,
                      "verify JSON lines >= 10x the plain Python verifier"),
    ]
    big = "_big" if "api_query_time_big" in bench.runs else ""
    where = f"{BIG_N:,}-event snapshot" if big else f"{N:,}-event snapshot (BIG not run)"
    probe = _get(bench, f"api_query_time{big}")
    for name in ("tail_request", "explain"):
        q = (probe.extra.get("probe", {}).get("queries", {}).get(name) if probe else None)
        label = f"{name} query time <= 100 ms ({where})"
        if q and "warm" in q:
            out.append((label, f"cold {q['cold'] * 1000:.0f} ms, warm {q['warm'] * 1000:.0f} ms",
                        "met" if q["warm"] <= 0.1 else "NOT met"))
        else:
            out.append((label, "not measured", "-"))
    out += [
        _ratio_target(bench, f"tail_request_snapshot{big}", f"jq_request{big}", 30,
                      f"tail --request-id end to end >= 30x jq ({where})"),
        _ratio_target(bench, f"explain_snapshot{big}", f"jq_request{big}", 30,
                      f"explain end to end >= 30x jq ({where})"),
        _ratio_target(bench, f"query_principal_snapshot{big}", f"jq_denies_for_application{big}",
                      30, f"denies for one principal end to end >= 30x jq ({where})"),
        _ratio_target(bench, "tail_request_cli_jsonl", "jq_request", 3,
                      f"tail --request-id off JSON lines >= 3x jq ({N:,})"),
        _ratio_target(bench, "explain_cli_jsonl", "jq_request", 3,
                      f"explain off JSON lines >= 3x jq ({N:,})"),
        _ratio_target(bench, "query_principal_cli_jsonl", "jq_denies_for_application", 3,
                      f"denies for one principal off JSON lines >= 3x jq ({N:,})"),
        _rate_target(bench, "ingest_db_jsonl", 300_000, "ingest JSON lines >= 300,000 ev/s"),
        _rate_target(bench, "ingest_db_csv", 1_000_000, "ingest CSV >= 1,000,000 ev/s"),
        _rate_target(bench, "ingest_ocsf", 1_000_000, "ingest Parquet (OCSF) >= 1,000,000 ev/s"),
    ]
    out += broad_targets(bench)
    for task in dict.fromkeys(("ingest_db_csv", "ingest_db_jsonl", "verify_snapshot",
                               "verify_db_csv", f"verify_snapshot{big}")):
        run = _get(bench, task)
        if run is None:
            continue
        events = run.events or 0
        label = f"{task}: peak memory <= 1 GiB at {events:,} events"
        if events < 10_000_000:
            label += " (target is at 10,000,000)"
        out.append((label, f"{run.peak_mib:,.0f} MiB",
                    "met" if run.peak_mib <= 1024 else "NOT met"))
    run = _get(bench, "help")
    out.append(("caracal-forensics --help <= 0.3 s",
                f"{run.seconds:.3f} s (median)" if run else "not measured",
                ("met" if run.seconds <= 0.3 else "NOT met") if run else "-"))
    return out


def broad_targets(bench: Bench) -> list[tuple[str, str, str]]:
    """Issue 20's targets: recipes and the projection >= 10x jq and within 1.5x of the
    hand-written statement on the snapshot, >= 4x jq off JSON lines; every event as
    --json of the big snapshot >= 1.5M events/s into a pipe, under 1 GiB."""
    if not any(task.startswith("recipe_projection") for task in bench.runs):
        return []
    out = []
    names = [r["name"] for r in recipes("APP")] + ["projection"]
    for name in names:
        out.append(_ratio_target(bench, f"recipe_{name}_snapshot", f"jq_{name}", 10,
                                 f"{name} on the {N:,} snapshot >= 10x jq"))
        label, value, verdict = _ratio_target(
            bench, f"recipe_{name}_snapshot", f"copy_{name}_snapshot", 1 / 1.5,
            f"{name} on the snapshot within 1.5x of the hand-written DuckDB statement "
            "(ratio >= 0.67)")
        out.append((label, value + _beyond_start(bench, name), verdict))
    for name in names:
        out.append(_ratio_target(bench, f"recipe_{name}_cli_jsonl", f"jq_{name}", 4,
                                 f"{name} off JSON lines >= 4x jq"))
    out.append(_ratio_target(bench, "tail_json_all_snapshot", "copy_json_snapshot", 1 / 1.5,
                             "every event --json within 1.5x of DuckDB's COPY (all columns)"))
    task = "tail_json_all_pipe_big"
    out.append(_rate_target(bench, task, 1_500_000,
                            f"tail --json --limit 0 of {BIG_N:,} events >= 1,500,000 ev/s "
                            "into a pipe"))
    run = _get(bench, task)
    out.append((f"{task}: peak memory < 1 GiB",
                f"{run.peak_mib:,.0f} MiB" if run else "not measured",
                ("met" if run.peak_mib < 1024 else "NOT met") if run else "-"))
    return out


def _beyond_start(bench: Bench, name: str) -> str:
    """The ratio of what the toolkit and the hand statement spend on a recipe beyond
    what each spends selecting nothing (``recipe_nothing``, ``copy_nothing``): whether a
    miss is the start-up (imports, opening the snapshot) or the statement."""
    runs = [_get(bench, task) for task in (f"recipe_{name}_snapshot", "recipe_nothing_snapshot",
                                           f"copy_{name}_snapshot", "copy_nothing_snapshot")]
    if any(run is None for run in runs):
        return ""
    ours, ours_start, hand, hand_start = (run.seconds for run in runs)  # type: ignore[union-attr]
    if hand - hand_start < 0.01:  # the statement is lost in the noise of the start-up
        return ""
    return (f"; beyond selecting nothing (here {ours_start:.2f}s, by hand {hand_start:.2f}s): "
            f"{max(ours - ours_start, 0.0):.2f}s against {hand - hand_start:.2f}s, "
            f"{max(ours - ours_start, 0.0) / (hand - hand_start):.1f}x")


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _kept_sections(text: str, extra: tuple[str, ...] = ()) -> list[str]:
    keep = KEPT_SECTIONS + extra
    sections = re.split(r"(?m)^(?=## )", text)
    return [s.rstrip() + "\n" for s in sections
            if s.startswith("## ") and s[3:].strip().split("\n")[0].startswith(keep)]


def results_path() -> str:
    """bench/RESULTS.md for a run at the default size (or BENCH_WRITE_RESULTS=1); a smoke
    run at a smaller N writes bench/out/RESULTS-n<N>.md and leaves the record alone."""
    if N >= 1_000_000 or os.environ.get("BENCH_WRITE_RESULTS", "") not in ("", "0"):
        return RESULTS_MD
    return os.path.join(OUT, f"RESULTS-n{N}.md")


def write_results(bench: Bench, meta: dict) -> None:
    info = bench.info
    target = results_path()
    previous = ""
    for candidate in (target, RESULTS_MD):  # kept sections come from the record
        if os.path.exists(candidate):
            with open(candidate, encoding="utf-8") as handle:
                previous = handle.read()
            break
    out = ["# Benchmark results (`make bench`)\n"]
    partial = ""
    if ONLY:
        partial = (f" Partial run (BENCH_ONLY={','.join(sorted(ONLY))})"
                   + (f"; the other groups are from the run of {info['merged_from']}"
                      if info.get("merged_from") else "") + ".")
    out.append(
        f"Last run {info['machine']['date']}, N = {N:,} events"
        + (f", plus the {BIG_N:,}-event snapshot" if _has_big(bench) else "")
        + f".{partial} Regenerate with `make bench` (or `BENCH_N=20000 make bench` for a "
        f"smoke check). {_load_note(info)}\n"
    )
    m = info["machine"]
    out.append("## Machine\n")
    out.append(_md_table(["", ""], [
        ["toolkit", f"commit {m.get('commit')}; C kernel (chain/native) available: "
                    f"{m.get('native_kernel')}"],
        ["CPU", f"{m['cpu']} ({m['nproc']} cores visible to nproc)"],
        ["memory", m["memory"]], ["kernel", m["kernel"]],
        ["Python", m["python"]], ["duckdb", m["duckdb"]], ["pyarrow", m["pyarrow"]],
        ["polars", m["polars"]], ["jq", m["jq"]], ["openssl", m["openssl"]],
    ]) + "\n")
    out.append("## Data\n")
    sizes = ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in meta.get("bytes", {}).items())
    counts = meta.get("counts", {})
    out.append(
        f"{N:,} events generated by `bench/generate.py` in {meta.get('generation_seconds')} s "
        f"(chain, CSV, both JSON lines, hourly OCSF; then `ingest` from CSV for the snapshot: "
        f"{meta.get('timings', {}).get('snapshot_via_ingest', '-')} s). Files: {sizes}. "
        f"{counts.get('denies', 0):,} denies, {counts.get('zones')} zones, "
        f"{counts.get('requests', 0):,} requests, {counts.get('hours')} hourly OCSF files, "
        f"{counts.get('principal_denies')} denies for {meta.get('principal')}, "
        f"{counts.get('step_up_denies', 0):,} step-up denies, "
        f"{counts.get('jti_collisions', 0):,} jti collisions. Sample request: "
        f"`{meta.get('request_id')}` (4 events). Generator checks: "
        f"{json.dumps(meta.get('checks', {}))}.\n"
    )
    if "big_meta" in info:
        bm = info["big_meta"]
        out.append(
            f"Big snapshot: {bm['events']:,} events written straight as a canonical snapshot "
            f"in {info.get('big_generation_seconds')} s ({bm['bytes']}); sample request "
            f"`{bm['request_id']}`.\n"
        )
    out.append("## Issue 5 targets\n")
    out.append(_md_table(["target", "measured", "met?"],
                         [list(t) for t in evaluate_targets(bench)]) + "\n")
    if _floors(bench):
        floors = _get(bench, "floors").extra["floors"]
        out.append("## What this machine allows\n")
        out.append(
            "`bench/floors.py` times each step a task cannot do without, alone, with the "
            "fastest tool here and nothing else: parsing or decoding the input into Arrow, "
            "the input's SHA-256 (the fingerprint the manifest and the report carry; one "
            "core), encoding the snapshot's event files (ingest) or recomputing every "
            "content hash and HMAC in the C kernel (verify). A task's floor is the "
            f"interpreter's start-up ({floors['startup']:.2f} s) plus those CPU seconds "
            f"spread perfectly over the {floors['cores']} cores (never less than the "
            "SHA-256). Nothing else is counted (type conversion, splitting by zone, "
            "checks, the manifest), so no implementation with these libraries on this "
            "machine can beat it; a target above `at most events/s` is out of reach "
            "here.\n"
        )
        out.append(_md_table(FLOOR_HEAD, floor_rows(bench)) + "\n")
    out.append(
        "## How to read the tables\n\n"
        "seconds: wall time of a fresh process (start-up, reading, work, output); a "
        f"command under {REPEAT_UNDER:.0f} s runs {REPEAT} times and the fastest counts; "
        "the package is byte-compiled first, as an installed one is. events/s: "
        "events in the input / seconds. peak MiB: the larger of GNU time's %M (the child's "
        "ru_maxrss) and the sampled sum of the process tree's RSS (worker processes count). "
        "out lines: lines the command printed. ratio: "
        "baseline seconds / toolkit seconds (above 1 = the toolkit is faster), against each "
        "baseline named. jq runs on cli.jsonl (what `caracal audit tail --json` prints); the "
        "plain verifier is bench/plain_verify.py; DuckDB SQL is bench/sql_baseline.py.\n"
    )
    for group, title in GROUPS:
        rows = table_rows(bench, group)
        if not rows:
            continue
        out.append(f"## {title}\n")
        out.append(_md_table(HEAD, rows) + "\n")
        if group == "tail":
            probe = _get(bench, "api_query_time")
            if probe:
                out.append("Query time through the Python API (`bench/api_probe.py`, snapshot "
                           "opened once): " + probe.note + ".\n")
    out.append("## Commands\n")
    out.append("\n".join(f"- `{r.task}`: `{r.command}`" for r in bench.runs.values()
                         if not re.fullmatch(r"help_\d+", r.task)) + "\n")
    extra = () if _has_big(bench) else (GROUPS[-1][1],)
    kept = _kept_sections(previous, extra)
    if not any(s.startswith("## Optimisation log") for s in kept):
        kept.append(
            "## Optimisation log\n\nBefore/after entries, newest first: what changed, the task, "
            "seconds and peak MiB before and after, same machine and N.\n\n"
            "| date | change | task | before | after |\n|---|---|---|---|---|\n"
        )
    out.extend(kept)
    with open(target, "w", encoding="utf-8") as handle:
        handle.write("\n".join(out))


def _load_note(info: dict) -> str:
    """What the machine's load says about the timings (1-minute load average, 2 cores)."""
    before, after = info["machine"]["load_before"][0], info["load_after"][0]
    loads = f"load average {before:.1f} before, {after:.1f} after the run"
    if before > 1.5:  # the run itself loads both cores: only the load before tells
        return (f"**Timings are preliminary**: the machine was busy ({loads}) on its 2 "
                "cores, so wall seconds are inflated, by up to 2x or so.")
    return f"The machine was otherwise quiet ({loads}; the run itself loads it)."


def _has_big(bench: Bench) -> bool:
    return any(run.group == "big" for run in bench.runs.values())


def _has_pyspark() -> bool:
    done = subprocess.run([PY, "-c", "import pyspark"], capture_output=True, check=False)
    return done.returncode == 0


def _groups() -> set[str]:
    groups = {"baselines", "ingest", "tail", "broad", "verify", "startup"}
    if _has_pyspark():
        groups.add("spark")
    if BIG:
        groups.add("big")
    return groups & ONLY if ONLY else groups


def render(path: str) -> int:
    """Rebuild RESULTS.md (and print the tables) from a raw results file of an earlier run."""
    global N, BIG, BIG_N, ONLY
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    bench = Bench()
    bench.info = raw["info"]
    for name, run in raw["runs"].items():
        bench.runs[name] = Run(**run)
    meta = raw["meta"]
    N = meta["events"]
    BIG = "big_meta" in bench.info
    if BIG:
        BIG_N = bench.info["big_meta"]["events"]
    ONLY = set(raw.get("only", []))
    print_tables(bench)
    write_results(bench, meta)
    print(f"wrote {os.path.relpath(results_path(), ROOT)} from {path}")
    return 0


def compile_package() -> None:
    """Byte-compile the package, as ``pip install`` does an installed one: an editable
    install under PYTHONDONTWRITEBYTECODE (set on this machine) never writes .pyc files,
    so every command would compile each module it imports (about 35 ms at every start)."""
    import compileall

    compileall.compile_dir(os.path.join(ROOT, "caracal_forensics"), quiet=1)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        return render(sys.argv[2])
    groups = _groups()
    compile_package()
    bench = Bench()
    bench.info["machine"] = machine()
    print(f"== generating {N:,} events (cached under {OUT})", flush=True)
    meta = generate.generate(N, OUT, log=lambda m: print(m, flush=True))
    n = meta["events"]
    bench.info["preimage_bytes"] = preimage_bytes(meta)
    files = meta["files"]
    raw = os.path.join(OUT, f"results-n{N}.json")
    if ONLY and os.path.exists(raw):
        # A partial run: keep the other groups' results of the last full run of this N.
        with open(raw, encoding="utf-8") as handle:
            earlier = json.load(handle)
        for name, run in earlier["runs"].items():
            if run["group"] not in groups:
                bench.runs[name] = Run(**run)
        bench.info["merged_from"] = earlier["info"]["machine"]["date"]
        if "big" not in groups and "big_meta" in earlier["info"]:
            bench.info["big_meta"] = earlier["info"]["big_meta"]
            bench.info["big_generation_seconds"] = earlier["info"].get(
                "big_generation_seconds")
    if "baselines" in groups:
        print("== baselines", flush=True)
        openssl_speed(bench)
        jq_baselines(bench, meta, files["cli.jsonl"], n)
        plain_baselines(bench, meta, n)
        sql_baselines(bench, meta, n)
        floor_task(bench, meta, n)
    if "startup" in groups:
        print("== start-up", flush=True)
        startup_tasks(bench)
    if "ingest" in groups:
        print("== ingest", flush=True)
        ingest_tasks(bench, meta, n)
    if "tail" in groups:
        print("== tail and explain", flush=True)
        tail_tasks(bench, meta, n, files["snapshot"], files["cli.jsonl"])
        api_probe(bench, meta, files["snapshot"])
    if "broad" in groups:
        print("== broad results (issue 20)", flush=True)
        broad_tasks(bench, meta, n)
    if "verify" in groups:
        print("== verify", flush=True)
        verify_tasks(bench, meta, n)
        admin_tasks(bench)
    if "big" in groups:
        big_tasks(bench, meta if "jq_request" in bench.runs else None)
    bench.info["load_after"] = os.getloadavg()
    print_tables(bench)
    write_results(bench, meta)
    if "spark" in groups:  # its own section of RESULTS.md (kept by write_results)
        print("== spark", flush=True)
        subprocess.run([PY, os.path.join(HERE, "spark_bench.py"), "--snapshot",
                        files["snapshot"], "--key-file", meta["key_file"],
                        *(["--results", results_path()] if os.path.exists(results_path())
                          else [])], check=False)
    with open(raw, "w", encoding="utf-8") as handle:
        json.dump({"info": bench.info, "meta": meta, "only": sorted(ONLY),
                   "runs": {k: asdict(v) for k, v in bench.runs.items()}}, handle, indent=2,
                  default=str)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    print(f"wrote {os.path.relpath(results_path(), ROOT)} and {os.path.relpath(raw, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
