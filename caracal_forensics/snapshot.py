"""Snapshot: the sources of one investigation, opened as a DuckDB view ``events``.

Every command and the notebook API start here (``open_sources``). Canonical snapshot
directories are read by DuckDB straight from their Parquet files (with row-group
skipping); every other shape is streamed through its reader into a spool of Parquet
files (``spool.py``), which DuckDB then reads as the view ``loaded_events``
(``engine.py`` sets the connection and the views up; ``loading.py`` does it all for
``open_sources``). The inputs' SHA-256 is computed on a background thread meanwhile.
``Snapshot`` is the facade over the result: tail, explain, stats, queries, verify and
ingest, each in a module of its own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from typing import IO, TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from .engine import confine, confined_twin, connect, query_error
from .errors import ForensicsError
from .loading import load_sources
from .model import Shape
from .sources import BadLines, InputFile
from .spool import Layout

if TYPE_CHECKING:
    import polars as pl

    from .chain.report import Report

__all__ = ["Snapshot", "open_sources", "connect"]


def open_sources(paths: list[str], on_bad_line: str = "error", *,
                 by_zone: bool = False, exclude: Sequence[str] = ()) -> Snapshot:
    """Scan, detect and load the inputs (``loading.load_sources``); the result has the
    views ``events``, ``unique_events``, ``alerts`` and ``admin_events``. ``by_zone``:
    lay the events out for ``ingest`` (see ``load_sources``)."""
    loaded = load_sources(paths, on_bad_line, by_zone=by_zone, exclude=exclude)
    snap = Snapshot(loaded.con, loaded.inputs, loaded.bad)
    # ingest opens the same again by zone (what scan left out is left out again)
    loaded.layout.reopen_by_zone = partial(open_sources, list(paths), on_bad_line,
                                           by_zone=True, exclude=tuple(exclude))
    snap.layout = loaded.layout
    return snap


class Snapshot:
    """The opened sources of one investigation (the notebook's entry point).

    ``duckdb`` is the connection, with the views ``events`` (model.EVENT_SCHEMA: every row
    of every input), ``unique_events`` (one row per event when a directory holds several
    shapes of one export: what tail, explain, stats and queries read) and ``alerts``;
    ``inputs`` lists what was examined with sizes and SHA-256.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, inputs: list[InputFile], bad: BadLines):
        self._con = con
        #: how ``open_sources`` laid the events out (``spool.Layout``), for ``ingest``'s
        #: shortcuts; None for a snapshot made otherwise (``pgsnapshot``)
        self.layout: Layout | None = None
        self._confined: duckdb.DuckDBPyConnection | None = None  # see confined_duckdb
        self.inputs = inputs
        self.skipped_lines = bad.count
        self.first_skipped = bad.first

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        return self._con

    @property
    def events(self) -> pl.LazyFrame:
        """Every event as a lazy polars frame."""
        return self._con.sql("SELECT * FROM events").pl(lazy=True)

    def sql(self, query: str, params: dict[str, Any] | list[Any] | None = None) -> pl.DataFrame:
        """Run SQL over the views ``events`` and ``alerts``; the result as a polars frame.
        Statements that can write files (COPY, EXPORT, ATTACH ...) are refused; ``duckdb``
        is the connection itself, for anything else."""
        return self._run(query, params, lambda relation: relation.pl())

    def _run(self, query: str, params: dict[str, Any] | list[Any] | None, fetch):
        """``fetch`` of ``query``'s result once it is no statement that writes files;
        DuckDB's errors as one ForensicsError (``sql``, ``arrow``)."""
        from .queries import refused_statement

        try:
            refused = refused_statement(self._con, query)
            if refused:
                raise ForensicsError(f"SQL error: {refused}")
            return fetch(self._con.sql(query, params=params))
        except duckdb.Error as error:
            raise query_error(error, self._con, "SQL error") from None

    def confine(self) -> None:
        """From now on let DuckDB read only the files behind ``events`` and ``alerts`` (and
        spill to its temporary directory): SQL a user types (``sql``) can then read no
        other file, such as a key file beside the export, and write none. For good: DuckDB
        cannot lift it on a running connection (so ``ingest`` and writing results out
        through ``duckdb`` are refused afterwards). Calling it again does nothing."""
        from .queries import ensure_views, is_confined

        if is_confined(self._con):
            return
        ensure_views(self._con)  # unique_events reads the data once: before, not after
        spill = self._con.sql("SELECT current_setting('temp_directory')").fetchall()[0][0]
        confine(self._con, self._data_files(), [spill])

    def _data_files(self) -> list[str]:
        """The files DuckDB reads behind the views: snapshots' parts and alerts, and the
        spool of the loaded events."""
        from .sources.snapshot_dir import admin_files, alerts_file, event_files

        files: list[str] = []
        for source in self.inputs:
            if source.shape == Shape.SNAPSHOT:
                alerts = alerts_file(source.path)
                files += [*event_files(source.path), *([alerts] if alerts else []),
                          *admin_files(source.path)]
        layout = self.layout
        if layout is not None and layout.spool is not None:
            files += layout.spool.files
        return files

    def confined_duckdb(self) -> duckdb.DuckDBPyConnection:
        """A connection with the same views (``events``, ``unique_events``, ``alerts``)
        that reads only their files (see :meth:`confine`), for query text from outside the
        toolkit (``query`` files of one's own or someone else's); ``duckdb`` itself is left
        free. The snapshot's own connection when it is confined already."""
        from .queries import is_confined

        if is_confined(self._con):
            return self._con
        if self._confined is None:
            self._confined = confined_twin(self._con, self._data_files())
        return self._confined

    @property
    def admin_events(self) -> pl.LazyFrame:
        """Every admin change (``admin_audit_events``, FORMAT.md 8) of every source, as a
        lazy polars frame (view ``admin_events``; empty when no source holds any)."""
        return self._con.sql("SELECT * FROM admin_events").pl(lazy=True)

    def admin_changes(self, **filters: Any) -> pl.DataFrame:
        """The newest ``limit`` matching admin changes (0 = all), oldest first, each once,
        as ``admin tail`` lists them; the filters are ``admin.changes.AdminFilters``'s
        (zone, actor, entity_type, entity_id, method, status, since, until, limit)."""
        import polars as pl

        from .admin.changes import AdminFilters, select_changes

        table = select_changes(self._con, AdminFilters.build(**filters))
        return pl.from_arrow(table)  # type: ignore[return-value]

    def timeline(self, zone: str, since: Any = None, until: Any = None, **options: Any):
        """Admin changes and decision events of ``zone`` in one order, runs of identical
        decisions of one principal collapsed (``admin.timeline.Timeline``)."""
        from .admin.timeline import timeline

        return timeline(self._con, zone, since=since, until=until, **options)

    def count(self) -> int:
        return self._con.sql("SELECT count(*) FROM events").fetchall()[0][0]

    def arrow(self, query: str = "SELECT * FROM events ORDER BY zone_id, chain_seq",
              params: dict[str, Any] | list[Any] | None = None) -> pa.Table:
        """``sql``'s result as an Arrow table (statements that write files refused too: it
        ran a COPY over the evidence)."""
        return self._run(query, params, lambda relation: relation.to_arrow_table())

    def alerts(
        self, zones: list[str] | None = None, kinds: list[str] | None = None
    ) -> pl.DataFrame:
        """The audit_ingest_alerts rows (oldest first), optionally of some zones or kinds."""
        import polars as pl

        from .alerts import query_alerts

        return pl.from_arrow(query_alerts(self, zones=zones, kinds=kinds))

    def tail(
        self,
        *,
        decision: str | None = None,
        event_type: str | list[str] | None = None,
        zone: str | list[str] | None = None,
        since: Any = None,
        until: Any = None,
        request_id: str | None = None,
        limit: int = 100,
    ) -> pl.DataFrame:
        """The newest ``limit`` matching events (0 = all), oldest first, as ``audit tail``.

        ``event_type`` and ``zone`` take one value or a list; ``since`` (inclusive) and
        ``until`` (exclusive) take ISO 8601 text, a date or a datetime (naive = UTC).
        """
        import polars as pl

        from .filters import Filters, select

        filters = Filters.build(
            decision=decision,
            event_type=event_type,
            zone=zone,
            since=since,
            until=until,
            request_id=request_id,
            limit=limit,
        )
        return pl.from_arrow(select(self._con, filters))  # type: ignore[return-value]

    def write_lines(
        self,
        out: str | os.PathLike[str] | IO[Any] | None = None,
        *,
        query: str | None = None,
        decision: str | None = None,
        event_type: str | list[str] | None = None,
        zone: str | list[str] | None = None,
        since: Any = None,
        until: Any = None,
        request_id: str | None = None,
        limit: int = 100,
    ) -> int:
        """Write what ``audit tail --json`` prints for the newest ``limit`` matching events
        (0 = all), oldest first, one line each, or with ``query`` (JMESPath over each
        line's record) what ``audit tail --query`` prints, to ``out``: a file opened for
        writing (text or binary), or a path (written whole or not at all, never one of
        the inputs), stdout when None. The filters are ``tail``'s. DuckDB builds the
        lines in bulk (no Python object per event), so every event of millions goes to
        a file in seconds. Returns how many events matched the filters (an event the
        query then skips is counted; with every match wanted, the query's
        ``field == 'text'`` conditions are among the filters)."""
        from .filters import Filters
        from .outputs import text_output
        from .render.bulk import write_tail_lines

        filters = Filters.build(decision=decision, event_type=event_type, zone=zone,
                                since=since, until=until, request_id=request_id, limit=limit)
        compiled = None
        if query is not None:
            from .render.query import Query

            compiled = Query(query, flag="query")
        with text_output(out, [source.path for source in self.inputs]) as text:
            return write_tail_lines(self._con, filters, compiled, text)

    def explain(self, request_id: str, zone: str | None = None, key: bytes | str | None = None):
        """Every event of ``request_id`` oldest first and its final decision (an
        ``explain.Explanation``); with ``key`` (hex text or bytes) each event says whether
        its chain link verified."""
        from .explain import explain

        return explain(self._con, request_id, zone=zone, key=key)

    def explain_all(
        self, request_id: str, zone: str | None = None, key: bytes | str | None = None
    ) -> list:
        """One ``explain.Explanation`` per zone ``request_id`` occurs in (a chain is per
        zone, so a request seen in several zones has one explanation in each)."""
        from .explain import explain_all

        return explain_all(self._con, request_id, zone=zone, key=key)

    def verify(self, key: bytes | str | None = None, *, progress: Any = None,
               **options: Any) -> Report:
        """``Verifier(key=key, **options).verify_snapshot(self)``, for the notebook: the
        options are ``Verifier``'s (anchor, zones, recover_microseconds, max_findings)."""
        from .chain.verifier import Verifier

        return Verifier(key=key, **options).verify_snapshot(self, progress=progress)

    def ingest(self, out_dir: str) -> dict[str, Any]:
        """Write a canonical snapshot of these events under ``out_dir``; returns its manifest."""
        from .ingest import write_snapshot

        return write_snapshot(self, out_dir)

    def stats(self) -> dict[str, Any]:
        """Counts by decision, zone and event type, time span, per-zone chain_seq range."""
        from .stats import stats

        return stats(self._con)

    def query(self, name: str, **params: Any) -> pl.DataFrame:
        """Run the named query ``name`` (queries/*.sql) with its parameters bound. A query
        file is text from elsewhere (``$CARACAL_FORENSICS_QUERIES``, a file dropped into
        ``queries/``): it runs on :meth:`confined_duckdb`, reading the sources and no other
        file, while ``duckdb`` stays free."""
        from .queries import run_named

        return run_named(self.confined_duckdb(), name, params).frame

    def __repr__(self) -> str:
        shapes = sorted({i.shape for i in self.inputs})
        return f"<Snapshot {len(self.inputs)} input(s) ({', '.join(shapes)})>"
