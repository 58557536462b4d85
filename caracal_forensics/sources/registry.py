"""The one list of input shapes. Detection, reading, fingerprinting, ``follow`` and verify
loop over it or look a shape up by name; nothing else names the shapes.

Order matters: among the shapes of one kind (``shapes.base.KINDS``) the first whose
``detect`` says yes wins, so the list is the detection order (a search page is tried
before a table dump, a table dump before an alerts dump). Model: dissect.target's
``loader.py`` (``Loader.detect``, ``register``, ``find_loader``).
"""

from __future__ import annotations

from .shapes.admin_api_csv import AdminApiCsv
from .shapes.admin_api_json import AdminApiJson
from .shapes.admin_db_csv import AdminDbCsv
from .shapes.admin_db_jsonl import AdminDbJsonl
from .shapes.alerts_csv import AlertsCsv
from .shapes.alerts_jsonl import AlertsJsonl
from .shapes.api_csv import ApiCsv
from .shapes.api_json import ApiJson
from .shapes.base import Probe, SourceShape
from .shapes.cli_jsonl import CliJsonl
from .shapes.db_csv import DbCsv
from .shapes.db_jsonl import DbJsonl
from .shapes.dlq_entry import DlqEntry
from .shapes.ocsf_parquet import OcsfParquet
from .shapes.search_page import SearchPage
from .shapes.snapshot import Snapshot
from .shapes.wire_spool import WireSpool

__all__ = ["SHAPES", "SourceShape", "Probe", "register", "unregister", "shape_named",
           "find_shape", "holds_alerts", "holds_admin"]

#: Every shape, in detection order. A new shape: one file in ``shapes/`` and one line here.
SHAPES: list[type[SourceShape]] = [
    # admin_audit_events first: an admin-audit page is a page {"items", "next_cursor"}
    AdminDbCsv,
    AdminDbJsonl,
    AdminApiJson,
    AdminApiCsv,
    DbCsv,
    WireSpool,  # by its file name, before ApiJson and DbJsonl: its lines have _json keys too
    DlqEntry,
    ApiJson,  # before SearchPage and DbJsonl: an explain trace has "events", an item _json keys
    SearchPage,
    DbJsonl,
    CliJsonl,
    OcsfParquet,
    Snapshot,
    AlertsCsv,
    AlertsJsonl,
    ApiCsv,
]


def register(shape: type[SourceShape]) -> type[SourceShape]:
    """Add a shape at the end of the detection order (usable as a class decorator); a
    name already registered is a programming error, not a second reading of the name."""
    if any(known.name == shape.name for known in SHAPES):
        raise ValueError(f"a shape named {shape.name!r} is already registered")
    SHAPES.append(shape)
    return shape


def unregister(shape: type[SourceShape]) -> None:
    """Take a shape out again (tests that register a toy shape)."""
    SHAPES.remove(shape)


def shape_named(name: str) -> type[SourceShape] | None:
    """The registered shape of that name (``InputFile.shape``), or None: ``postgres`` and
    ``alerts_snapshot`` name where rows came from, not a shape a file is read as."""
    for shape in SHAPES:
        if shape.name == name:
            return shape
    return None


def find_shape(probe: Probe, kind: str) -> type[SourceShape] | None:
    """The first shape of ``kind`` that recognises the probed file, or None."""
    for shape in SHAPES:
        if shape.kind == kind and shape.detect(probe):
            return shape
    return None


def holds_alerts(name: str) -> bool:
    """Whether rows of that shape are alerts (registered shapes say; the non-file names
    fall back to ``model.Shape.ALERT_SHAPES``)."""
    from ..model import Shape

    shape = shape_named(name)
    return shape.holds_alerts if shape is not None else name in Shape.ALERT_SHAPES


def holds_admin(name: str) -> bool:
    """Whether rows of that shape are admin changes (``admin_audit_events``)."""
    shape = shape_named(name)
    return shape is not None and shape.holds_admin
