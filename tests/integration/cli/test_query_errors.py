"""An expression that cannot be evaluated on an event (a function given a value of the
wrong type) stops with one line naming the event: its file, line and id, whether the
expression runs compiled to SQL (the event handed to the evaluator) or in the evaluator,
and whether or not it reads the id (the message said ``on event None`` then)."""

from __future__ import annotations

import pytest
from support.cli import cli, one_error_line
from support.paths import VECTOR_EXPORT

# length() of a number: compiled, the event handed to the evaluator; sort_by over a key
# some diagnostics lack: not compiled. Neither expression reads the event's id.
FAILING = ["length(metadata.latency_ms)", "decision == 'deny' && sort_by(diagnostics, &reason)"]


@pytest.mark.parametrize("expression", FAILING, ids=["compiled", "evaluated"])
@pytest.mark.parametrize("limit", ["0", "5"])
def test_an_expression_failing_on_an_event_names_it(capsys: pytest.CaptureFixture[str],
                                                     expression: str, limit: str) -> None:
    source = VECTOR_EXPORT / "db.csv"
    code, _, err = cli(capsys, "audit", "tail", "-s", source, "-n", limit, "--query", expression)
    line = one_error_line(err)
    assert code == 2
    assert line.startswith(f"caracal-forensics: error: {source}: line ")
    assert ": event 'ev-" in line and ": --query failed: In function " in line
