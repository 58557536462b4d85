"""Readable tables with rich that fit the terminal.

:func:`render_table` is generic (rows of dicts, a list of :class:`Column`) for every
command that prints a table; :func:`event_table` is the events table of ``audit tail``;
:func:`render_records` prints rows as ``name  value`` blocks, for a table too wide for
the terminal. A narrow terminal first squeezes columns (down to each one's minimum, with
an ellipsis, never wrapped, so one event stays one line; identifiers, numbers and times
are never cut), then drops whole columns, lowest priority first, and the caption names
them. Every value is printed as plain text (never rich markup) with control characters
escaped: audit data is attacker-influenced and must not be able to move the cursor or
recolour a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa

from .records import occurred_at_texts, parse_json

# Columns separated by one space, padded by one space each side, no outer edge.
_COLUMN_GAP = 3

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(value: Any) -> str:
    """Plain display text: None is empty, JSON values are compact JSON, and control or
    other non-printable characters are shown as escapes (``\\n``, ``\\x1b``, ``\\u2028``)."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        from .jsonl import dumps

        value = dumps(value)
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)


@dataclass
class Column:
    """One table column: a header, how to get the cell from a row, how it may shrink.

    ``key`` is a dict key or a function of the row. Higher ``priority`` columns are kept
    longest when the terminal is narrow. ``shrink=False`` keeps the column at its natural
    width (an id, a number or a time cut short is worse than none). ``style`` is a rich
    style, or a function of the cell text returning one. ``widest``: the width of the
    column's widest cell, computed without the rows (a long table's rows are then read
    once, to be written).
    """

    header: str
    key: str | Callable[[Any], Any]
    priority: int = 0
    max_width: int | None = None
    min_width: int = 4
    justify: str = "left"
    style: str | Callable[[str], str | None] | None = None
    shrink: bool = True
    widest: Callable[[], int] | None = None

    def cell(self, row: Any) -> str:
        value = self.key(row) if callable(self.key) else row.get(self.key)
        return printable(value)

    def style_for(self, text: str) -> str | None:
        return self.style(text) if callable(self.style) else self.style


def make_console(file: IO[str] | None = None, width: int | None = None):
    """A rich Console for data: no markup, no highlighting, width from the terminal
    (or $COLUMNS; 80 when not a terminal)."""
    from rich.console import Console

    return Console(
        file=file,
        width=width,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
    )


def _natural_widths(columns: Sequence[Column], cells: Iterable[list[str]]) -> list[int]:
    """Each column's widest cell (or header), within its ``max_width``."""
    from rich.cells import cell_len

    widest = [0] * len(columns)
    for row in cells:
        widest = [max(width, cell_len(text)) for width, text in zip(widest, row, strict=True)]
    return _within_bounds(columns, widest)


def _long_natural_widths(columns: Sequence[Column], rows: Iterable[Any]) -> list[int]:
    """``_natural_widths`` of a long table: from the columns' ``widest`` where they have
    one, the others' cells made a row at a time and not kept."""
    from rich.cells import cell_len

    widest = [column.widest() if column.widest is not None else 0 for column in columns]
    measured = [(i, column) for i, column in enumerate(columns) if column.widest is None]
    if measured:
        for row in rows:
            for i, column in measured:
                widest[i] = max(widest[i], cell_len(column.cell(row)))
    return _within_bounds(columns, widest)


def _within_bounds(columns: Sequence[Column], widest: list[int]) -> list[int]:
    """The widths of columns whose widest cells are ``widest``: at least their header
    (and 1), at most their ``max_width`` (or header)."""
    from rich.cells import cell_len

    widths = []
    for column, width in zip(columns, widest, strict=True):
        header = cell_len(column.header)
        width = max(width, header)
        if column.max_width:
            width = min(width, max(column.max_width, header))
        widths.append(max(width, 1))
    return widths


