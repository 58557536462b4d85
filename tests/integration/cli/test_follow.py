"""``audit tail --follow``: growing files, partial lines, new hourly files, filters, stop."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.cli import run_cli
from support.tail import EXPORT, SHAPES

import caracal_forensics as cf
from caracal_forensics.filters import Filters
from caracal_forensics.follow import Follower

CLI_LINES = [line for line in (EXPORT / "cli.jsonl").read_text("utf-8").split("\n") if line]
CSV_LINES = (EXPORT / "db.csv").read_text("utf-8").split("\n")
OCSF_FILE = EXPORT / "ocsf" / "audit" / "2026" / "05" / "11" / "2026-05-11T08.parquet"
CLI_COMMAND = [sys.executable, "-c", "from caracal_forensics.cli import main; main()"]


def ids(table) -> list[str]:
    return table.column("id").to_pylist()


def provenance(table) -> set[tuple[str, str, int]]:
    return set(
        zip(
            table.column("id").to_pylist(),
            table.column("source_file").to_pylist(),
            table.column("source_line").to_pylist(),
            strict=True,
        )
    )


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


@pytest.fixture
def follower_factory():
    made: list[Follower] = []

    def make(paths, **filters) -> Follower:
        limit = filters.pop("limit", 0)
        follower = Follower(
            [str(p) for p in paths], Filters.build(limit=limit, **filters), interval=0.05
        )
        made.append(follower)
        return follower

    yield make
    for follower in made:
        follower.close()


def test_growing_json_lines_file_reads_only_new_complete_lines(tmp_path, follower_factory):
    path = tmp_path / "tail.jsonl"
    path.write_text("\n".join(CLI_LINES[:100]) + "\n", encoding="utf-8")
    follower = follower_factory([tmp_path], limit=5)
    first = follower.poll()
    assert first.num_rows == 5  # newest 5 of what is there
    assert follower.poll().num_rows == 0  # nothing new
    # 50 complete lines and half of the next one.
    append(path, "\n".join(CLI_LINES[100:150]) + "\n" + CLI_LINES[150][:40])
    grown = follower.poll()
    assert sorted(ids(grown)) == sorted(json.loads(x)["id"] for x in CLI_LINES[100:150])
    assert sorted(grown.column("source_line").to_pylist()) == list(range(101, 151))
    assert follower.poll().num_rows == 0  # the half line waits
    append(path, CLI_LINES[150][40:] + "\n")
    completed = follower.poll()
    assert ids(completed) == [json.loads(CLI_LINES[150])["id"]]
    assert completed.column("source_line").to_pylist() == [151]
    assert completed.column("source_file").to_pylist() == [str(path)]


def test_new_hourly_parquet_file_lands(tmp_path, follower_factory):
    hour_dir = tmp_path / "audit" / "2026" / "05" / "11"
    hour_dir.mkdir(parents=True)
    shutil.copy(OCSF_FILE, hour_dir / "2026-05-11T08.parquet")
    follower = follower_factory([tmp_path])
    assert follower.poll().num_rows == 240
    # A file still being uploaded (no footer yet) is retried when it changes.
    data = OCSF_FILE.read_bytes()
    landing = hour_dir / "2026-05-11T09.parquet"
    landing.write_bytes(data[: len(data) // 2])
    assert follower.poll().num_rows == 0
    landing.write_bytes(data)
    os.utime(landing, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    new = follower.poll()
    assert new.num_rows == 240
    assert set(new.column("source_file").to_pylist()) == {str(landing)}
    assert follower.poll().num_rows == 0


def test_growing_csv_keeps_header_and_real_line_numbers(tmp_path, follower_factory):
    path = tmp_path / "dump.csv"
    path.write_text("\n".join(CSV_LINES[:11]) + "\n", encoding="utf-8")
    follower = follower_factory([path])
    seen = provenance(follower.poll())
    for start in (11, 60, 61, 200):
        end = min(start + (49 if start != 60 else 1), 241)
        append(path, "\n".join(CSV_LINES[start:end]) + "\n")
        seen |= provenance(follower.poll())
    append(path, "\n".join(CSV_LINES[249:]))
    seen |= provenance(follower.poll())
    whole = cf.open(str(path)).arrow("SELECT id, source_file, source_line FROM events")
    assert seen == provenance(whole)
    assert len(seen) == whole.num_rows


def test_filters_apply_to_new_events(tmp_path, follower_factory):
    path = tmp_path / "tail.jsonl"
    path.write_text("\n".join(CLI_LINES[:120]) + "\n", encoding="utf-8")
    follower = follower_factory([path], decision="deny", zone="zone-beta")
    first = follower.poll()
    append(path, "\n".join(CLI_LINES[120:]) + "\n")
    later = follower.poll()
    expected = cf.open(str(SHAPES["cli_jsonl"])).tail(decision="deny", zone="zone-beta", limit=0)
    assert sorted(ids(first) + ids(later)) == sorted(expected["id"].to_list())
    assert later.num_rows > 0
    times = later.column("occurred_at").to_pylist()
    assert times == sorted(times)


def test_truncated_file_is_read_again_from_the_start(tmp_path, follower_factory):
    path = tmp_path / "tail.jsonl"
    path.write_text("\n".join(CLI_LINES[:50]) + "\n", encoding="utf-8")
    follower = follower_factory([path])
    assert follower.poll().num_rows == 50
    path.write_text("\n".join(CLI_LINES[200:210]) + "\n", encoding="utf-8")
    again = follower.poll()
    assert sorted(ids(again)) == sorted(json.loads(x)["id"] for x in CLI_LINES[200:210])


def test_compressed_file_rewritten_hands_over_only_new_rows(tmp_path, follower_factory):
    path = tmp_path / "tail.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(CLI_LINES[:30]) + "\n").encode()))
    follower = follower_factory([path])
    assert follower.poll().num_rows == 30
    path.write_bytes(gzip.compress(("\n".join(CLI_LINES[:45]) + "\n").encode()))
    new = follower.poll()
    assert sorted(ids(new)) == sorted(json.loads(x)["id"] for x in CLI_LINES[30:45])
    assert sorted(new.column("source_line").to_pylist()) == list(range(31, 46))


def test_glob_that_matches_later_and_files_that_are_not_exports(tmp_path, follower_factory):
    (tmp_path / "README.txt").write_text("notes, not an export\n", encoding="utf-8")
    follower = follower_factory([tmp_path / "*.jsonl", tmp_path])
    assert follower.poll().num_rows == 0
    (tmp_path / "late.jsonl").write_text("\n".join(CLI_LINES[:3]) + "\n", encoding="utf-8")
    assert follower.poll().num_rows == 3  # seen once though two paths name it


def test_missing_source_is_an_error():
    result = run_cli(
        "audit", "tail", "-s", "/nonexistent/x.jsonl", "--follow", "--follow-max-seconds", "0"
    )
    assert result.code == 2 and "no such file" in result.err


def test_run_stops_on_the_stop_event(tmp_path):
    path = tmp_path / "tail.jsonl"
    path.write_text("\n".join(CLI_LINES[:10]) + "\n", encoding="utf-8")
    got: list[str] = []
    stop = threading.Event()
    with Follower([str(path)], Filters.build(limit=0), interval=0.05) as follower:
        worker = threading.Thread(
            target=follower.run,
            args=(lambda table: got.extend(ids(table)),),
            kwargs={"stop": stop},
            daemon=True,
        )
        worker.start()
        deadline = time.monotonic() + 10
        while len(got) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        append(path, "\n".join(CLI_LINES[10:20]) + "\n")
        while len(got) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        worker.join(timeout=10)
        assert not worker.is_alive()
    assert got == [json.loads(x)["id"] for x in CLI_LINES[:20]]


def test_first_output_equals_tail_without_follow():
    plain = run_cli(
        "audit", "tail", "-s", SHAPES["db_csv"], "--json", "--decision", "deny", "-n", "7"
    )
    followed = run_cli(
        "audit",
        "tail",
        "-s",
        SHAPES["db_csv"],
        "--json",
        "--decision",
        "deny",
        "-n",
        "7",
        "--follow",
        "--follow-max-seconds",
        "0",
    )
    assert followed.code == 0 and plain.code == 0
    assert followed.out == plain.out and len(plain.lines) == 7


def test_follow_table_prints_header_once(tmp_path):
    path = tmp_path / "tail.jsonl"
    path.write_text("\n".join(CLI_LINES[:5]) + "\n", encoding="utf-8")
    result = run_cli(
        "audit", "tail", "-s", path, "-f", "--follow-max-seconds", "0", env={"COLUMNS": "120"}
    )
    assert result.code == 0
    assert result.out.count("OCCURRED AT") == 1
    assert len([x for x in result.out.split("\n") if x.startswith("2026-")]) == 5


class _Reader(threading.Thread):
    """Collects a subprocess's stdout lines as they come."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.lines) >= count


