"""``caracal-forensics ingest``: any export shapes in, one canonical snapshot out."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from .options import (
    ExcludeOption,
    OnBadLineOption,
    SourcesOption,
    open_snapshot,
    resolve_sources,
)


def ingest(
    out: Annotated[str, typer.Option("--out", "-o", help="New (or empty) snapshot directory.")],
    source: SourcesOption = None,
    on_bad_line: OnBadLineOption = "error",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the manifest as JSON.")
    ] = False,
    exclude: ExcludeOption = None,
) -> None:
    """Write the sources as a canonical Parquet snapshot (sorted, zstd) with a manifest."""
    from ..outputs import refuse_overwriting_inputs
    from .progress import progress

    sources = resolve_sources(source)
    # before the sources are read; the library checks again with the files found
    refuse_overwriting_inputs(out, sources, directory=True, names={"out": "--out"})
    _prefer_jemalloc()
    snap = open_snapshot(sources, on_bad_line, by_zone=True, exclude=exclude)
    with progress("writing the snapshot"):  # on a terminal's stderr only
        manifest = snap.ingest(out)
    if json_output:
        print(json.dumps(manifest, indent=2))
        return
    print(
        f"wrote {manifest['events']} events, {manifest['alerts']} alerts from "
        f"{len(manifest['inputs'])} input(s) in {len(manifest['zones'])} zone(s) to {out}"
    )


def _prefer_jemalloc() -> None:
    """Arrow's jemalloc allocator for this process, on Linux (its pyarrow wheels have it),
    unless the user chose one ($ARROW_DEFAULT_MEMORY_POOL). Ingest allocates and frees a
    row group's worth of buffers over and over on several threads; against mimalloc,
    pyarrow's default, jemalloc took half the system time and, on 1M events, 0.2-0.4 s
    and 90-190 MiB less. Verify gains nothing from it, so only ingest asks. Arrow reads
    the variable once, when pyarrow is imported: after that it is too late."""
    variable = "ARROW_DEFAULT_MEMORY_POOL"
    if not sys.platform.startswith("linux") or variable in os.environ or "pyarrow" in sys.modules:
        return
    os.environ[variable] = "jemalloc"
    try:
        import pyarrow as pa

        pa.default_memory_pool()
    finally:
        del os.environ[variable]  # not passed on to anything this process starts
