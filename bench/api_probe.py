"""Query time of tail and explain through the Python API, without process start-up.

    .venv/bin/python bench/api_probe.py SOURCE REQUEST_ID PRINCIPAL [--repeat 5]

Opens SOURCE once (``caracal_forensics.open``), then times each query ``--repeat`` times:
the first run (cold: Parquet footers and pages not yet cached by DuckDB) and the median of
the others (warm). Prints one JSON object: seconds for import, open, and per query
{cold, warm, rows}. This is the "query time" of issue 5's 100 ms target; the CLI's end
to end time (start-up, open, query, render) is measured separately by run.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("request_id")
    parser.add_argument("principal")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    began = time.perf_counter()
    import caracal_forensics as cf

    imported = time.perf_counter()
    snap = cf.open(args.source)
    opened = time.perf_counter()
    out: dict = {"import": imported - began, "open": opened - imported, "queries": {}}

    def rows_of(result) -> int:
        if hasattr(result, "height"):
            return int(result.height)
        table = getattr(result, "table", None)
        if table is not None:
            return int(table.num_rows)
        return -1

    queries = {
        "tail_request": lambda: snap.tail(request_id=args.request_id, limit=0),
        "tail_broad": lambda: snap.tail(decision="deny", limit=100),
        "explain": lambda: snap.explain(args.request_id),
        "principal_denies": lambda: snap.query("denies_for_principal",
                                               principal_id=args.principal),
    }
    for name, run in queries.items():
        times = []
        rows = None
        error = None
        for _ in range(max(1, args.repeat)):
            started = time.perf_counter()
            try:
                result = run()
            except Exception as exc:  # a placeholder until the API lands
                error = f"{type(exc).__name__}: {exc}"
                break
            times.append(time.perf_counter() - started)
            rows = rows_of(result)
        if error:
            out["queries"][name] = {"error": error[:200]}
            continue
        warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
        out["queries"][name] = {"cold": times[0], "warm": warm, "rows": rows}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
