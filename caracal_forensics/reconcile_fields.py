"""What the weaker of two rows of one event can carry, and so what reconcile compares
(``reconcile.py``): one jsonb field of two rows whose raw texts differ, decided here.

Two jsonb texts are canonical (PostgreSQL's rendering, ``jsonb.py``), so between two
shapes that keep number literals different texts are different values. Against the
Admin API (FORMAT.md 6) numbers are doubles and sensitive keys' values ``"[redacted]"``;
its CSV holds metadata only as the cells of its columns (arrays joined by a space,
objects lost), and a ``fields=`` projection only the keys it was asked for. A JSON
``null`` key of a projection is a key it does not hold.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from typing import Any

from .jsonb import JsonbNumber, dumps, loads
from .model import Shape

#: Shapes written by the Admin API: JavaScript doubles, ``redactSensitive``.
API_SHAPES = (Shape.API_JSON, Shape.API_CSV)
#: Keys whose values the Admin API replaces by ``"[redacted]"`` at any depth (FORMAT.md 6).
SENSITIVE = frozenset({
    "password", "passwd", "secret", "token", "access_token", "refresh_token", "id_token",
    "api_key", "apikey", "authorization", "cookie", "set_cookie", "client_secret",
    "private_key", "session", "session_id", "assertion"})
REDACTED = "[redacted]"

Diff = tuple[str, "str | None", "str | None"]


class Caps:
    """What rows of one shape with one ``absent_fields`` can carry."""

    def __init__(self, shape: str | None, absent_fields: str | None, digits: int | None):
        absent = [n for n in (absent_fields or "").split(",") if n]
        self.absent = frozenset(n for n in absent if not n.startswith("metadata_json."))
        #: metadata keys the row lacks (a lost object, a CSV column not exported)
        self.absent_keys = frozenset(n.split(".", 1)[1] for n in absent
                                     if n.startswith("metadata_json."))
        self.api = shape in API_SHAPES
        self.csv = shape == Shape.API_CSV
        #: a ``fields=`` projection: only the metadata keys it holds were exported
        self.projection = shape == Shape.API_JSON and "diagnostics_json" in self.absent
        self.millis = (digits or 6) < 6


@lru_cache(maxsize=256)
def caps(shape: str | None, absent_fields: str | None, digits: int | None) -> Caps:
    return Caps(shape, absent_fields, digits)


def json_diffs(name: str, a: str | None, b: str | None, mine: Caps, theirs: Caps
               ) -> list[Diff]:
    """How two differing jsonb texts of field ``name`` differ in what both rows can
    carry: [] when only in what one cannot; else the field, or for objects each key
    (``metadata_json.<key>``), with the two values (jsonb text, or the CSV cell)."""
    loose = mine.api or theirs.api
    if not loose:  # canonical texts of exact values: another text is another value
        return _exact_diffs(name, a, b)
    if name == "determining_policies_json" and (mine.csv or theirs.csv or mine.projection
                                                 or theirs.projection):
        same = _policy_names(_fast(a)) == _policy_names(_fast(b))
        return [] if same else [(name, a, b)]
    if name == "metadata_json" and (mine.csv or theirs.csv):
        keys = _csv_keys(mine, theirs)
        cells = _cells(loads(a) if a else None, keys), _cells(loads(b) if b else None, keys)
        return [(f"{name}.{key}", cells[0].get(key), cells[1].get(key))
                for key in sorted(set(cells[0]) | set(cells[1]))
                if cells[0].get(key) != cells[1].get(key)]
    left, right = _fast(a), _fast(b)
    if name == "metadata_json":
        kept = _carried_keys(left, right, mine, theirs)
        if kept is not None:
            left, right = _only(left, kept), _only(right, kept)
        if mine.projection or theirs.projection:  # a key asked for and absent is null
            left, right = _no_nulls(left), _no_nulls(right)
    if _weakened(left) == _weakened(right):
        return []
    if isinstance(left, dict) and isinstance(right, dict):
        exact = (loads(a) if a else {}), (loads(b) if b else {})
        return [(f"{name}.{key}", _text(exact[0], key), _text(exact[1], key))
                for key in sorted(set(left) | set(right))
                if _weakened(left.get(key, _NONE), key) != _weakened(right.get(key, _NONE), key)]
    return [(name, a, b)]


def _exact_diffs(name: str, a: str | None, b: str | None) -> list[Diff]:
    left = loads(a) if a is not None else None
    right = loads(b) if b is not None else None
    if isinstance(left, dict) and isinstance(right, dict):
        return [(f"{name}.{key}", _text(left, key), _text(right, key))
                for key in sorted(set(left) | set(right))
                if _text(left, key) != _text(right, key)]
    return [(name, a, b)]


#: a key one side lacks (not the same as JSON null)
_NONE = object()


def _fast(text: str | None) -> Any:
    """JSON parsed as JavaScript does: every number a double."""
    return None if text is None else json.loads(text, parse_float=float, parse_int=float)


def _text(value: dict, key: str) -> str | None:
    return dumps(value[key]) if key in value else None


def _carried_keys(left: Any, right: Any, mine: Caps, theirs: Caps) -> set | None:
    """The metadata keys both rows carry, or None for all: a ``fields=`` projection holds
    only the keys it was asked for, a lost object (``metadata_json.<key>``) none."""
    keys: set | None = None
    for value, cap in ((left, mine), (right, theirs)):
        if cap.projection:
            held = set(value) if isinstance(value, dict) else set()
            keys = held if keys is None else keys & held
    lost = mine.absent_keys | theirs.absent_keys
    if lost:
        every = (set(left or {}) | set(right or {})) if keys is None else keys
        keys = every - lost
    return keys


def _only(value: Any, keys: set) -> Any:
    return {k: v for k, v in value.items() if k in keys} if isinstance(value, dict) else value


def _no_nulls(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if v is not None} or None


def _policy_names(value: Any) -> list[str]:
    """``[{"policy": name}]`` as its names (all the CSV and a projection carry)."""
    if not isinstance(value, list):
        return []
    return [str(item.get("policy")) if isinstance(item, dict) else str(item) for item in value]


def _csv_keys(mine: Caps, theirs: Caps) -> set[str]:
    from .sources.api_json import METADATA_FIELDS

    return set(METADATA_FIELDS) - mine.absent_keys - theirs.absent_keys


def _cells(value: Any, keys: set[str]) -> dict[str, str]:
    """Metadata as the CSV export writes it: the columns' cells, empty ones left out."""
    from .sources.api_csv import unguard

    if not isinstance(value, dict):
        return {}
    cells = {}
    for key in keys & set(value):
        cell = unguard(_js_cell(value[key]))
        if cell:
            cells[key] = cell
    return cells


