"""``render_table``: a long table's rows are written without rich (rich took 11.5 s for
the 70,178 rows of a named query), and must read exactly as rich draws them: random
tables, drawn both ways, on a terminal and off one, compared byte for byte."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caracal_forensics.render import table as table_module
from caracal_forensics.render.table import Column, make_console, render_table

#: ASCII (the written rows), spaces where rich strips or keeps them, and characters
#: rich measures otherwise (wide, combining, an emoji): those rows go to rich
_TEXT = st.text(alphabet=st.sampled_from([*"abXY01 -_:./", "\u6f22", "\u0301", "\U0001f600",
                                          "\u00e9"]), max_size=30)


def _draw(rows, columns, *, fast: bool, terminal: bool, **options) -> str:
    out = io.StringIO()
    console = make_console(file=out, width=options.pop("width", 80))
    if terminal:
        console = type(console)(file=out, width=console.width, highlight=False,
                                markup=False, emoji=False, soft_wrap=False,
                                force_terminal=True, color_system="standard")
    rows = [dict(enumerate(row)) for row in rows]  # Column keys are the cell positions
    saved = table_module.FAST_ROWS
    table_module.FAST_ROWS = 0 if fast else 10**9
    try:
        render_table(rows, columns, console=console, **options)
    finally:
        table_module.FAST_ROWS = saved
    return out.getvalue()


@st.composite
def tables(draw):
    count = draw(st.integers(1, 5))
    columns = [
        Column(draw(st.sampled_from(["id", "zone_id", "chain_seq", "a long header name", ""])),
               key=index, max_width=draw(st.sampled_from([None, 3, 12, 60])),
               justify=draw(st.sampled_from(["left", "right"])),
               shrink=draw(st.booleans()), priority=draw(st.integers(-3, 3)),
               min_width=draw(st.integers(1, 6)))
        for index in range(count)
    ]
    rows = draw(st.lists(st.tuples(*[_TEXT] * count), min_size=1, max_size=8))
    return [list(row) for row in rows], columns


@settings(max_examples=300, deadline=None)
@given(table=tables(), title=st.sampled_from([None, "q: what it shows"]),
       caption=st.sampled_from([None, "3 rows", "a caption longer than a narrow table is"]),
       header=st.booleans(), terminal=st.booleans(), width=st.sampled_from([80, 40, 20]))
def test_written_rows_read_as_rich_draws_them(table, title, caption, header, terminal,
                                               width) -> None:
    rows, columns = table
    options = {"title": title, "caption": caption, "show_header": header, "width": width}
    assert _draw(rows, columns, fast=True, terminal=terminal, **options) == \
        _draw(rows, columns, fast=False, terminal=terminal, **options)


def test_a_styled_column_on_a_terminal_is_drawn_by_rich() -> None:
    """Colours are rich's to write: a styled column on a terminal keeps the slow path."""
    columns = [Column("DECISION", key=0, style=lambda text: "bold red" if text == "deny"
                      else None)]
    rows = [["deny"], ["allow"]] * 150
    drawn = _draw(rows, columns, fast=True, terminal=True)
    assert "\x1b[1;31mdeny" in drawn
    assert _draw(rows, columns, fast=True, terminal=False) == \
        _draw(rows, columns, fast=False, terminal=False)


@pytest.mark.parametrize("text", ["ab  ", "  ab", "abcdef ", "a" * 70])
def test_right_justified_cells_lose_trailing_spaces_before_the_cut(text: str) -> None:
    columns = [Column("h", key=0, justify="right", max_width=5, shrink=False),
               Column("i", key=1)]
    rows = [[text, text]] * 3
    assert _draw(rows, columns, fast=True, terminal=False) == \
        _draw(rows, columns, fast=False, terminal=False)


class _Counted(list):
    """Rows that count how often they are read."""

    reads = 0

    def __iter__(self):
        self.reads += 1
        return super().__iter__()


def test_a_long_table_reads_its_rows_twice_or_once_given_the_widths() -> None:
    """Its cells are made as the rows are read, never all held: once for the widths,
    once to write them; a column that knows its widest cell (``widest``) spares the
    first read. The same table either way."""
    rows = _Counted([{0: f"row {n}", 1: "x" * (n % 17)} for n in range(500)])
    measured = [Column("a", key=0), Column("b", key=1)]
    out = io.StringIO()
    render_table(rows, measured, console=make_console(file=out, width=80))
    assert rows.reads == 2
    rows.reads = 0
    known = [Column("a", key=0, widest=lambda: 7), Column("b", key=1, widest=lambda: 16)]
    again = io.StringIO()
    render_table(rows, known, console=make_console(file=again, width=80))
    assert rows.reads == 1 and again.getvalue() == out.getvalue()


_VALUES = {
    "text": st.text(max_size=12),
    "ascii": st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=True, allow_infinity=True),
    "time": st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    "utc": st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                        timezones=st.just(timezone.utc)),
    "list": st.lists(st.text(max_size=3), max_size=3),
}


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(_VALUES)), st.data())
def test_widest_cell_is_the_widest_cell_the_rows_make(kind, data) -> None:
    """``cli.query.widest_cell`` (a query result's column at once) against the cells the
    table makes of its rows (``text_value``, then ``printable``), NULLs among them."""
    import polars as pl
    from rich.cells import cell_len

    from caracal_forensics.cli.query import widest_cell
    from caracal_forensics.queries import text_value
    from caracal_forensics.render.table import printable

    values = data.draw(st.lists(st.one_of(st.none(), _VALUES[kind]), min_size=1, max_size=30))
    frame = pl.DataFrame({"c": values}, strict=False)
    cells = [printable(text_value(row[0])) for row in frame.iter_rows()]
    assert widest_cell(frame, 0) == max(cell_len(cell) for cell in cells)
