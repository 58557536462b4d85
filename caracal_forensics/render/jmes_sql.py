"""``--query`` JMESPath compiled to DuckDB SQL: the output line of each event, computed by
the engine instead of a Python dict per event.

:func:`compile_query` turns an expression into a :class:`CompiledQuery`: a SQL expression
over the event columns (``model.EVENT_SCHEMA`` names: the ``events`` view, or
``filters.select_sql``'s subquery) that yields, per event, the line ``render.query.Query``
prints for it (byte for byte), or NULL when it prints nothing; and a SQL condition that is
TRUE for the events the SQL cannot vouch for, which the caller hands to the evaluator
(``Query.lines``) instead. That happens only on values the engine would print or compare
differently from Python, and it always gives the evaluator's answer (or its error):

- a decimal number (``12.50``) printed from *inside* a jsonb field (DuckDB re-prints it as
  ``12.5``); a whole jsonb field is spliced as stored and never needs this;
- a string printed from inside a jsonb field that holds a ``\\u00XX`` escape (DuckDB writes
  its hex in capitals);
- equality of two non-empty arrays or objects (Python's ``==`` has quirks: ``[1] == [true]``);
- a number compared with an integer longer than 15 digits (Python compares exactly);
- an error of the evaluator: ``'a' < 1``, ``length(null)``, ``contains(1, ...)``,
  ``starts_with`` of a non-string.

An expression with something not compiled here (``sort_by``, ``*`` over an object,
slices, most functions, ``@`` compared or measured) is not compiled at all
(``compile_query`` returns None): the caller runs the evaluator for it, unchanged.

How values are held: each JMESPath value is a :class:`_V` that can give its output text
(``dumps`` of the evaluator's value), its truth, whether it is ``true``, and a DuckDB JSON
value for computing with it. Text fields stay VARCHAR, whole jsonb fields stay their
stored text (printed verbatim), values extracted from jsonb are DuckDB JSON (printed from
DuckDB's compact form with the evaluator's ``", "`` / ``": "`` spacing restored).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

from ..model import ABSENT_FIELD
from .records import (
    JSON_FIELDS,
    OCCURRED_AT_SQL,
    OPTIONAL_FIELDS,
    RECORD_FIELDS,
    SOURCE_COLUMN,
)

if TYPE_CHECKING:
    import duckdb

    from .query import Query

__all__ = ["CompiledQuery", "compile_query", "compiled_lines", "record_line_sql"]

#: Longest SQL a compiled expression may take (``&&``/``||`` chains repeat their operands).
MAX_SQL = 400_000


class Unsupported(Exception):
    """The expression holds something this compiler does not translate."""


@dataclass(frozen=True)
class CompiledQuery:
    """A ``--query`` expression as DuckDB SQL over the event columns.

    ``line_sql`` (VARCHAR) is the line the evaluator prints for the event (no newline),
    NULL when it prints nothing. ``fallback_sql`` (BOOLEAN, never NULL) is TRUE for
    events whose line only the evaluator can give: for those, ignore ``line_sql`` and
    run ``Query(expression).lines`` on the event's row (it prints the line, or raises
    the evaluator's error). Both read the event columns (``columns`` names those) and
    the columns ``lets`` adds: evaluate them over ``relation(rel)``, not ``rel`` itself
    (``select_sql`` does). ``always_exact``: no event is ever left to the evaluator."""

    expression: str
    line_sql: str
    fallback_sql: str
    columns: tuple[str, ...]
    lets: tuple[tuple[str, str], ...] = ()
    #: (a jsonb column, the lets that read it and nothing else): what ``relation`` can
    #: compute once per distinct stored text of that column (``per_text``)
    per_text_lets: tuple[str, tuple[str, ...]] | None = None
    #: BOOLEAN, never NULL: TRUE for every event whose ``line_sql`` is not NULL (the
    #: value's truth, without building its text; an event ``fallback_sql`` marks is
    #: decided by the evaluator whatever this says)
    prints_sql: str = "true"

    @property
    def lists(self) -> bool:
        """True when a let computes over the elements of a list (a lambda per event):
        what costs DuckDB more per vector than per event (``bulk.ordered_batches``'
        ``compact``)."""
        return any("lambda " in sql for _name, sql in self.lets)

    @property
    def always_exact(self) -> bool:
        """True when no event ever needs the evaluator (``fallback_sql`` is FALSE)."""
        return self.fallback_sql == "false"

    def relation(self, relation: str = "events", per_text: bool = False) -> str:
        """``relation`` (a view name or ``(SELECT ...)``) with the columns ``line_sql`` and
        ``fallback_sql`` read besides the event columns: the lists they use several
        times, computed once per event (``lets``), each in a subquery of its own.
        ``per_text``: the lets of ``per_text_lets`` computed once per distinct text of
        their column and joined to the events (a field of few texts, such as the
        determining policies, no longer parsed again for every event)."""
        lets = self.lets
        if per_text and self.per_text_lets is not None:
            column, names = self.per_text_lets
            texts = f"(SELECT DISTINCT {column} FROM {relation})"
            for name, sql in lets:
                if name in names:
                    texts = f"(SELECT *, {sql} AS {name} FROM {texts})"
            relation = (f"(SELECT __event.*, __text.* EXCLUDE ({column}) FROM {relation} "
                        f"AS __event LEFT JOIN {texts} AS __text ON "
                        f"__event.{column} IS NOT DISTINCT FROM __text.{column})")
            lets = tuple((name, sql) for name, sql in lets if name not in names)
        for name, sql in lets:
            relation = f"(SELECT *, {sql} AS {name} FROM {relation})"
        return relation

    def select_sql(self, relation: str = "events", order_by: str | None = None) -> str:
        """``SELECT line, fallback FROM relation ORDER BY order_by``. Give the order here:
        the toolkit's connections do not keep the order of a subquery (they run with
        ``preserve_insertion_order`` off), and ``relation`` becomes one."""
        order = f" ORDER BY {order_by}" if order_by else ""
        return (f"SELECT {self.line_sql} AS line, {self.fallback_sql} AS fallback "
                f"FROM {self.relation(relation)}{order}")


def compile_query(expression: str) -> CompiledQuery | None:
    """The expression compiled to SQL, or None when it (or part of it) is not compiled
    here, or is not valid JMESPath (``render.query.Query`` then says why)."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    from .jmes import conjuncts

    try:
        parsed = jmespath.compile(expression).parsed
    except (JMESPathError, RecursionError):
        return None
    except Exception:  # jmespath's lexer raises plain errors on some input
        return None
    compiler = _Compiler()
    operands = list(conjuncts(parsed))  # of a top-level && chain, each when compiled
    compiler.watch = {id(node): None for node in operands} if len(operands) > 1 else {}
    try:
        result = compiler.build(parsed, _RecordV(compiler))
        text = result.text_when_truthy()
        then = text.expr
        is_true = result.is_true_when_truthy() if "boolean" in result.types else "false"
        if is_true != "false":  # ``true`` prints the event's --json line
            compiler.columns.update(_EVENT_COLUMNS)
            then = f"CASE WHEN {is_true} THEN {record_line_sql()} ELSE {text.expr} END"
        truthy = result.truthy()
        line = f"CASE WHEN {truthy} THEN {then} END"
        prints = f"coalesce({truthy}, false)"
    except (Unsupported, RecursionError):
        return None
    printed = f"CASE WHEN {truthy} THEN {text.fb} ELSE false END" if text.fb else None
    parsed_columns = [SOURCE_COLUMN[name] for name in _parsed_fields(parsed)]
    fallback = _or(result.fb, printed, *(_too_deep(column) for column in parsed_columns))
    fallback_sql = f"coalesce({fallback}, false)" if fallback else "false"
    starts = [compiler.watch[id(node)] for node in operands] if compiler.watch else None
    lets = _guarded(result, compiler.lets,
                    None if starts is None or None in starts else starts)
    valid = _valid(parsed_columns)
    if valid:  # nothing reads an invalid field's JSON: its event goes to the evaluator
        # tested once per event (json_valid parses the whole field), in a column read by
        # the line, the fallback and every let
        line = f"CASE WHEN {_VALID} THEN {line} END"
        prints = f"CASE WHEN {_VALID} THEN {prints} ELSE false END"
        fallback_sql = f"CASE WHEN {_VALID} THEN {fallback_sql} ELSE true END"
        lets = ((_VALID, valid),
                *((name, f"CASE WHEN {_VALID} THEN {sql} END") for name, sql in lets))
    if len(line) + len(fallback_sql) > MAX_SQL:
        return None
    compiler.columns.update(parsed_columns)
    columns = tuple(c for c in _EVENT_COLUMNS if c in compiler.columns)
    return CompiledQuery(expression, line, fallback_sql, columns, lets, _per_text(lets),
                         prints)