def _js_cell(value: Any) -> str:
    """A value as the CSV export writes it (arrays joined by one space)."""
    if isinstance(value, list):
        return " ".join(_js_string(item) for item in value)
    return _js_string(value)


def _js_string(value: Any) -> str:
    """JavaScript's ``String(value)`` of a parsed JSON value (null in an array: "")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, JsonbNumber):
        return js_number(float(value))
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list):
        return ",".join(_js_string(item) for item in value)
    return str(value)


def js_number(number: float) -> str:
    """A double as JavaScript prints it (Number.prototype.toString)."""
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    _, digits_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple))
    k, n = len(digits), len(digits) + int(exponent)
    minus = "-" if number < 0 else ""
    if k <= n <= 21:
        return minus + digits + "0" * (n - k)
    if 0 < n <= 21:
        return minus + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return minus + "0." + "0" * -n + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{minus}{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


def _weakened(value: Any, key: str = "") -> Any:
    """A value (numbers already doubles) with every sensitive key's value as the Admin
    API writes it, "[redacted]", on both sides alike."""
    if key and key.lower() in SENSITIVE and value is not _NONE:
        return REDACTED
    if isinstance(value, dict):
        return {k: _weakened(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_weakened(item) for item in value]
    if value is True or value is False:  # never equal to 1 or 0
        return ("boolean", value)
    return value
