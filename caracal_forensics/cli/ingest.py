"""``caracal-forensics ingest``: any export shapes in, one canonical snapshot out."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import OnBadLineOption, SourcesOption, app, open_snapshot


@app.command()
def ingest(
    out: Annotated[str, typer.Option("--out", "-o", help="New (or empty) snapshot directory.")],
    source: SourcesOption = None,
    on_bad_line: OnBadLineOption = "error",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the manifest as JSON.")
    ] = False,
) -> None:
    """Write the sources as a canonical Parquet snapshot (sorted, zstd) with a manifest."""
    manifest = open_snapshot(source, on_bad_line, by_zone=True).ingest(out)
    if json_output:
        print(json.dumps(manifest, indent=2))
        return
    print(
        f"wrote {manifest['events']} events, {manifest['alerts']} alerts from "
        f"{len(manifest['inputs'])} input(s) in {len(manifest['zones'])} zone(s) to {out}"
    )