#: A SQL string literal (its words are no column's).
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def _per_text(lets: tuple[tuple[str, str], ...]) -> tuple[str, tuple[str, ...]] | None:
    """The jsonb column that most lets read alone (directly or through other lets that
    do), and those lets; None when no let reads one jsonb column and nothing else."""
    jsonb = {SOURCE_COLUMN[name] for name in JSON_FIELDS}
    read: dict[str, str | None] = {}  # let -> the one jsonb column it reads, or None
    for name, sql in lets:
        words = set(_WORD.findall(_LITERAL.sub("''", sql)))
        sources = words & set(_EVENT_COLUMNS)
        for other in words & read.keys():
            sources.add(read[other] or "")
        read[name] = sources.pop() if len(sources) == 1 and sources <= jsonb else None
    counts = Counter(column for name, column in read.items()
                     if column is not None and name != _VALID)
    if not counts:  # json_valid alone is not worth a join
        return None
    column = counts.most_common(1)[0][0]
    return column, tuple(name for name, one in read.items() if one == column)


#: The let column holding ``_valid``'s test (computed before the other lets).
_VALID = "_jmes_valid"


def _valid(columns: list[str]) -> str | None:
    """SQL: every jsonb field of ``columns`` holds valid JSON (or none). A reader may let
    a corrupt field through; DuckDB's JSON functions would fail the whole query on it
    ("Malformed JSON"), a stored text spliced would print it: the evaluator, which
    parses the fields it reads, says which event and line instead."""
    if not columns:
        return None
    return " AND ".join(f"coalesce(json_valid({column}), true)" for column in columns)


def _guarded(result: _V, lets: list[tuple[str, str]],
             starts: list[int] | None) -> tuple[tuple[str, str], ...]:
    """The lets of a top-level ``a && b && ...`` chain, each computed only for the events
    whose operands before the one that made it are truthy: an operand is read only then
    (``diagnostics[].step_up_required`` after ``diagnostics[?...]``: for the events with
    such a diagnostic, not every deny). ``starts``: how many lets there were when each
    operand was compiled (a later operand reusing a let finds it guarded less, never
    more). The guard of operand k reads the truthiness of the operands before it, so
    only lets made before operand k."""
    if not isinstance(result, _AndV) or not lets or starts is None \
            or len(starts) != len(result.branches) + 1:
        return tuple(lets)
    guarded = list(lets)
    truths = [value.truthy() for _, value in result.branches]
    for k in range(1, len(starts)):
        end = starts[k + 1] if k + 1 < len(starts) else len(lets)
        whens = " ".join(f"WHEN NOT {t} THEN false" for t in truths[:k])
        guard = f"CASE {whens} ELSE true END"  # CASE: the operands in order, as the chain
        for index in range(starts[k], end):
            name, sql = lets[index]
            guarded[index] = (name, f"CASE WHEN {guard} THEN {sql} END")
    return tuple(guarded)


def _parsed_fields(parsed: dict[str, Any]) -> list[str]:
    """The jsonb fields the evaluator parses for the expression (``Query.fields``)."""
    from .jmes import nodes as _nodes

    nodes = list(_nodes(parsed))
    if any(node.get("type") in ("current", "value_projection") for node in nodes):
        return list(JSON_FIELDS)
    names = {node.get("value") for node in nodes if node.get("type") == "field"}
    return [name for name in JSON_FIELDS if name in names]


#: jsonb text shorter than this nests less deeply than Python's parser follows (each
#: level takes two characters, and Python follows several hundred).
_SHALLOW_TEXT = 600


def _too_deep(column: str) -> str:
    """The stored jsonb may nest too deeply for the evaluator's parser, which then raises
    (``records.too_deep``): left to it. Counts brackets of long text only."""
    # CASE, not AND: DuckDB evaluates both sides of AND for every row
    return (f"CASE WHEN strlen({column}) >= {_SHALLOW_TEXT} THEN strlen({column}) - "
            f"strlen(regexp_replace({column}, '[\\[{{]', '', 'g')) >= {_SHALLOW_TEXT // 2} "
            f"ELSE false END")


# ---------------------------------------------------------------------------------------
# SQL helpers

class _Any(str):
    """SQL ``a OR b OR ...`` that remembers its operands, so that ``_or`` of conditions
    holding the same operand lists it once (values carry their operands' conditions)."""

    parts: tuple[str, ...]


def _or(*conditions: str | None) -> str | None:
    """The disjunction of the conditions given (None: none given)."""
    found: dict[str, None] = {}
    for c in conditions:
        if not c or c == "false":
            continue
        for part in (c.parts if isinstance(c, _Any) else (c,)):
            found[part] = None
    if not found:
        return None
    if len(found) == 1:
        return next(iter(found))
    joined = _Any("(" + " OR ".join(found) + ")")
    joined.parts = tuple(found)
    return joined


_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|'[^']*'")


def _group(sql: str) -> str:
    """``sql`` in parentheses unless it is a name or a string literal (operators nest)."""
    return sql if _SIMPLE.fullmatch(sql) else f"({sql})"


def _concat(parts: list[str]) -> str:
    """SQL joining the texts ``parts`` (each never NULL: a value's ``text()``) in one
    ``concat``: a chain of ``||`` builds every intermediate string (2.5x the time over a
    line of a dozen parts)."""
    return f"concat({', '.join(parts)})"


def _lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _escape_slow(x: str) -> str:
    """encode_basestring in SQL (for text holding a character JSON escapes), character
    by character: short, where 34 nested replace() made every text field's SQL some
    1,000 characters that DuckDB binds and plans in each statement (a --json record's
    line: 50 ms of planning for a statement that reads nothing)."""
    c = _Compiler.fresh()
    short = " ".join(f"WHEN ord({c}) = {code} THEN '{escaped}'" for code, escaped in
                     ((8, "\\b"), (9, "\\t"), (10, "\\n"), (12, "\\f"), (13, "\\r")))
    each = (f"CASE WHEN {c} = '\"' THEN '\\\"' WHEN {c} = '\\' THEN '\\\\' "
            f"WHEN ord({c}) >= 32 THEN {c} {short} ELSE printf('\\u%04x', ord({c})) END")
    return (f"('\"' || array_to_string(list_transform(string_split({x}, ''), "
            f"lambda {c}: {each}), '') || '\"')")