def fit_columns(
    columns: Sequence[Column], cells: Iterable[list[str]] | None, width: int,
    natural: list[int] | None = None,
) -> tuple[list[int], list[int]]:
    """(indexes of the columns kept, their widths) for a table at most ``width`` wide,
    from the cells or their ``natural`` widths."""
    if natural is None:
        natural = _natural_widths(columns, cells or ())
    floor = [
        min(natural[i], max(column.min_width, 1)) if column.shrink else natural[i]
        for i, column in enumerate(columns)
    ]
    kept = list(range(len(columns)))

    def total(indexes: list[int], widths: list[int]) -> int:
        return sum(widths[i] for i in indexes) + _COLUMN_GAP * (len(indexes) - 1)

    # Drop whole columns, lowest priority (then rightmost) first, only while the rest
    # cannot fit even squeezed to their minimum; a single remaining column is shrunk.
    by_drop_order = sorted(kept, key=lambda i: (columns[i].priority, -i))
    while len(kept) > 1 and total(kept, floor) > width:
        kept.remove(by_drop_order.pop(0))
    widths = [natural[i] for i in kept]
    excess = sum(widths) + _COLUMN_GAP * (len(kept) - 1) - width
    # Squeeze the lowest priority columns first (the rightmost of equals), each down to
    # its floor before the next; below the floors (to 1) only when even they do not fit:
    # a lone column on a very narrow terminal.
    order = sorted(range(len(kept)), key=lambda j: (columns[kept[j]].priority, -kept[j]))
    for limit in (floor, [1] * len(columns)):
        for j in order:
            cut = min(excess, widths[j] - limit[kept[j]])
            if cut > 0:
                widths[j] -= cut
                excess -= cut
    return kept, widths


def hidden_note(columns: Sequence[Column], kept: Sequence[int],
                where: str | None = "see --json") -> str | None:
    """``not shown (too narrow, see --json): ZONE, PRINCIPAL`` for the columns left out
    (named in table order), or None when all fit."""
    hidden = [column.header or f"column {i + 1}" for i, column in enumerate(columns)
              if i not in kept]
    if not hidden:
        return None
    return f"not shown (too narrow{', ' + where if where else ''}): {', '.join(hidden)}"


def _grown(
    columns: Sequence[Column], cells: list[list[str]], kept: list[int], widths: list[int],
    width: int,
) -> list[int] | None:
    """Widths for later rows (``--follow``) wider than the layout the first rows set:
    the columns they overflow grow (up to their ``max_width``, as far as the terminal
    allows, highest priority first) instead of cutting them. None when they fit."""
    natural = _natural_widths(columns, cells)
    growth = [max(0, natural[i] - w) for i, w in zip(kept, widths, strict=True)]
    if not any(growth):
        return None
    room = width - (sum(widths) + _COLUMN_GAP * (len(kept) - 1))
    grant = [0] * len(kept)
    for j in sorted(range(len(kept)), key=lambda j: -columns[kept[j]].priority):
        grant[j] = max(0, min(growth[j], room))
        room -= grant[j]
    if not any(grant):
        return None
    return [w + g for w, g in zip(widths, grant, strict=True)]


def render_table(
    rows: Sequence[Any],
    columns: Sequence[Column],
    *,
    console=None,
    title: str | None = None,
    caption: str | None = None,
    show_header: bool = True,
    widths: list[int] | None = None,
    kept: list[int] | None = None,
    hidden_hint: str | None = "see --json",
) -> tuple[list[int], list[int]]:
    """Print ``rows`` as a table fitting the console; returns (kept columns, widths) so a
    caller printing more rows later (``--follow``) can keep the same layout. When it
    lays the table out itself, the caption names the columns left out (``hidden_hint``:
    where to see them).

    A long table (more than ``FAST_ROWS`` rows) has its cells made as its rows are
    read, never all held (the 1M rows of a named query at 10M events took 2.4 GB held as
    cells): its rows are read once for the column widths, unless every column knows its
    widest cell (``Column.widest``), and once to be written."""
    console = console or make_console()
    many = len(rows) > FAST_ROWS
    cells = None if many else _cells(columns, rows)
    if kept is None or widths is None:
        kept, widths = fit_columns(columns, cells, console.width, natural=None if not many
                                   else _long_natural_widths(columns, rows))
        note = hidden_note(columns, kept, hidden_hint)
        if note:
            caption = f"{caption}; {note}" if caption else note
    else:
        cells = cells if cells is not None else _cells(columns, rows)
        grown = _grown(columns, cells, kept, widths, console.width)
        if grown is not None:  # wider rows than the first ones: wider columns, named again
            widths, show_header = grown, True

    def table(body: Sequence[list[str]], header: bool, title: str | None,
              shown_caption: str | None):
        # every part as wide as the whole table: its caption widens it (min_width)
        return _rich_table(console, columns, kept, widths, body, header, title,
                           shown_caption, caption)

    drawn = None
    if many and not (console.color_system and any(columns[i].style for i in kept)):
        drawn = _drawn_widths(console, table((), show_header, title, caption))
    if drawn is None:
        cells = cells if cells is not None else _cells(columns, rows)
        console.print(table(cells, show_header, title, caption))
        return kept, widths
    # a long table: rich lays out its header and caption, each row is written here as
    # rich writes it (rich took 11.5 s for the 70,178 rows of a named query)
    if show_header or title:
        console.print(table((), show_header, title, None))
    justify = [columns[i].justify for i in kept]
    shown = [columns[i] for i in kept]
    lines: list[str] = []
    for row in rows:
        texts = [column.cell(row) for column in shown]
        if all(text.isascii() for text in texts):
            lines.append(_ascii_row(texts, drawn, justify))
            if len(lines) >= _WRITE_ROWS:
                console.file.write("\n".join(lines) + "\n")
                lines = []
            continue
        if lines:
            console.file.write("\n".join(lines) + "\n")
            lines = []
        row_cells = [""] * len(columns)  # the kept columns' cells, where rich reads them
        for index, text in zip(kept, texts, strict=True):
            row_cells[index] = text
        console.print(table([row_cells], False, None, None))  # wide or combining characters
    if lines:
        console.file.write("\n".join(lines) + "\n")
    if caption:
        console.print(table((), False, None, caption))
    return kept, widths


