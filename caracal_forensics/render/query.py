"""``--query EXPR``: a JMESPath expression applied to each event's record.

The expression sees one event at a time, as the ``tail --json`` record (nested fields
parsed). What it returns decides what is printed, so one expression can filter, project,
or both, like jq's ``select(...) | {...}``:

- ``true``: the expression is a filter and the event matched: the event's record is
  printed (the same line ``--json`` prints);
- a falsy value (``null``, ``false``, an empty list, object or string: the values a
  JMESPath filter ``[?...]`` drops): nothing is printed for this event;
- anything else: that value, as one line of compact JSON.

So ``decision == 'deny'`` prints the denied events, ``{id: id, principal:
metadata.principal_id}`` prints one object per event, and ``decision == 'deny' &&
{id: id}`` prints the object for denied events only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ForensicsError, UsageError
from .jsonl import dumps

if TYPE_CHECKING:
    import pyarrow as pa

    from .jmes_sql import CompiledQuery


class Query:
    """A compiled ``--query`` expression."""

    def __init__(self, expression: str, flag: str = "--query") -> None:
        import jmespath
        from jmespath.exceptions import JMESPathError

        if not isinstance(expression, str) or not expression.strip():
            raise UsageError(f"{flag} needs a JMESPath expression")
        self.expression = expression
        self.flag = flag
        from .jmes import compile_parsed

        try:
            self._compiled = jmespath.compile(expression)
            self._evaluate = compile_parsed(self._compiled.parsed)
        except JMESPathError as error:
            message = " ".join(str(error).split())
            raise UsageError(f"{flag} {expression!r} is not valid JMESPath: {message}") from None
        except RecursionError:
            raise UsageError(f"{flag} is nested too deeply ({len(expression)} characters)"
                             ) from None

    def search(self, record: dict[str, Any],
               origin: Callable[[str], ForensicsError] | None = None) -> Any:
        """The expression's value for one record. When it cannot be evaluated on the
        record, ``origin(problem)`` is raised: an error naming where the record was read
        (without it, the record's id alone)."""
        from jmespath.exceptions import JMESPathError

        try:
            return self._evaluate(record)
        except (JMESPathError, TypeError, ValueError) as error:  # 'a' < 1 is a TypeError
            message = " ".join(str(error).split())
            if origin is not None:
                raise origin(f"{self.flag} failed: {message}") from None
            raise ForensicsError(
                f"{self.flag} failed on event {record.get('id')!r}: {message}"
            ) from None

    def lines(self, table: pa.Table | pa.RecordBatch) -> Iterator[str]:
        """The output lines for the events of ``table`` (an event-schema table), in order.

        Only the nested fields the expression names are parsed, and the ``--json`` line
        is built only for events the expression selects (``true``)."""
        from jmespath.exceptions import JMESPathError

        from .records import json_lines, query_failed, records, too_deep

        values = []
        for index, record in enumerate(records(table, self.fields)):
            try:
                values.append(self._evaluate(record))
            except RecursionError:  # a value nested hundreds deep, compared or sorted
                raise too_deep(table, index, "a value the expression reads") from None
            except (JMESPathError, TypeError, ValueError) as error:  # as search's
                raise query_failed(table, index, self.flag, error) from None
        selected = [i for i, value in enumerate(values) if value is True]
        event_lines = iter(json_lines(table.take(selected)) if selected else ())
        for index, value in enumerate(values):
            if value is True:
                yield next(event_lines)
            elif is_truthy(value):
                try:
                    yield dumps(value)
                except RecursionError:
                    raise too_deep(table, index, "the expression's value") from None

    def to_sql(self) -> CompiledQuery | None:
        """The expression as DuckDB SQL (``jmes_sql.compile_query``): per event the line
        :meth:`lines` prints, and which events only the evaluator can answer; None when
        it is not compiled (then :meth:`lines` evaluates every event)."""
        return _compile(self.expression)

    @functools.cached_property
    def fields(self) -> frozenset[str] | None:
        """The record fields the expression can read (None: maybe all of them). Fields
        are read by name; only ``@`` and ``*`` reach a record's fields otherwise."""
        from .jmes import nodes as _nodes
        from .records import RECORD_FIELDS

        nodes = list(_nodes(self._compiled.parsed))
        if any(node.get("type") in ("current", "value_projection") for node in nodes):
            return None
        names = {node.get("value") for node in nodes if node.get("type") == "field"}
        return frozenset(names.intersection(RECORD_FIELDS))

    def guard(self) -> Guard | None:
        """A SQL condition every event the expression prints satisfies, or None.

        ``a && b`` is falsy when either side is, so each ``field == 'text'`` of the
        top-level ``&&`` chain must hold: a text field is compared as stored, and a string
        inside a nested field must appear, quoted, in the stored jsonb text (which holds
        it verbatim unless it has a character jsonb escapes; those are left out). So must
        a filter ``x[?...]`` over a jsonb field ``x`` find an element: the keys its
        condition needs present appear, quoted, in ``x``'s text (``_filter_guard``). The
        expression still decides; the guard only spares events it would drop."""
        from .jmes import conjuncts
        from .records import JSON_FIELDS, SOURCE_COLUMN, TEXT_RECORD_FIELDS

        clauses: list[str] = []
        plain: list[str] = []  # the clauses on text columns, and their params
        plain_params: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for node in conjuncts(self._compiled.parsed):
            if node.get("type") == "filter_projection":
                clause = _filter_guard(node, params)
                if clause is not None:
                    clauses.append(clause)
                continue
            if node.get("type") != "comparator" or node.get("value") != "eq":
                continue
            left, right = node["children"]
            if left.get("type") == "literal":
                left, right = right, left
            literal = right.get("value") if right.get("type") == "literal" else None
            if not isinstance(literal, str):
                continue
            name = f"q{len(params)}"
            if left.get("type") == "field" and left["value"] in TEXT_RECORD_FIELDS:
                clauses.append(f'"{SOURCE_COLUMN[left["value"]]}" = ${name}')
                plain.append(clauses[-1])
                params[name] = plain_params[name] = literal
            elif (left.get("type") == "subexpression" and left["children"][0].get("type")
                  == "field" and left["children"][0]["value"] in JSON_FIELDS):
                column = SOURCE_COLUMN[left["children"][0]["value"]]
                clause = _found_in(column, literal, name, params)
                if clause is not None:
                    clauses.append(clause)
        if not clauses:
            return None
        guard = Guard((" AND ".join(clauses), params))
        guard.plain = (" AND ".join(plain), plain_params) if plain else None
        return guard


class Guard(tuple):
    """``(sql, params)`` of :meth:`Query.guard`; ``plain``: ``(sql, params)`` of its
    clauses on text columns alone, cheap enough to size ``render.bulk``'s slices with, or
    None (a clause on jsonb text is read only by the slices themselves)."""

    plain: tuple[str, dict[str, Any]] | None = None


#: Nodes that only navigate a value (no function makes a key that is not in the text).
_NAVIGATION = frozenset({"field", "subexpression", "index_expression", "index", "flatten",
                         "slice", "identity"})


def _filter_guard(node: dict[str, Any], params: dict[str, Any]) -> str | None:
    """A SQL condition that holds whenever ``x[?condition]`` (``x`` a jsonb field, or a
    path into one) is truthy, or None: some element then satisfies the condition, and
    every key the condition needs present is in ``x``'s stored text, quoted (a value
    inside the field is part of its text). ``params`` takes the texts looked for."""
    from .jmes import nodes
    from .records import JSON_FIELDS, SOURCE_COLUMN

    base, _project, condition = node["children"]
    start = base
    while start.get("type") in ("subexpression", "index_expression", "flatten"):
        start = start["children"][0]
    if (start.get("type") != "field" or start["value"] not in JSON_FIELDS
            or any(part.get("type") not in _NAVIGATION for part in nodes(base))):
        return None
    column = SOURCE_COLUMN[start["value"]]
    texts: dict[str, str] = {}
    prefix = f"f{len(params)}_"  # names of their own: the guard's are q0, q1, ... by count

    def found(text: str) -> str | None:
        return _found_in(column, text, f"{prefix}{len(texts)}", texts)

    clause = _needed(condition, found)
    if clause is not None:  # only the texts the clause kept: DuckDB refuses an unused one
        params.update((name, text) for name, text in texts.items()
                      if re.search(rf"\${name}\b", clause))
    return clause


def _found_in(column: str, text: str, name: str, params: dict[str, Any]) -> str | None:
    """SQL that holds when ``"text"`` appears in the stored jsonb text of ``column`` (the
    quoted text bound as ``params[name]``), or None when jsonb writes it escaped (then it
    is not found verbatim, and nothing is bound)."""
    if _JSONB_ESCAPED.search(text):
        return None
    params[name] = f'"{text}"'
    return f'contains("{column}", ${name})'


def _needed(node: dict[str, Any], found: Callable[[str], str | None]) -> str | None:
    """A condition on the text that holds whenever ``node`` is truthy on an element of
    it, or None. ``found(text)``: the condition that ``"text"`` appears."""
    kind = node.get("type")
    if kind in ("field", "subexpression"):  # a path of keys: each one present
        return _present(node, found)
    if kind == "and_expression":
        parts = [_needed(child, found) for child in node["children"]]
        return _all(*parts)
    if kind == "or_expression":
        return _any(*(_needed(child, found) for child in node["children"]))
    if kind != "comparator":
        return None
    op = node["value"]
    left, right = node["children"]
    if left.get("type") == "literal":
        left, right = right, left
    if op in ("lt", "lte", "gt", "gte"):  # null on either side gives null
        return _all(_present(left, found), _present(right, found))
    if right.get("type") == "literal":
        value = right.get("value")
        path = _present(left, found)
        if op == "eq" and value is not None and path is not None:  # the key holds it
            return _all(path, found(value) if isinstance(value, str) else None)
        if op == "ne" and value is None:  # `x != null`: x holds a value
            return path
        return None
    if op == "ne":  # two paths: null != null is false, so one of them holds a value
        return _any(_present(left, found), _present(right, found))
    return None  # two paths equal: both may be missing


def _present(node: dict[str, Any], found: Callable[[str], str | None]) -> str | None:
    """``found`` of every key of a path of fields (``a``, ``a.b``), or None."""
    if node.get("type") == "field":
        return found(node["value"])
    if node.get("type") == "subexpression":
        return _all(*(_present(child, found) for child in node["children"])) if all(
            child.get("type") == "field" for child in node["children"]) else None
    return None


def _all(*parts: str | None) -> str | None:
    """Every condition known (None: not known), or None when none is."""
    kept = [part for part in parts if part is not None]
    return " AND ".join(kept) if kept else None


def _any(*parts: str | None) -> str | None:
    """One of the conditions, or None when one of them is not known (it may hold where
    no text is found)."""
    if None in parts:
        return None
    return "(" + " OR ".join(parts) + ")"  # type: ignore[arg-type]


@functools.lru_cache(maxsize=64)
def _compile(expression: str) -> CompiledQuery | None:
    from .jmes_sql import compile_query

    return compile_query(expression)


#: Characters jsonb text writes escaped: a string holding one is not found verbatim.
_JSONB_ESCAPED = re.compile(r'["\\\x00-\x1f]')


def is_truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, and empty strings, lists and objects are false."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict, tuple)) and not value:
        return False
    return True