def _quote(x: str) -> str:
    """SQL giving ``encode_basestring(x)`` (``'null'`` for NULL): the evaluator's string.
    DuckDB's to_json escapes alike, but for the hex of ``\\u00XX`` (capitals): text with
    such an escape takes the slow way."""
    quoted = f"CAST(to_json({x}) AS VARCHAR)"
    return (f"CASE WHEN {x} IS NULL THEN 'null' "
            f"WHEN contains({quoted}, '\\u00') THEN {_escape_slow(x)} ELSE {quoted} END")


#: Commas and colons outside strings (DuckDB's compact JSON), each with the text before it.
_SEPARATORS = r'((?:"(?:[^"\\]|\\.)*"|[^",:])*)([,:]|$)'
#: A number with a fraction or exponent outside strings in compact JSON.
_DECIMAL = r'^(?:"(?:[^"\\]|\\.)*"|[^"])*?[0-9][.eE]'


def _respace(s: str) -> str:
    """Compact JSON text with the evaluator's separators (``", "``, ``": "``)."""
    return f"left(regexp_replace({s} || ' ', {_lit(_SEPARATORS)}, '\\1\\2 ', 'g'), -2)"


def _json_text(j: str) -> Sql:
    """The evaluator's text of a DuckDB JSON value, and when it cannot be vouched for."""
    # compact JSON: its first character tells its type
    s = f"CAST({j} AS VARCHAR)"
    first = f"left({s}, 1)"
    expr = (f"CASE WHEN {j} IS NULL THEN 'null' WHEN {first} IN ('[', '{{') AND strlen({s}) > 2 "
            f"THEN {_respace(s)} ELSE {s} END")
    container = f"contains({s}, '\\u00') OR regexp_matches({s}, {_lit(_DECIMAL)})"
    fb = (f"CASE {first} WHEN '\"' THEN contains({s}, '\\u00') WHEN '[' THEN {container} "
          f"WHEN '{{' THEN {container} WHEN 't' THEN false WHEN 'f' THEN false "
          f"WHEN 'n' THEN false "
          f"ELSE contains({s}, '.') OR contains({s}, 'e') OR contains({s}, 'E') END")
    return Sql(expr, fb)


def _spread(element: str) -> str:
    """A JSON value as the LIST a flatten makes of it: an array's elements, else itself."""
    return (f"CASE WHEN starts_with(CAST({element} AS VARCHAR), '[') "
            f"THEN json_extract({element}, '$[*]') ELSE [{element}] END")


def _may_nest(raw: str) -> str:
    """Whether a stored jsonb array may hold an array: a ``[`` after its own (else a
    flatten of its elements is the elements themselves)."""
    return f"contains(substr({raw}, 2), '[')"


def _elements(text: str, j: str) -> str:
    """The elements of a JSON array as a LIST of JSON (NULL when it is no array), given
    its text (compact, or stored jsonb: an array begins with ``[``)."""
    return f"CASE WHEN starts_with({text}, '[') THEN json_extract({j}, '$[*]') END"


def _jtype(j: str) -> str:
    return f"coalesce(json_type({j}), 'NULL')"


_NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')"


def _long_int(j: str) -> str:
    """A JSON number that Python holds as an int too long to compare exactly as a double."""
    s = f"CAST({j} AS VARCHAR)"
    return f"(length({s}) > 15 AND NOT regexp_matches({s}, '[.eE]'))"


_NUMBER_START = "('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')"


def _json_eq(a: str, b: str) -> Sql:
    """JMESPath ``a == b`` of two DuckDB JSON values (``_equals``; SQL NULL is null).

    DuckDB prints equal values alike (strings with the same escapes, numbers alike), so
    equal text is equal values; values printed differently are equal only when both are
    numbers of one value (``1`` and ``1.0``), or arrays or objects (key order, ``1`` and
    ``true`` inside): those are left to the evaluator when both are not empty."""
    sa, sb = f"coalesce(CAST({a} AS VARCHAR), 'null')", f"coalesce(CAST({b} AS VARCHAR), 'null')"
    numbers = f"left({sa}, 1) IN {_NUMBER_START} AND left({sb}, 1) IN {_NUMBER_START}"
    expr = (f"CASE WHEN {sa} = {sb} THEN true WHEN {numbers} "
            f"THEN coalesce(TRY_CAST({sa} AS DOUBLE) = TRY_CAST({sb} AS DOUBLE), false) "
            f"ELSE false END")
    # a missing value (SQL NULL: the commonest case, a key an element lacks) is null,
    # which the SQL compares exactly: settled before the text of either is computed
    fb = (f"CASE WHEN {a} IS NULL OR {b} IS NULL THEN false WHEN {sa} = {sb} THEN false "
          f"WHEN {numbers} "
          f"THEN {_long_int(a)} OR {_long_int(b)} "
          f"WHEN left({sa}, 1) IN ('[', '{{') AND left({sa}, 1) = left({sb}, 1) "
          f"THEN strlen({sa}) > 2 AND strlen({sb}) > 2 ELSE false END")
    return Sql(expr, fb)


def _json_py_eq(a: str, b: str) -> Sql:
    """Python's ``a == b`` (what ``in`` uses, for ``contains``): as ``_json_eq``, but a
    boolean equals the number 1 or 0."""
    ta, tb = _jtype(a), _jtype(b)
    eq = _json_eq(a, b)
    expr = (f"CASE WHEN {ta} = 'BOOLEAN' AND {tb} IN {_NUMBER_TYPES} "
            f"THEN TRY_CAST({b} AS DOUBLE) = CASE WHEN CAST({a} AS VARCHAR) = 'true' "
            f"THEN 1 ELSE 0 END "
            f"WHEN {tb} = 'BOOLEAN' AND {ta} IN {_NUMBER_TYPES} "
            f"THEN TRY_CAST({a} AS DOUBLE) = CASE WHEN CAST({b} AS VARCHAR) = 'true' "
            f"THEN 1 ELSE 0 END ELSE {eq.expr} END")
    return Sql(expr, eq.fb)


_SQL_OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _json_order(a: str, b: str, op: str) -> Sql:
    """JMESPath ``a < b`` (etc.) of two JSON values: numbers and strings, else null."""
    ta, tb = _jtype(a), _jtype(b)
    sql_op = _SQL_OPS[op]
    expr = (f"CASE WHEN {ta} IN {_NUMBER_TYPES} AND {tb} IN {_NUMBER_TYPES} "
            f"THEN TRY_CAST({a} AS DOUBLE) {sql_op} TRY_CAST({b} AS DOUBLE) "
            f"WHEN {ta} = 'VARCHAR' AND {tb} = 'VARCHAR' "
            f"THEN ({a} ->> '$') {sql_op} ({b} ->> '$') END")
    fb = (f"CASE WHEN {ta} IN {_NUMBER_TYPES} AND {tb} IN {_NUMBER_TYPES} "
          f"THEN {_long_int(a)} OR {_long_int(b)} "
          f"ELSE ({ta} = 'VARCHAR' AND {tb} IN {_NUMBER_TYPES}) "
          f"OR ({tb} = 'VARCHAR' AND {ta} IN {_NUMBER_TYPES}) END")
    return Sql(expr, fb)


def _json_path_key(name: str) -> str:
    if not name or "\x00" in name:
        raise Unsupported("an empty key")  # DuckDB's JSON paths cannot name it
    return "$." + '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list_any(src: str, var: str, condition: str) -> str:
    """TRUE when ``condition`` (over ``var``) holds for an element of the list ``src``."""
    return f"coalesce(list_bool_or(list_transform({src}, lambda {var}: {condition})), false)"