#: Rows up to which rich draws a table whole; a longer one has its rows written by
#: ``_ascii_row`` (the same text, tested against rich), so many at a time.
FAST_ROWS = 200
_WRITE_ROWS = 4096


def _cells(columns: Sequence[Column], rows: Iterable[Any]) -> list[list[str]]:
    return [[column.cell(row) for column in columns] for row in rows]


def _drawn_widths(console, table) -> list[int] | None:
    """The text width of each column as rich draws ``table`` (wider than asked when its
    caption is: ``min_width``), from rich's own layout (``Table.__rich_console__``'s
    first steps); None when that is not available or the table is laid out otherwise
    (then rich draws it all)."""
    try:
        options = console.options
        width = options.max_width if table.width is None else table.width
        widths = table._calculate_column_widths(
            console, options.update_width(width - table._extra_width))
        drawn = [total - table._get_padding_width(index) for index, total in enumerate(widths)]
    except Exception:  # a rich without these: draw the table with it
        return None
    return drawn if drawn and min(drawn) >= 1 else None


def _rich_table(console, columns: Sequence[Column], kept: Sequence[int],
                widths: Sequence[int], body: Sequence[list[str]], show_header: bool,
                title: str | None, caption: str | None, widened_by: str | None = None):
    """The rich table of ``body`` with the layout ``kept`` / ``widths``; at least as wide
    as ``widened_by`` (the caption, by default; the parts of a long table, drawn
    separately, are as wide as the whole)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    widened_by = caption if widened_by is None else widened_by

    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        show_header=show_header,
        header_style="bold",
        title=title,
        caption=caption,
        expand=False,
        # as wide as its caption at least: rich wraps a caption to the table's width (the
        # one column of `sql "SELECT 1 AS a"` printed "1 row" a letter a line)
        min_width=min(len(widened_by), console.width) if widened_by else None,
    )
    for index, width in zip(kept, widths, strict=True):
        column = columns[index]
        table.add_column(
            column.header,
            justify=column.justify,  # type: ignore[arg-type]
            no_wrap=True,
            overflow="ellipsis",
            width=width,
            min_width=width,
            max_width=width,
        )
    for row_cells in body:
        table.add_row(
            *(
                Text(
                    row_cells[i],
                    style=columns[i].style_for(row_cells[i]) or "",
                    no_wrap=True,
                    overflow="ellipsis",
                )
                for i in kept
            )
        )
    return table


def _ascii_row(texts: Sequence[str], widths: Sequence[int], justify: Sequence[str]) -> str:
    """One row of plain ASCII cells as rich's table writes it (no edge, ``_COLUMN_GAP``
    between columns): a cell longer than its column cut to an ellipsis, right-justified
    ones without their trailing spaces (rich strips those first)."""
    out = []
    for text, width, side in zip(texts, widths, justify, strict=True):
        if side == "right":
            text = text.rstrip(" ")
        if len(text) > width:
            text = text[: width - 1] + "\u2026"
        out.append(text.rjust(width) if side == "right" else text.ljust(width))
    return (" " * _COLUMN_GAP).join(out)


# --- the events table ------------------------------------------------------------------


def _decision_style(text: str) -> str | None:
    lowered = text.lower()
    if lowered == "deny":
        return "bold red"
    if lowered == "allow":
        return "green"
    return None


def _policy_names(value: Any) -> str | None:
    if not isinstance(value, list):
        return None if value is None else printable(value)
    names = []
    for item in value:
        if isinstance(item, dict) and "policy" in item:
            names.append(printable(item["policy"]))
        else:
            names.append(printable(item))
    return ", ".join(names)


#: The request id is kept first and never cut (``explain`` needs it whole); the other
#: columns squeeze to a readable minimum before the lowest priority ones are dropped.
EVENT_COLUMNS: tuple[Column, ...] = (
    Column("OCCURRED AT (UTC)", "occurred_at", priority=100, max_width=27, shrink=False),
    Column("ZONE", "zone_id", priority=80, max_width=24, min_width=10),
    Column("EVENT TYPE", "event_type", priority=90, max_width=22, min_width=12),
    Column("DECISION", "decision", priority=95, max_width=8, style=_decision_style, shrink=False),
    Column("REQUEST", "request_id", priority=110, max_width=64, shrink=False),
    Column("PRINCIPAL", "principal", priority=60, max_width=28, min_width=10),
    Column("POLICY VERSION", "policy_set_version_id", priority=50, max_width=24, min_width=10),
    Column("DETERMINING POLICIES", "policies", priority=40, max_width=40, min_width=12),
    Column("EVENT ID", "id", priority=30, max_width=64, shrink=False),
)


def event_rows(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """The display values of each event (an event-schema table) for :data:`EVENT_COLUMNS`."""
    names = set(table.schema.names)

    def column(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in names else [None] * table.num_rows

    occurred = occurred_at_texts(table)
    # one event's metadata at a time: events up to the maximum line (16 MiB) each, 100 of
    # them as Python strings and parsed all at once took tail past 1 GiB (issue 14.2)
    metadata = (table.column("metadata_json") if "metadata_json" in names
                else pa.nulls(table.num_rows, pa.string()))
    policies = column("determining_policies_json")
    base = {
        name: column(name)
        for name in (
            "id",
            "zone_id",
            "event_type",
            "decision",
            "request_id",
            "policy_set_version_id",
        )
    }
    rows = []
    for index in range(table.num_rows):
        row = {name: values[index] for name, values in base.items()}
        row["occurred_at"] = occurred[index]
        row["principal"] = _principal(metadata[index].as_py())
        row["policies"] = _policy_names(_safe_parse(policies[index]))
        rows.append(row)
    return rows


def _safe_parse(text: str | None) -> Any:
    try:
        return parse_json(text)
    except ValueError:
        return text


def _principal(text: str | None) -> Any:
    value = _safe_parse(text)
    if isinstance(value, dict):
        return value.get("principal_id")
    return None


def event_table(
    table: pa.Table | pa.RecordBatch,
    *,
    console=None,
    caption: str | None = None,
    show_header: bool = True,
    layout: tuple[list[int], list[int]] | None = None,
) -> tuple[list[int], list[int]]:
    """Print events as a table; returns the layout for later rows (see render_table)."""
    kept, widths = layout if layout else (None, None)
    return render_table(
        event_rows(table),
        EVENT_COLUMNS,
        console=console,
        caption=caption,
        show_header=show_header,
        kept=kept,
        widths=widths,
    )


def render_records(
    rows: Sequence[Any],
    columns: Sequence[Column],
    *,
    console=None,
    title: str | None = None,
) -> None:
    """Print each row as a block of ``name  value`` lines (a blank line between rows):
    every field readable at any width, long values folded onto the next lines."""
    from rich.table import Table
    from rich.text import Text

    console = console or make_console()
    if title:
        console.print(Text(title, style="bold"))
    name_width = max((len(column.header) for column in columns), default=0)
    for number, row in enumerate(rows):
        if number or title:
            console.print()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, min_width=name_width, style="bold")
        grid.add_column(overflow="fold")
        for column in columns:
            text = column.cell(row)
            grid.add_row(Text(column.header), Text(text, style=column.style_for(text) or ""))
        console.print(grid)


def fits(columns: Sequence[Column], rows: Sequence[Any], width: int) -> bool:
    """Whether every column fits at its natural width (no squeeze, none dropped)."""
    cells = [[column.cell(row) for column in columns] for row in rows]
    natural = _natural_widths(columns, cells)
    return sum(natural) + _COLUMN_GAP * (len(columns) - 1) <= width
