"""JavaScript's ``JSON.stringify``, exactly, over values parsed by ``jsonb.loads``
(FORMAT.md 8): what the ``api`` service hashed as P.

- no whitespace: ``{"a":1,"b":[1,2]}``;
- keys in the given order, except integer-like keys (canonical decimal strings of
  0..2^32-2, JavaScript's array indices) which come first in ascending order;
- strings: ``\\"`` ``\\\\`` ``\\b \\f \\n \\r \\t``, other characters below U+0020 as
  ``\\u00xx`` (lowercase), a lone surrogate as ``\\udxxx``, everything else raw;
- numbers: the double the literal denotes, printed as ``Number.prototype.toString``
  (shortest round trip: ``1.5``, ``100``, ``1e+21``, ``1e-7``, ``-0`` as ``0``).

Only the order of keys is a choice (``stringify(value, order=...)``): the stored jsonb
has lost it, and ``admin.chain`` searches for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

__all__ = ["stringify", "number_text", "string_text", "is_index_key", "js_key_order"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f\ud800-\udfff]')
_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
_MAX_INDEX = 2**32 - 2


def is_index_key(key: str) -> bool:
    """Whether JavaScript orders this key first, as an array index: the canonical decimal
    string of an integer from 0 to 2^32-2."""
    return _INDEX.fullmatch(key) is not None and int(key) <= _MAX_INDEX


def js_key_order(keys: Sequence[str]) -> list[str]:
    """``keys`` as a JavaScript object built in that order enumerates them: the index
    keys first, ascending, then the others in the given order."""
    index = sorted((k for k in keys if is_index_key(k)), key=int)
    return index + [k for k in keys if not is_index_key(k)]


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def string_text(value: str) -> str:
    """A string as JSON.stringify writes it (well-formed JSON.stringify, ES2019)."""
    if _NEEDS_ESCAPE.search(value) is None:
        return f'"{value}"'
    return '"' + _NEEDS_ESCAPE.sub(_escape, value) + '"'


def number_text(literal: str | float | int) -> str:
    """The double a JSON number literal denotes, as JavaScript prints it."""
    value = float(literal)
    if value != value or value in (float("inf"), float("-inf")):
        return "null"  # JSON.stringify(NaN / Infinity); never from JSON input
    if value == 0:
        return "0"  # -0 too
    sign = "-" if value < 0 else ""
    text = repr(abs(value))  # Python's repr: the shortest digits that round-trip
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    if fraction == "0":
        fraction = ""
    digits = (whole + fraction).lstrip("0")
    # n: the position of the decimal point relative to the digits (ECMA-262 Number::toString)
    n = len(whole) + (int(exponent) if exponent else 0)
    if whole == "0":  # 0.000123 -> digits "123", point moved by the leading zeros
        lead = len(fraction) - len(fraction.lstrip("0"))
        n = -lead + (int(exponent) if exponent else 0)
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exp = f"e{'+' if e >= 0 else '-'}{abs(e)}"
        out = (digits[0] + ("." + digits[1:] if k > 1 else "")) + exp
    return sign + out


#: Chooses the key order of one object (its keys as stored): returns them reordered.
Order = Callable[[dict], Sequence[str]]


def stringify(value: object, order: Order | None = None) -> str:
    """``JSON.stringify(value)`` for a value from ``jsonb.loads`` (numbers are
    ``JsonbNumber`` literals). ``order(obj)`` gives each object's keys in the order the
    object was built (default: as stored); index keys move first either way."""
    parts: list[str] = []
    _write(value, order, parts.append)
    return "".join(parts)


def _write(value: object, order: Order | None, out: Callable[[str], object]) -> None:
    if value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif isinstance(value, str):
        from ..jsonb import JsonbNumber

        out(number_text(value) if isinstance(value, JsonbNumber) else string_text(value))
    elif isinstance(value, (int, float)):
        out(number_text(value))
    elif isinstance(value, list):
        out("[")
        for i, item in enumerate(value):
            if i:
                out(",")
            _write(item, order, out)
        out("]")
    elif isinstance(value, dict):
        keys = js_key_order(list(order(value)) if order else list(value))
        out("{")
        for i, key in enumerate(keys):
            if i:
                out(",")
            out(string_text(key))
            out(":")
            _write(value[key], order, out)
        out("}")
    else:  # pragma: no cover - loads() makes nothing else
        raise TypeError(f"cannot stringify {type(value).__name__}")