@dataclass(frozen=True)
class Sql:
    """A SQL expression and the condition (or None) under which the evaluator must decide."""

    expr: str
    fb: str | None = None


# ---------------------------------------------------------------------------------------
# Values

ALL_TYPES = frozenset({"string", "number", "boolean", "null", "array", "object"})


class _V:
    """A JMESPath value held in SQL. ``fb``: when computing it needs the evaluator."""

    types: frozenset[str] = ALL_TYPES
    fb: str | None = None

    def is_null(self) -> str:
        raise NotImplementedError

    def truthy(self) -> str:
        raise NotImplementedError

    def is_true(self) -> str:
        return "false"

    def text(self) -> Sql:
        raise NotImplementedError

    def text_when_truthy(self) -> Sql:
        """``text()``, for when the value is known to be truthy."""
        return self.text()

    def is_true_when_truthy(self) -> str:
        """``is_true()``, for when the value is known to be truthy."""
        return self.is_true()

    def json(self) -> Sql:
        """A DuckDB JSON value (compact; SQL NULL for null) to compute with."""
        raise NotImplementedError

    def get(self, name: str) -> _V:
        return NULL

    def index(self, position: int) -> _V:
        return NULL

    def as_list(self) -> _ListV | None:
        """The value's elements when it is a list (None: it never is)."""
        return None

    def string(self) -> str | None:
        """SQL VARCHAR when the value is a string (NULL otherwise); None: not known."""
        return None


class _NullV(_V):
    types = frozenset({"null"})

    def is_null(self) -> str:
        return "true"

    def truthy(self) -> str:
        return "false"

    def text(self) -> Sql:
        return Sql("'null'")

    def json(self) -> Sql:
        return Sql("CAST(NULL AS JSON)")


NULL = _NullV()


class _StrV(_V):
    types = frozenset({"string", "null"})

    def __init__(self, sql: str, fb: str | None = None, literal: str | None = None,
                 plain: bool = False) -> None:
        self.sql, self.fb, self.literal = _group(sql), fb, literal
        self.plain = plain  # never holds a character JSON escapes
        if literal is not None:
            self.types = frozenset({"string"})

    def is_null(self) -> str:
        return "false" if self.literal is not None else f"({self.sql} IS NULL)"

    def truthy(self) -> str:
        if self.literal is not None:
            return "true" if self.literal else "false"
        return f"coalesce({self.sql} <> '', false)"

    def text(self) -> Sql:
        if self.literal is not None:
            return Sql(_lit(encode_basestring(self.literal)))
        if self.plain:
            return Sql(f"coalesce('\"' || {self.sql} || '\"', 'null')")
        return Sql(_quote(self.sql))

    def json(self) -> Sql:
        return Sql(f"to_json({self.sql})")

    def string(self) -> str:
        return self.sql


class _IntV(_V):
    types = frozenset({"number", "null"})

    def __init__(self, sql: str, fb: str | None = None) -> None:
        self.sql, self.fb = _group(sql), fb

    def is_null(self) -> str:
        return f"({self.sql} IS NULL)"

    def truthy(self) -> str:
        return f"({self.sql} IS NOT NULL)"

    def text(self) -> Sql:
        return Sql(f"coalesce(CAST({self.sql} AS VARCHAR), 'null')")

    def json(self) -> Sql:
        return Sql(f"to_json({self.sql})")


class _BoolV(_V):
    types = frozenset({"boolean", "null"})

    def __init__(self, sql: str, fb: str | None = None, nullable: bool = True) -> None:
        self.sql, self.fb = _group(sql), fb
        if not nullable:
            self.types = frozenset({"boolean"})

    def is_null(self) -> str:
        return f"({self.sql} IS NULL)"

    def truthy(self) -> str:
        return f"coalesce({self.sql}, false)"

    def is_true(self) -> str:
        return f"coalesce({self.sql}, false)"

    def text(self) -> Sql:
        return Sql(f"CASE WHEN {self.sql} THEN 'true' WHEN NOT {self.sql} THEN 'false' "
                   f"ELSE 'null' END")

    def json(self) -> Sql:
        return Sql(f"to_json({self.sql})")


class _JsonV(_V):
    """A DuckDB JSON value (compact text, numbers as DuckDB re-prints them). ``origin``:
    the (JSON, path) it was extracted by, when it was."""

    def __init__(self, sql: str, fb: str | None = None,
                 origin: tuple[str, str] | None = None) -> None:
        self.sql, self.fb, self.origin = _group(sql), fb, origin

    def _s(self) -> str:
        return f"CAST({self.sql} AS VARCHAR)"

    def is_null(self) -> str:
        return f"coalesce({self._s()} = 'null', true)"

    def truthy(self) -> str:
        return f"coalesce({self._s()} NOT IN ('null', 'false', '\"\"', '[]', '{{}}'), false)"

    def is_true(self) -> str:
        return f"coalesce({self._s()} = 'true', false)"

    def text(self) -> Sql:
        return _json_text(self.sql)

    def json(self) -> Sql:
        return Sql(self.sql)

    def get(self, name: str) -> _V:
        path = _lit(_json_path_key(name))
        return _JsonV(f"json_extract({self.sql}, {path})", self.fb, (self.sql, path))

    def index(self, position: int) -> _V:
        path = f"$[{position}]" if position >= 0 else f"$[#-{-position}]"
        return _JsonV(f"json_extract({self.sql}, {_lit(path)})", self.fb)

    def as_list(self) -> _ListV:
        return _ListV(_elements(f"CAST({self.sql} AS VARCHAR)", self.sql), _JsonV, self.fb)

    def string(self) -> str:
        return f"CASE WHEN json_type({self.sql}) = 'VARCHAR' THEN {self.sql} ->> '$' END"


class _RawV(_V):
    """A whole jsonb field: its stored text, which is what the evaluator prints.
    ``let``: computes SQL once per event (``_Compiler.let``): a member read from the
    field is extracted once, however often the expression uses it (each extraction
    parses the whole stored text)."""

    def __init__(self, column: str, let: Callable[[str], str] = lambda sql: sql) -> None:
        self.column = column
        self.let = let

    def _parsed(self) -> _JsonV:
        return _JsonV(f"json({self.column})")

    def is_null(self) -> str:
        return f"coalesce({self.column} = 'null', true)"

    def truthy(self) -> str:
        return (f"coalesce({self.column} NOT IN ('null', 'false', '\"\"', '[]', '{{}}'), "
                f"false)")

    def is_true(self) -> str:
        return f"coalesce({self.column} = 'true', false)"

    def text(self) -> Sql:
        return Sql(f"coalesce({self.column}, 'null')")

    def json(self) -> Sql:
        return self._parsed().json()

    def get(self, name: str) -> _V:
        path = _lit(_json_path_key(name))
        return _JsonV(self.let(f"json_extract({self.column}, {path})"),
                      origin=(self.column, path))

    def index(self, position: int) -> _V:
        return self._parsed().index(position)

    def as_list(self) -> _ListV:
        elements = _ListV(_elements(self.column, self.column), _JsonV)
        elements.raw = self.column
        return elements

    def string(self) -> str:
        return self._parsed().string()