def test_cli_follow_prints_growth_and_new_files_then_stops(tmp_path):
    """The command in a subprocess: a file grows, an hourly file lands, the run ends."""
    path = tmp_path / "stream.jsonl"
    path.write_text("\n".join(CLI_LINES[:20]) + "\n", encoding="utf-8")
    process = subprocess.Popen(
        [
            *CLI_COMMAND,
            "audit",
            "tail",
            "-s",
            str(tmp_path),
            "--follow",
            "--interval",
            "0.1",
            "--follow-max-seconds",
            "20",
            "--json",
            "--limit",
            "3",
            "--decision",
            "deny",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = _Reader(process.stdout)
    reader.start()
    try:
        denies_first = [x for x in CLI_LINES[:20] if '"decision" : "deny"' in x]
        assert reader.wait_for(min(3, len(denies_first)), 15), process.stderr
        append(path, "\n".join(CLI_LINES[20:60]) + "\n")
        grown = [x for x in CLI_LINES[20:60] if '"decision" : "deny"' in x]
        assert reader.wait_for(3 + len(grown), 15)
        hour = tmp_path / "audit" / "2026" / "05" / "11"
        hour.mkdir(parents=True)
        shutil.copy(OCSF_FILE, hour / "2026-05-11T09.parquet")
        assert reader.wait_for(3 + len(grown) + 57, 15)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    records = [json.loads(line) for line in reader.lines]
    assert all(r["decision"] == "deny" for r in records)
    by_time = sorted((json.loads(x) for x in grown), key=lambda r: r["occurred_at"])
    assert [r["id"] for r in records[3 : 3 + len(grown)]] == [r["id"] for r in by_time]
    assert len(records) == 3 + len(grown) + 57
    assert process.returncode == 130


def test_cli_follow_ends_after_max_seconds_and_on_ctrl_c(tmp_path):
    path = tmp_path / "stream.jsonl"
    path.write_text("\n".join(CLI_LINES[:2]) + "\n", encoding="utf-8")
    started = time.monotonic()
    done = subprocess.run(
        [
            *CLI_COMMAND,
            "audit",
            "tail",
            "-s",
            str(path),
            "-f",
            "--interval",
            "0.1",
            "--follow-max-seconds",
            "0.5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and len(done.stdout.split("\n")) == 3
    assert time.monotonic() - started < 20
    process = subprocess.Popen(
        [*CLI_COMMAND, "audit", "tail", "-s", str(path), "-f", "--interval", "0.1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = _Reader(process.stdout)
    reader.start()
    try:
        assert reader.wait_for(2, 15)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "Traceback" not in process.stderr.read()


def test_a_follower_leaves_no_temporary_directory(tmp_path, monkeypatch) -> None:
    """Closed, or refused at its start (a path that does not exist), a follower removes
    its chunk directory: a day of test runs and Ctrl-Cs must not fill /tmp."""
    import gc
    import tempfile

    from caracal_forensics.errors import InputError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with Follower([str(SHAPES["db_jsonl"])], Filters.build()) as follower:
        follower.poll()
        assert list(tmp_path.glob("caracal-follow-*"))
    with pytest.raises(InputError):
        Follower([str(tmp_path / "missing.jsonl")], Filters.build())
    gc.collect()
    assert not list(tmp_path.glob("caracal-follow-*"))


def test_a_poll_ended_after_its_follower_closed_says_nothing() -> None:
    """Ctrl-C landing between a poll's rows being ready and the block that reads them
    (inside ``contextmanager.__enter__``) leaves the poll's generator to be collected
    after the follower has closed its connection: its cleanup dropped a view on the
    closed connection, and "Exception ignored in: <generator ...>" with a traceback went
    to stderr (seen once in CI's test of Ctrl-C above)."""
    follower = Follower([str(SHAPES["db_jsonl"])], Filters.build())
    rows = follower._new_rows()
    assert rows.__enter__() is True  # the first poll's rows, the view made
    follower.close()
    rows.gen.close()  # what collecting it does: its cleanup runs, and must not raise


# --- rotation, truncation, rewriting (issue 14.4) --------------------------------------


def renamed_ids(lines: list[str], prefix: str = "rw") -> list[str]:
    """The same lines with ids of the same length, so byte offsets line up."""
    return [line.replace('"id" : "ev-', f'"id" : "{prefix}-', 1) for line in lines]


def line_ids(lines: list[str]) -> list[str]:
    return [json.loads(line)["id"] for line in lines]


def test_rotated_file_larger_than_the_offset_is_read_from_the_start(tmp_path, follower_factory):
    """logrotate's rename-and-create: a new file under the name, already longer than
    what was read of the old one. It was read from the old offset, from mid-line: exit 2
    naming the follower's chunk file ("malformed JSON"), and no new event shown."""
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(CLI_LINES[:50]) + "\n", encoding="utf-8")
    follower = follower_factory([path])
    assert follower.poll().num_rows == 50
    path.rename(tmp_path / "audit.jsonl.1")
    path.write_text("\n".join(CLI_LINES[60:180]) + "\n", encoding="utf-8")
    rotated = follower.poll()
    assert sorted(ids(rotated)) == sorted(line_ids(CLI_LINES[60:180]))
    assert sorted(rotated.column("source_line").to_pylist()) == list(range(1, 121))
    append(path, CLI_LINES[180] + "\n")
    assert provenance(follower.poll()) == {(line_ids([CLI_LINES[180]])[0], str(path), 121)}


def test_new_file_with_a_line_boundary_at_the_old_offset_loses_no_event(
    tmp_path, follower_factory
):
    """The new file's first lines are as long as the old file: reading on from the old
    offset skipped them without a word."""
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(CLI_LINES[:40]) + "\n", encoding="utf-8")
    follower = follower_factory([path])
    assert follower.poll().num_rows == 40
    fresh = renamed_ids(CLI_LINES[:40]) + CLI_LINES[40:45]
    path.rename(tmp_path / "audit.jsonl.1")
    path.write_text("\n".join(fresh) + "\n", encoding="utf-8")
    assert sorted(ids(follower.poll())) == sorted(line_ids(fresh))


def test_truncated_in_place_and_grown_past_the_offset_is_read_from_the_start(
    tmp_path, follower_factory
):
    """copytruncate: the same inode, emptied, then written again beyond the old offset
    before the next poll (with and without a line boundary there)."""
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(CLI_LINES[:30]) + "\n", encoding="utf-8")
    follower = follower_factory([path])
    assert follower.poll().num_rows == 30
    for fresh in (CLI_LINES[100:160], renamed_ids(CLI_LINES[:30], "tr") + CLI_LINES[30:32]):
        inode = path.stat().st_ino
        with open(path, "r+", encoding="utf-8") as handle:
            handle.truncate(0)
            handle.write("\n".join(fresh) + "\n")
        assert path.stat().st_ino == inode
        again = follower.poll()
        assert sorted(ids(again)) == sorted(line_ids(fresh))
        assert sorted(again.column("source_line").to_pylist()) == list(range(1, len(fresh) + 1))


def test_csv_rewritten_in_place_is_read_again_with_its_header(tmp_path, follower_factory):
    path = tmp_path / "dump.csv"
    path.write_text("\n".join(CSV_LINES[:21]) + "\n", encoding="utf-8")
    follower = follower_factory([path])
    first = provenance(follower.poll())
    assert len(first) == 20
    path.write_text("\n".join(CSV_LINES[:1] + CSV_LINES[100:160]) + "\n", encoding="utf-8")
    again = follower.poll()
    assert again.num_rows == 60
    assert sorted(again.column("source_line").to_pylist()) == list(range(2, 62))


def test_a_bad_line_in_a_later_chunk_names_the_real_file_and_line(tmp_path, follower_factory):
    """Not ``/tmp/caracal-follow-.../chunk: line 6``."""
    from caracal_forensics.errors import InputError

    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(CLI_LINES[:20]) + "\n", encoding="utf-8")
    follower = follower_factory([path])
    assert follower.poll().num_rows == 20
    append(path, "\n".join(CLI_LINES[20:25]) + "\n" + '{"id" : "broken\n')
    with pytest.raises(InputError) as caught:
        follower.poll()
    message = str(caught.value)
    assert message.startswith(f"{path}: line 26: "), message
    assert "chunk" not in message and "caracal-follow" not in message


def test_a_bad_row_in_a_later_csv_chunk_names_the_real_line(tmp_path, follower_factory):
    from caracal_forensics.errors import InputError

    path = tmp_path / "dump.csv"
    path.write_text("\n".join(CSV_LINES[:11]) + "\n", encoding="utf-8")
    follower = follower_factory([path])
    assert follower.poll().num_rows == 10
    append(path, "\n".join(CSV_LINES[11:14]) + "\n" + "not,a,row\n")
    with pytest.raises(InputError) as caught:
        follower.poll()
    assert str(caught.value).startswith(f"{path}: line 15"), str(caught.value)


def test_replaced_compressed_file_is_handed_over_whole(tmp_path, follower_factory):
    """A whole-file re-read skipped as many rows as were handed over before, even when
    the file now holds other events."""
    path = tmp_path / "audit.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(CLI_LINES[:30]) + "\n").encode()))
    follower = follower_factory([path])
    assert follower.poll().num_rows == 30
    path.write_bytes(gzip.compress(("\n".join(CLI_LINES[100:140]) + "\n").encode()))
    assert sorted(ids(follower.poll())) == sorted(line_ids(CLI_LINES[100:140]))


def test_cli_follow_across_a_rotation(tmp_path):
    """The command in a subprocess: the file is rotated between two polls and the new
    one, longer than the old, is shown whole; no error, and Ctrl-C ends it with 130."""
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(CLI_LINES[:10]) + "\n", encoding="utf-8")
    process = subprocess.Popen(
        [*CLI_COMMAND, "audit", "tail", "-s", str(path), "-f", "--interval", "0.1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = _Reader(process.stdout)
    reader.start()
    try:
        assert reader.wait_for(10, 15)
        path.rename(tmp_path / "audit.jsonl.1")
        path.write_text("\n".join(CLI_LINES[50:90]) + "\n", encoding="utf-8")
        assert reader.wait_for(50, 15), process.stderr
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert [json.loads(x)["id"] for x in reader.lines[10:]] == line_ids(CLI_LINES[50:90])
    err = process.stderr.read()
    assert process.returncode == 130, err
    assert "rotated" in err and "Traceback" not in err and "chunk" not in err


def test_cli_follow_table_widens_for_later_rows(tmp_path):
    """Issue 15.18: the column widths were fixed by the first batch and a later, longer
    request id was cut (``req-0…``). Later rows widen their columns (the header is
    printed again over the new layout) as far as the terminal allows."""
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(CLI_LINES[:3]) + "\n", encoding="utf-8")
    first_request = json.loads(CLI_LINES[0])["request_id"]
    long_request = "req-" + "7" * 30
    later = CLI_LINES[3].replace(
        f'"request_id" : "{json.loads(CLI_LINES[3])["request_id"]}"',
        f'"request_id" : "{long_request}"',
    )
    assert long_request in later and len(long_request) > len(first_request)
    process = subprocess.Popen(
        [*CLI_COMMAND, "audit", "tail", "-s", str(path), "-f", "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )
    reader = _Reader(process.stdout)
    reader.start()
    try:
        assert reader.wait_for(5, 15), process.stderr  # header, rule, 3 rows
        append(path, later + "\n")
        deadline = time.monotonic() + 15
        while not any("req-7777" in x for x in reader.lines) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    shown = [x for x in reader.lines if "req-7777" in x]
    assert len(shown) == 1 and long_request in shown[0], reader.lines
    assert "…" not in "\n".join(reader.lines)
    assert sum("OCCURRED AT" in x for x in reader.lines) == 2


def test_file_rotated_within_a_followed_directory_is_not_shown_again(tmp_path, follower_factory):
    """Rotation to a name the directory walk reads (``audit-2026-05-11.jsonl``): the
    renamed file is the one already read, so only what was appended to it before the
    rotation is new; the file now under the old name is read from its start."""
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(CLI_LINES[:30]) + "\n", encoding="utf-8")
    follower = follower_factory([tmp_path])
    assert follower.poll().num_rows == 30
    append(path, "\n".join(CLI_LINES[30:35]) + "\n")
    rotated = tmp_path / "audit-2026-05-11.jsonl"
    path.rename(rotated)
    path.write_text("\n".join(CLI_LINES[100:111]) + "\n", encoding="utf-8")
    new = follower.poll()
    assert provenance(new) == {
        *zip(line_ids(CLI_LINES[30:35]), [str(rotated)] * 5, range(31, 36), strict=True),
        *zip(line_ids(CLI_LINES[100:111]), [str(path)] * 11, range(1, 12), strict=True),
    }
    append(rotated, CLI_LINES[35] + "\n")  # a writer that still had it open
    assert provenance(follower.poll()) == {(line_ids([CLI_LINES[35]])[0], str(rotated), 36)}


# --- a large first poll: lines written in bulk, rows never all in memory ----------------


@pytest.mark.parametrize("output", [["--json"], ["--query", "decision == 'deny' && {id: id}"],
                                    ["--query", "to_string(decision)"]],
                         ids=["json", "compiled", "evaluated"])
@pytest.mark.parametrize("shape", ["db_csv", "cli_jsonl", "ocsf"])
def test_every_match_followed_prints_what_tail_prints(shape: str, output: list[str]) -> None:
    """``--limit 0 --json`` / ``--query`` with --follow: the first poll goes through
    tail's bulk writer (render.bulk.write_tail_lines, over the poll's spooled rows), so
    it prints what tail prints, byte for byte."""
    argv = ["audit", "tail", "-s", SHAPES[shape], "-n", "0", *output]
    plain = run_cli(*argv)
    followed = run_cli(*argv, "--follow", "--follow-max-seconds", "0")
    assert followed.code == plain.code == 0
    assert followed.out == plain.out and plain.lines


def test_a_large_read_is_spooled_and_later_polls_write_too(tmp_path, monkeypatch) -> None:
    """What a file gives in a poll is held in memory only up to ``SPILL_BYTES``, then in
    a file of the follower's directory, removed once handed over; later polls are
    written by the same writer."""
    import io

    from caracal_forensics.follow import _Spooled
    from caracal_forensics.render.bulk import write_tail_lines

    monkeypatch.setattr(_Spooled, "SPILL_BYTES", 1)  # every read spills
    spills: list[str] = []
    original = _Spooled.__init__

    def recording(self, path, batches):
        original(self, path, batches)
        if self._written:
            spills.append(path)

    monkeypatch.setattr(_Spooled, "__init__", recording)
    path = tmp_path / "cli.jsonl"
    path.write_text("\n".join(CLI_LINES[:40]) + "\n", encoding="utf-8")
    first = run_cli("audit", "tail", "-s", str(path), "-n", "0", "--json").lines
    out = io.StringIO()

    def write(con, relation, filters):
        return write_tail_lines(con, filters, None, out, relation=relation)

    follower = Follower([str(path)], Filters.build(limit=0), interval=0.05)
    try:
        follower._hand_over(None, write)
        assert len(spills) == 1 and not os.path.exists(spills[0])  # handed over, gone
        assert out.getvalue().split("\n")[:-1] == first
        append(path, "\n".join(CLI_LINES[40:60]) + "\n")
        follower._hand_over(None, write)
    finally:
        follower.close()
    every = run_cli("audit", "tail", "-s", str(path), "-n", "0", "--json").lines
    got = out.getvalue().split("\n")[:-1]
    assert len(spills) == 2 and len(got) == 60 and sorted(got) == sorted(every)


def test_a_followed_snapshot_is_read_once_in_place(tmp_path, follower_factory):
    """A snapshot's events come from its parts (Parquet already: no spool), once, with
    the provenance it recorded; a second poll finds nothing new."""
    snapshot = tmp_path / "snapshot"
    assert run_cli("ingest", "-s", SHAPES["db_csv"], "--out", snapshot).code == 0
    follower = follower_factory([snapshot])
    first = follower.poll()
    expected = cf.open(str(snapshot)).tail(limit=0)
    assert ids(first) == expected["id"].to_list() and first.num_rows == 240
    assert provenance(first) == set(zip(expected["id"], expected["source_file"],
                                        expected["source_line"], strict=True))
    assert follower.poll().num_rows == 0


def test_a_followed_snapshot_is_held_to_its_manifest(tmp_path):
    """`tail --follow` over a snapshot prints what tail prints, and refuses a snapshot
    altered since it was written as every other open does (a part added, one cut short):
    it read the parts without looking at the manifest."""
    snapshot = tmp_path / "snapshot"
    assert run_cli("ingest", "-s", SHAPES["db_csv"], "--out", snapshot).code == 0
    once = ["--follow", "--follow-max-seconds", "0"]
    plain = run_cli("audit", "tail", "-s", snapshot, "--json", "-n", "0")
    followed = run_cli("audit", "tail", "-s", snapshot, "--json", "-n", "0", *once)
    assert followed.code == 0 and followed.out == plain.out and len(plain.lines) > 100

    parts = sorted((snapshot / "events").glob("*.parquet"))
    for alter in ("added", "cut"):
        altered = tmp_path / alter
        shutil.copytree(snapshot, altered)
        part = altered / "events" / parts[0].name
        if alter == "added":
            shutil.copy(part, altered / "events" / "part-99999.parquet")
        else:
            os.truncate(part, part.stat().st_size - 1)
        plain = run_cli("audit", "tail", "-s", altered, "--json", "-n", "0")
        followed = run_cli("audit", "tail", "-s", altered, "--json", "-n", "0", *once)
        assert plain.code == 2 and "since the snapshot was written" in plain.err, alter
        assert (followed.code, followed.out, followed.err) == (2, "", plain.err), alter
