"""``render_table``: a long table's rows are written without rich (rich took 11.5 s for
the 70,178 rows of a named query), and must read exactly as rich draws them: random
tables, drawn both ways, on a terminal and off one, compared byte for byte."""

from __future__ import annotations

import io

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