class _LiteralV(_V):
    """A JSON literal that is no string, integer, boolean or null (float, array, object)."""

    def __init__(self, value: Any) -> None:
        from .jsonl import dumps

        self.value = value
        self.types = frozenset({_type_name(value)})
        self._text = dumps(value)
        self._json = json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def is_null(self) -> str:
        return "false"

    def truthy(self) -> str:
        return "false" if self.value in ([], {}) else "true"

    def text(self) -> Sql:
        return Sql(_lit(self._text))

    def json(self) -> Sql:
        return Sql(f"json({_lit(self._json)})")  # printed as DuckDB prints data

    def get(self, name: str) -> _V:
        if isinstance(self.value, dict):
            return _literal(self.value.get(name))
        return NULL

    def index(self, position: int) -> _V:
        if isinstance(self.value, list) and -len(self.value) <= position < len(self.value):
            return _literal(self.value[position])
        return NULL

    def as_list(self) -> _ListV | None:
        return _JsonV(self.json().expr).as_list() if isinstance(self.value, list) else None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _literal(value: Any) -> _V:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return _BoolV("true" if value else "false", nullable=False)
    if isinstance(value, str):
        return _StrV(_lit(value), literal=value)
    if isinstance(value, int) and abs(value) < 2**63:
        return _IntV(f"CAST({value} AS BIGINT)")
    if isinstance(value, float) and not math.isfinite(value):
        raise Unsupported("a non-finite number literal")
    return _LiteralV(value)


class _ObjV(_V):
    """A multi-select hash: null when the current value is null (``null_sql``)."""

    types = frozenset({"object", "null"})

    def __init__(self, items: dict[str, _V], null_sql: str) -> None:
        self.items, self.null_sql = items, null_sql
        self.fb = _or(*(v.fb for v in items.values()))

    def is_null(self) -> str:
        return self.null_sql

    def truthy(self) -> str:
        return f"(NOT {self.null_sql})"

    def text(self) -> Sql:
        parts, fbs = [], []
        for i, (key, value) in enumerate(self.items.items()):
            t = value.text()
            prefix = (", " if i else "{") + encode_basestring(key) + ": "
            parts += [_lit(prefix), t.expr]
            fbs.append(t.fb)
        body = _concat([*parts, "'}'"])
        return Sql(f"CASE WHEN {self.null_sql} THEN 'null' ELSE {body} END", _or(*fbs))

    def json(self) -> Sql:
        args, fbs = [], []
        for key, value in self.items.items():
            j = value.json()
            args += [_lit(key), j.expr]
            fbs.append(j.fb)
        return Sql(f"CASE WHEN NOT {self.null_sql} THEN json_object({', '.join(args)}) END",
                   _or(*fbs))

    def get(self, name: str) -> _V:
        if name not in self.items:
            return NULL
        return _CaseV([(self.null_sql, NULL)], self.items[name])


class _TupleV(_V):
    """A multi-select list: null when the current value is null."""

    types = frozenset({"array", "null"})

    def __init__(self, items: list[_V], null_sql: str) -> None:
        self.items, self.null_sql = items, null_sql
        self.fb = _or(*(v.fb for v in items))

    def is_null(self) -> str:
        return self.null_sql

    def truthy(self) -> str:
        return f"(NOT {self.null_sql})"

    def text(self) -> Sql:
        texts = [v.text() for v in self.items]
        parts = ["'['"]
        for i, t in enumerate(texts):
            parts += [*(["', '"] if i else []), t.expr]
        body = _concat([*parts, "']'"])
        return Sql(f"CASE WHEN {self.null_sql} THEN 'null' ELSE {body} END",
                   _or(*(t.fb for t in texts)))

    def _elements(self) -> Sql:
        js = [v.json() for v in self.items]
        return Sql(f"CASE WHEN NOT {self.null_sql} THEN [{', '.join(j.expr for j in js)}] END",
                   _or(*(j.fb for j in js)))

    def json(self) -> Sql:
        elements = self._elements()
        return Sql(f"to_json({elements.expr})", elements.fb)

    def index(self, position: int) -> _V:
        if not -len(self.items) <= position < len(self.items):
            return NULL
        return _CaseV([(self.null_sql, NULL)], self.items[position])

    def as_list(self) -> _ListV:
        elements = self._elements()
        return _ListV(elements.expr, _JsonV, _or(self.fb, elements.fb))


class _ListV(_V):
    """A list: ``src`` a DuckDB LIST (NULL: the value is null), ``elem`` the value of one of
    its elements (given the SQL for the element)."""

    types = frozenset({"array", "null"})
    #: the stored jsonb text whose array ``src`` holds the elements of, when it is one
    raw: str | None = None

    def __init__(self, src: str, elem: Callable[[str], _V], fb: str | None = None,
                 element_fb: Callable[[str], str | None] | None = None) -> None:
        self.src, self.elem = src, elem
        self.fb = fb
        # the fallback of computing each element, over the list
        if element_fb is None:
            element_fb = lambda var: elem(var).fb  # noqa: E731
        var = _Compiler.fresh()
        inner = element_fb(var)
        if inner:
            self.fb = _or(self.fb, _list_any(src, var, inner))

    def is_null(self) -> str:
        return f"({self.src} IS NULL)"

    def truthy(self) -> str:
        return f"coalesce(len({self.src}) > 0, false)"

    def text(self) -> Sql:
        var = _Compiler.fresh()
        t = self.elem(var).text()
        body = f"array_to_string(list_transform({self.src}, lambda {var}: {t.expr}), ', ')"
        fb = _list_any(self.src, var, t.fb) if t.fb else None
        return Sql(f"coalesce('[' || {body} || ']', 'null')", fb)

    def json_list(self) -> Sql:
        """The elements as a DuckDB LIST of JSON."""
        var = _Compiler.fresh()
        j = self.elem(var).json()
        if isinstance(self.elem(var), _JsonV) and j.expr == var:
            return Sql(self.src)
        fb = _list_any(self.src, var, j.fb) if j.fb else None
        return Sql(f"list_transform({self.src}, lambda {var}: {j.expr})", fb)

    def json(self) -> Sql:
        elements = self.json_list()
        return Sql(f"to_json({elements.expr})", elements.fb)

    def index(self, position: int) -> _V:
        return self.elem(f"list_extract({self.src}, {position + 1 if position >= 0 else position})")

    def as_list(self) -> _ListV:
        return self


class _CaseV(_V):
    """The first branch whose condition holds, else ``default`` (``&&``, ``||``,
    ``not_null``)."""

    def __init__(self, branches: list[tuple[str, _V]], default: _V) -> None:
        self.branches, self.default = branches, default
        self.types = frozenset().union(default.types, *(v.types for _, v in branches))
        self.fb = _or(default.fb, *(v.fb for _, v in branches))

    def _case(self, pick: Callable[[_V], str]) -> str:
        whens = " ".join(f"WHEN {c} THEN {pick(v)}" for c, v in self.branches)
        return f"CASE {whens} ELSE {pick(self.default)} END"

    def _case_sql(self, pick: Callable[[_V], Sql]) -> Sql:
        fbs: list[str | None] = []

        def expr(v: _V) -> str:
            s = pick(v)
            fbs.append(s.fb)
            return s.expr

        return Sql(self._case(expr), _or(*fbs))

    def is_null(self) -> str:
        return self._case(lambda v: v.is_null())

    def truthy(self) -> str:
        return self._case(lambda v: v.truthy())

    def is_true(self) -> str:
        return self._case(lambda v: v.is_true())

    def text(self) -> Sql:
        return self._case_sql(lambda v: v.text())

    def json(self) -> Sql:
        return self._case_sql(lambda v: v.json())

    def _map(self, step: Callable[[_V], _V]) -> _V:
        return _CaseV([(c, step(v)) for c, v in self.branches], step(self.default))

    def get(self, name: str) -> _V:
        return self._map(lambda v: v.get(name))

    def index(self, position: int) -> _V:
        return self._map(lambda v: v.index(position))

    def as_list(self) -> _ListV | None:
        if not self.types & {"array"}:
            return None
        j = self.json()
        return _JsonV(j.expr, _or(self.fb, j.fb)).as_list()

    def string(self) -> str | None:
        j = self.json()
        return None if j.fb else _JsonV(j.expr).string()


