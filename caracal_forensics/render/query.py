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

from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ForensicsError, UsageError
from .jsonl import dumps


class Query:
    """A compiled ``--query`` expression."""

    def __init__(self, expression: str, flag: str = "--query") -> None:
        import jmespath
        from jmespath.exceptions import JMESPathError

        if not isinstance(expression, str) or not expression.strip():
            raise UsageError(f"{flag} needs a JMESPath expression")
        self.expression = expression
        self.flag = flag
        try:
            self._compiled = jmespath.compile(expression)
        except JMESPathError as error:
            message = " ".join(str(error).split())
            raise UsageError(f"{flag} {expression!r} is not valid JMESPath: {message}") from None

    def search(self, record: dict[str, Any]) -> Any:
        """The expression's value for one record."""
        from jmespath.exceptions import JMESPathError

        try:
            return self._compiled.search(record)
        except JMESPathError as error:
            message = " ".join(str(error).split())
            raise ForensicsError(
                f"{self.flag} failed on event {record.get('id')!r}: {message}"
            ) from None

    def lines(self, records: Sequence[dict[str, Any]], event_lines: Sequence[str]) -> Iterator[str]:
        """The output lines for ``records``; ``event_lines`` are their ``--json`` lines."""
        for record, line in zip(records, event_lines, strict=True):
            value = self.search(record)
            if value is True:
                yield line
            elif is_truthy(value):
                yield dumps(value)


def is_truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, and empty strings, lists and objects are false."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict, tuple)) and not value:
        return False
    return True