_EVENT_COLUMNS = (*SOURCE_COLUMN.values(), ABSENT_FIELD)


def _absent(field: str) -> str:
    # NULL (a row carrying every field) short-cuts the concatenation
    return f"coalesce(contains(',' || {ABSENT_FIELD} || ',', ',{field},'), false)"


def _field_sql(field: str) -> str:
    column = SOURCE_COLUMN[field]
    if field == "occurred_at":
        return OCCURRED_AT_SQL
    if field in OPTIONAL_FIELDS:
        return f"CASE WHEN {_absent(field)} THEN NULL ELSE {column} END"
    return column


class _RecordV(_V):
    """The event's record (the top-level current value)."""

    types = frozenset({"object"})

    def __init__(self, compiler: _Compiler) -> None:
        self.compiler = compiler

    def is_null(self) -> str:
        return "false"

    def truthy(self) -> str:
        return "true"

    def get(self, name: str) -> _V:
        if name not in RECORD_FIELDS:
            return NULL
        self.compiler.columns.add(SOURCE_COLUMN[name])
        if name in OPTIONAL_FIELDS:
            self.compiler.columns.add(ABSENT_FIELD)
        if name in JSON_FIELDS:
            return _RawV(SOURCE_COLUMN[name], self.compiler.let)
        if name == "chain_seq":
            return _IntV(_field_sql(name))
        return _StrV(_field_sql(name), plain=name == "occurred_at")

    def text(self) -> Sql:
        self.compiler.columns.update(_EVENT_COLUMNS)
        return Sql(_record_sql(": "))

    def json(self) -> Sql:
        raise Unsupported("the record as a value")


def _record_sql(separator: str) -> str:
    """SQL of the record's line: ``" : "`` (``json_lines``) or ``": "`` (``dumps``)."""
    parts = []
    for field in RECORD_FIELDS:
        column = SOURCE_COLUMN[field]
        if field in JSON_FIELDS:
            value = f"coalesce({column}, 'null')"
        elif field == "chain_seq":
            value = f"coalesce(CAST({column} AS VARCHAR), 'null')"
        elif field == "occurred_at":  # digits, '-', ':', 'T', '.', 'Z': nothing to escape
            value = f"coalesce('\"' || {OCCURRED_AT_SQL} || '\"', 'null')"
        else:
            value = _quote(column)
        part = f"'\"{field}\"{separator}' || {value}"
        if field in OPTIONAL_FIELDS:
            part = f"CASE WHEN {_absent(field)} THEN NULL ELSE {part} END"
        parts.append(part)
    return f"'{{' || concat_ws(', ', {', '.join(parts)}) || '}}'"


def record_line_sql() -> str:
    """SQL (over the event columns) of the event's ``tail --json`` line, as
    ``records.json_lines`` writes it."""
    return _record_sql(" : ")


# ---------------------------------------------------------------------------------------
# The compiler

_counter = count()
_LAMBDA_VAR = re.compile(r"\bx[0-9]+\b")
_BOUND_VAR = re.compile(r"\blambda (x[0-9]+):")
#: Columns the compiled SQL adds to the relation (``CompiledQuery.relation``).
_LET_PREFIX = "_jmes_let_"


class _Compiler:
    def __init__(self) -> None:
        self.columns: set[str] = set()
        #: (column, SQL) computed once per event before the line (``CompiledQuery.lets``)
        self.lets: list[tuple[str, str]] = []
        #: id of a node -> how many lets there were when it was compiled (None: not yet)
        self.watch: dict[int, int | None] = {}

    @staticmethod
    def fresh() -> str:
        return f"x{next(_counter)}"

    def let(self, sql: str) -> str:
        """``sql`` computed once per event, in a column of its own, when it reads no
        lambda variable (a list used for truth, text and the fallback alike)."""
        free = set(_LAMBDA_VAR.findall(sql)) - set(_BOUND_VAR.findall(sql))
        if free or sql.startswith(_LET_PREFIX):
            return sql
        for name, known in self.lets:
            if known == sql:
                return name
        name = f"{_LET_PREFIX}{len(self.lets) + 1}"
        self.lets.append((name, sql))
        return name

    def build(self, node: dict[str, Any], cur: _V) -> _V:
        make = getattr(self, "_" + node["type"], None)
        if make is None:
            raise Unsupported(node["type"])
        if id(node) in self.watch and self.watch[id(node)] is None:
            self.watch[id(node)] = len(self.lets)
        return make(node, cur)

    def _field(self, node, cur):
        return cur.get(node["value"])

    def _subexpression(self, node, cur):
        for child in node["children"]:
            cur = _carry(self.build(child, cur), cur.fb)
        return cur

    _index_expression = _pipe = _subexpression

    def _current(self, node, cur):
        return cur

    _identity = _current

    def _literal(self, node, cur):
        return _literal(node["value"])

    def _index(self, node, cur):
        return cur.index(node["value"])

    def _key_val_pair(self, node, cur):
        return self.build(node["children"][0], cur)

    def _multi_select_dict(self, node, cur):
        items: dict[str, _V] = {}
        fbs = []
        for child in node["children"]:
            value = items[child["value"]] = self.build(child, cur)  # repeated: last value
            fbs.append(value.fb)  # a value replaced is computed all the same
        return _carry(_ObjV(items, cur.is_null()), _or(*fbs))

    def _multi_select_list(self, node, cur):
        return _TupleV([self.build(child, cur) for child in node["children"]], cur.is_null())

    def _and_expression(self, node, cur):
        left, right = (self.build(child, cur) for child in node["children"])
        if isinstance(left, _AndV):
            return _AndV([*left.branches, (f"NOT {left.default.truthy()}", left.default)],
                         right)
        return _AndV([(f"NOT {left.truthy()}", left)], right)

    def _or_expression(self, node, cur):
        left, right = (self.build(child, cur) for child in node["children"])
        return _CaseV([(left.truthy(), left)], right)

    def _not_expression(self, node, cur):
        operand = self.build(node["children"][0], cur)
        return _BoolV(f"(NOT {operand.truthy()})", operand.fb, nullable=False)

    def _comparator(self, node, cur):
        left, right = (self.build(child, cur) for child in node["children"])
        op = node["value"]
        fb = _or(left.fb, right.fb)
        if op in ("eq", "ne"):
            result = _equals(left, right)
            expr = result.expr if op == "eq" else f"(NOT ({result.expr}))"
            return _BoolV(expr, _or(fb, result.fb), nullable=False)
        result = _ordered(left, right, op)
        return _BoolV(result.expr, _or(fb, result.fb))

    def _flatten(self, node, cur):
        value = self.build(node["children"][0], cur)
        base = value.as_list()
        if base is None:
            return _carry(NULL, value.fb)
        raw = base.raw
        if (src := self.let(base.src)) != base.src:  # the same array, split once
            base = _ListV(src, base.elem, base.fb, element_fb=lambda v: None)
        var = self.fresh()
        element = base.elem(var)
        j = element.json()
        flat = f"flatten(list_transform({base.src}, lambda {var}: {_spread(j.expr)}))"
        if raw is not None:  # no '[' after the array's own: no element is an array
            flat = f"CASE WHEN {_may_nest(raw)} THEN {flat} ELSE {base.src} END"
        src = self.let(flat)
        fb = _or(base.fb, _list_any(base.src, var, j.fb) if j.fb else None)
        return _ListV(src, _JsonV, fb)

    def _projection(self, node, cur):
        base_node, project = node["children"]
        members = self._members(base_node, project, cur)
        if members is not None:
            return members
        value = self.build(base_node, cur)
        base = value.as_list()
        if base is None:
            return _carry(NULL, value.fb)
        return self._project(base, project, None)

    def _members(self, base_node, project, cur) -> _V | None:
        """``x[*].name`` or ``x[].name`` over a whole jsonb field ``x``: the members read
        by one path from the stored text (``$[*]."name"``: elements that are no object,
        or have no such member, give none), instead of the elements extracted and each
        parsed again for its member (``determining_policies[].policy`` of 1M events:
        0.05 s less). The flatten is the same where no element is an array (no ``[``
        after the array's own); elsewhere it is done as ``_flatten`` does. None: not
        that shape."""
        flat = base_node["type"] == "flatten"
        source = base_node["children"][0] if flat else base_node
        if project["type"] != "field" or source["type"] != "field":
            return None
        value = self.build(source, cur)
        if not isinstance(value, _RawV):
            return None
        raw, key = value.column, _json_path_key(project["value"])
        members = f"json_extract({raw}, {_lit('$[*]' + key[1:])})"
        if flat:
            var, member = self.fresh(), self.fresh()
            nested = (f"list_transform(flatten(list_transform(json_extract({raw}, '$[*]'), "
                      f"lambda {var}: {_spread(var)})), lambda {member}: "
                      f"json_extract({member}, {_lit(key)}))")
            members = f"CASE WHEN {_may_nest(raw)} THEN {nested} ELSE {members} END"
        var = self.fresh()
        kept = f"list_filter({members}, lambda {var}: NOT {_JsonV(var).is_null()})"
        return _ListV(self.let(f"CASE WHEN starts_with({raw}, '[') THEN {kept} END"), _JsonV,
                      value.fb)

    def _filter_projection(self, node, cur):
        base_node, project, condition = node["children"]
        value = self.build(base_node, cur)
        base = value.as_list()
        if base is None:
            return _carry(NULL, value.fb)
        return self._project(base, project, condition)

    def _project(self, base: _ListV, project, condition) -> _V:
        if (src := self.let(base.src)) != base.src:
            base = _ListV(src, base.elem, base.fb, element_fb=lambda v: None)
        var = self.fresh()
        element = base.elem(var)
        keep = []
        fbs = [base.fb]
        if condition is not None:
            cond = self.build(condition, element)
            keep.append(cond.truthy())
            fbs.append(_list_any(base.src, var, cond.fb) if cond.fb else None)
        src = base.src
        if keep:
            src = f"list_filter({src}, lambda {var}: {keep[0]})"
        result = self.build(project, element)
        # materialise a value with one SQL expression; otherwise keep the elements and
        # compute the projected value when it is used
        if isinstance(result, (_JsonV, _StrV, _IntV, _BoolV)) and result.fb is None:
            mapped = f"list_transform({src}, lambda {var}: {result.sql})"
            var2 = self.fresh()
            maker: Callable[[str], _V] = type(result)
            src2 = self.let(f"list_filter({mapped}, lambda {var2}: NOT {maker(var2).is_null()})")
            return _ListV(src2, maker, _or(*fbs))
        fbs.append(_list_any(src, var, result.fb) if result.fb else None)
        src2 = self.let(f"list_filter({src}, lambda {var}: NOT {result.is_null()})")
        build = self.build
        elem_of = base.elem

        def elem(sql: str) -> _V:
            return build(project, elem_of(sql))

        return _ListV(src2, elem, _or(*fbs), element_fb=lambda v: None)

    def _function_expression(self, node, cur):
        name = node["value"]
        args = [self.build(child, cur) for child in node["children"]]
        make = _FUNCTIONS.get(name)
        if make is None:
            raise Unsupported(f"function {name}")
        return make(args)


def _carry(value: _V, fb: str | None) -> _V:
    """``value``, also needing the evaluator when ``fb`` holds (a value computed from one
    the SQL cannot vouch for, or whose computation the evaluator rejects)."""
    merged = _or(value.fb, fb)
    if merged == value.fb:
        return value
    carried = copy.copy(value)
    carried.fb = merged
    return carried


class _AndV(_CaseV):
    """``a && b && ...``: the first falsy operand, else the last. The evaluator computes
    an operand only when those before it are truthy: so does the need of the evaluator."""

    def __init__(self, branches: list[tuple[str, _V]], default: _V) -> None:
        super().__init__(branches, default)
        fb = default.fb
        for _, value in reversed(branches):
            if fb:
                fb = _or(value.fb, f"CASE WHEN {value.truthy()} THEN {fb} ELSE false END")
            else:
                fb = value.fb
        self.fb = fb

    def _all_truthy(self) -> list[str]:
        return [v.truthy() for _, v in self.branches]

    def _chain(self, last: str) -> str:
        # CASE, not AND: DuckDB computes every operand of AND for every row
        whens = " ".join(f"WHEN NOT {t} THEN false" for t in self._all_truthy())
        return f"CASE {whens} ELSE {last} END"

    def truthy(self) -> str:
        return self._chain(self.default.truthy())

    def is_true(self) -> str:
        return self._chain(self.default.is_true())  # a falsy operand is never true

    def text_when_truthy(self) -> Sql:
        return self.default.text_when_truthy()

    def is_true_when_truthy(self) -> str:
        return self.default.is_true_when_truthy()


def _equals(left: _V, right: _V) -> Sql:
    """JMESPath ``left == right`` as SQL (never NULL)."""
    if isinstance(left, _NullV) or isinstance(right, _NullV):
        other = right if isinstance(left, _NullV) else left
        return Sql(other.is_null())
    for a, b in ((left, right), (right, left)):
        if isinstance(a, _StrV) and a.literal is not None:
            s = a.literal
            if isinstance(b, _StrV):
                return Sql(f"coalesce({b.sql} = {a.sql}, false)")
            if isinstance(b, _RawV):
                return Sql(f"coalesce({b.column} = {_lit(encode_basestring(s))}, false)")
            if isinstance(b, _JsonV) and b.origin and not _json_like(s):
                # json_extract_string gives other values' JSON text, never this text
                return Sql(f"coalesce(json_extract_string({b.origin[0]}, {b.origin[1]}) "
                           f"= {a.sql}, false)")
            if isinstance(b, _JsonV):
                return Sql(f"coalesce(json_type({b.sql}) = 'VARCHAR' AND "
                           f"({b.sql} ->> '$') = {a.sql}, false)")
    if type(left) is type(right) and isinstance(left, (_StrV, _IntV, _BoolV)):
        return Sql(f"({left.sql} IS NOT DISTINCT FROM {right.sql})")  # type: ignore[attr-defined]
    if not (left.types & right.types):
        return Sql("false")
    a, b = left.json(), right.json()
    result = _json_eq(a.expr, b.expr)
    return Sql(result.expr, _or(a.fb, b.fb, result.fb))


def _json_like(text: str) -> bool:
    """Whether DuckDB could print a value that is no string as ``text`` (a number,
    true/false/null, an array or object)."""
    if text[:1] in ("[", "{") or text.strip() in ("true", "false", "null"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _ordered(left: _V, right: _V, op: str) -> Sql:
    comparable = {"string", "number"}
    if not (left.types & comparable) or not (right.types & comparable):
        return Sql("CAST(NULL AS BOOLEAN)")
    if isinstance(left, _StrV) and isinstance(right, _StrV):
        return Sql(f"({left.sql} {_SQL_OPS[op]} {right.sql})")
    a, b = left.json(), right.json()
    result = _json_order(a.expr, b.expr, op)
    return Sql(result.expr, _or(a.fb, b.fb, result.fb))


# ---------------------------------------------------------------------------------------
# Functions: each takes the argument values; a call the evaluator would reject (wrong
# type) is left to it, per event

def _arity(args: list[_V], n: int) -> None:
    if len(args) != n:
        raise Unsupported("wrong number of arguments")  # the evaluator raises for every event


def _f_length(args: list[_V]) -> _V:
    _arity(args, 1)
    (arg,) = args
    fb = arg.fb
    if isinstance(arg, _StrV):
        return _IntV(f"length({arg.sql})", _or(fb, arg.is_null()))
    if isinstance(arg, _ListV):
        return _IntV(f"len({arg.src})", _or(fb, arg.is_null()))
    if isinstance(arg, (_ObjV, _TupleV)):
        return _IntV(f"CASE WHEN NOT {arg.null_sql} THEN {len(arg.items)} END",
                     _or(fb, arg.null_sql))
    j = arg.json()
    t = f"json_type({j.expr})"
    expr = (f"CASE {t} WHEN 'VARCHAR' THEN length({j.expr} ->> '$') "
            f"WHEN 'ARRAY' THEN json_array_length({j.expr}) "
            f"WHEN 'OBJECT' THEN len(json_keys({j.expr})) END")
    bad = f"coalesce({t} NOT IN ('VARCHAR', 'ARRAY', 'OBJECT'), true)"
    return _IntV(expr, _or(fb, j.fb, bad))


def _f_contains(args: list[_V]) -> _V:
    _arity(args, 2)
    subject, search = args
    s = search.json()
    fbs = [subject.fb, search.fb, s.fb]
    if isinstance(subject, _StrV) or "array" not in subject.types:
        # a string subject (anything else is the evaluator's error)
        text = subject.string()
        needle = search.string()
        if text is None or needle is None:
            raise Unsupported("contains")
        bad = f"({text} IS NULL OR {needle} IS NULL)"
        return _BoolV(f"coalesce(contains({text}, {needle}), false)", _or(*fbs, bad),
                      nullable=False)
    if isinstance(subject, (_ListV, _TupleV)) or subject.types <= {"array", "null"}:
        elements = subject.as_list()
        assert elements is not None
        items = elements.json_list()
        var = _Compiler.fresh()
        eq = _json_py_eq(var, s.expr)
        found = _list_any(items.expr, var, eq.expr)
        fbs += [elements.fb, items.fb, subject.is_null()]
        if eq.fb:
            fbs.append(_list_any(items.expr, var, eq.fb))
        return _BoolV(found, _or(*fbs), nullable=False)
    # anything: decided by its type per event
    j = subject.json()
    fbs.append(j.fb)
    t = f"json_type({j.expr})"
    var = _Compiler.fresh()
    eq = _json_py_eq(var, s.expr)
    items = f"CASE WHEN {t} = 'ARRAY' THEN CAST({j.expr} AS JSON[]) END"
    in_array = f"coalesce(list_bool_or(list_transform({items}, lambda {var}: {eq.expr})), false)"
    needle = f"CASE WHEN json_type({s.expr}) = 'VARCHAR' THEN {s.expr} ->> '$' END"
    in_text = f"coalesce(contains({j.expr} ->> '$', {needle}), false)"
    expr = f"CASE WHEN {t} = 'VARCHAR' THEN {in_text} ELSE {in_array} END"
    bad = (f"CASE WHEN {t} = 'VARCHAR' THEN coalesce(json_type({s.expr}), 'NULL') <> 'VARCHAR' "
           f"WHEN {t} = 'ARRAY' THEN false ELSE true END")
    fbs.append(bad)
    if eq.fb:
        fbs.append(_list_any(items, var, eq.fb))
    return _BoolV(expr, _or(*fbs), nullable=False)


def _string_test(sql_function: str) -> Callable[[list[_V]], _V]:
    def make(args: list[_V]) -> _V:
        _arity(args, 2)
        subject, affix = args
        a, b = subject.string(), affix.string()
        if a is None or b is None:
            raise Unsupported(sql_function)
        bad = f"({a} IS NULL OR {b} IS NULL)"
        return _BoolV(f"coalesce({sql_function}({a}, {b}), false)",
                      _or(subject.fb, affix.fb, bad), nullable=False)

    return make


def _f_not_null(args: list[_V]) -> _V:
    if not args:
        raise Unsupported("not_null()")
    return _CaseV([(f"NOT {v.is_null()}", v) for v in args[:-1]],
                  _CaseV([(f"NOT {args[-1].is_null()}", args[-1])], NULL))


_FUNCTIONS: dict[str, Callable[[list[_V]], _V]] = {
    "length": _f_length,
    "contains": _f_contains,
    "starts_with": _string_test("starts_with"),
    "ends_with": _string_test("suffix"),
    "not_null": _f_not_null,
}


# ---------------------------------------------------------------------------------------
# Running it

def compiled_lines(con: duckdb.DuckDBPyConnection, compiled: CompiledQuery, query: Query,
                   relation: str = "events", params: dict[str, Any] | None = None,
                   order_by: str | None = None, batch_rows: int = 65536,
                   per_text: bool = False) -> Iterator[str]:
    """The output lines of ``query`` over ``relation`` (a view name or ``(SELECT ...)``
    with the event columns), ordered by ``order_by`` (SQL; the toolkit's connections do
    not keep a subquery's order: ``preserve_insertion_order`` is off): the SQL's lines,
    and the evaluator's (``query.lines``) for the events the SQL leaves to it. A
    reference for callers that write in bulk; the events are fetched whole only when
    left to the evaluator. ``per_text``: as ``CompiledQuery.relation``."""
    from .records import EVENT_COLUMNS, OCCURRED_AT_TEXT

    needed = [*EVENT_COLUMNS, "source_file", "source_line", "source_shape"]
    guarded = ", ".join(f"CASE WHEN fallback THEN {c} END AS {c}" for c in dict.fromkeys(needed))
    sql = (f"SELECT line, fallback, {guarded}, "
           f"CASE WHEN fallback THEN {OCCURRED_AT_SQL} END AS {OCCURRED_AT_TEXT} FROM "
           f"(SELECT *, {compiled.line_sql} AS line, {compiled.fallback_sql} AS fallback "
           f"FROM {compiled.relation(relation, per_text)})")
    if order_by:
        sql += f" ORDER BY {order_by}"
    reader = con.sql(sql, params=params).to_arrow_reader(batch_rows)
    for batch in reader:
        lines = batch.column(0).to_pylist()
        fallback = batch.column(1).to_pylist()
        if not any(fallback):
            yield from (line for line in lines if line is not None)
            continue
        for i, line in enumerate(lines):
            if fallback[i]:
                yield from query.lines(batch.slice(i, 1).drop_columns(["line", "fallback"]))
            elif line is not None:
                yield line
