"""PostgreSQL ``jsonb::text``: the single place that knows its rules (FORMAT.md section 3).

``loads`` parses JSON as PostgreSQL's jsonb input does (numbers keep their literal text,
a repeated key keeps its last value, NaN/Infinity, ``\\u0000`` and lone surrogates are
rejected); ``dumps`` prints a parsed value exactly as ``jsonb::text`` does.

Known limit: nesting deeper than about 400 levels raises ValueError (Python recursion),
where PostgreSQL accepts thousands of levels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring as _encode_str  # C escaper, ensure_ascii=False
from typing import NoReturn

__all__ = ["JsonbNumber", "loads", "dumps", "jsonb_text", "canonical_or_none"]


class JsonbNumber(str):
    """A JSON number kept as its literal text (e.g. ``"1.50"``, ``"1e-3"``).

    It must be a valid JSON number literal, as ``loads()`` makes them: ``dumps()``
    copies a plain literal without an exponent through unchecked, for speed.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JsonbNumber({str.__repr__(self)})"


# PostgreSQL numeric limits (checked against PostgreSQL 15): "value overflows numeric format"
_MAX_EXPONENT = 1073741823  # INT_MAX / 2: |exponent| at or above is rejected
_MAX_DSCALE = 16383  # digits after the decimal point
_MAX_INT_DIGITS = 131072  # significant digits before the decimal point

_NUMBER_RE = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([-+]?)([0-9]+))?")
# An escape that may decode to NUL or a surrogate; confirmed on the parsed strings.
_ESCAPE_RE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_BAD_CHAR_RE = re.compile("[\x00\ud800-\udfff]")
# Shorter text cannot hold a plain number with too many digits for PostgreSQL's numeric.
_LONG_TEXT = 15000


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"invalid JSON: {name} is not a JSON value")


def _parse_float(literal: str) -> JsonbNumber:
    # Called for every literal with a fraction or exponent, even one a repeated key
    # discards; PostgreSQL rejects out-of-range ones wherever they are.
    if "e" in literal or "E" in literal:
        _number_text(literal)
    return JsonbNumber(literal)


def _checked_number(literal: str) -> JsonbNumber:
    _number_text(literal)  # raises if PostgreSQL's numeric would reject it
    return JsonbNumber(literal)


def _check_str(s: str) -> None:
    m = _BAD_CHAR_RE.search(s)
    if m is not None:
        if m.group() == "\x00":
            raise ValueError("invalid JSON: \\u0000 cannot be stored in jsonb")
        raise ValueError(f"invalid JSON: lone surrogate \\u{ord(m.group()):04x}")


def _check_shallow(value: object) -> None:
    """Check strings in value and its arrays; its objects were checked when built."""
    if type(value) is str:
        _check_str(value)  # type: ignore[arg-type]
    elif type(value) is list:
        for v in value:  # type: ignore[attr-defined]
            _check_shallow(v)


def _checked_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Sees every pair, including the values a repeated key discards: PostgreSQL
    # rejects those too.
    for k, v in pairs:
        _check_str(k)
        _check_shallow(v)
    return dict(pairs)


# Decoders built once (json.loads(text, **kw) would build one per call).
_DECODER = json.JSONDecoder(
    parse_float=_parse_float, parse_int=JsonbNumber, parse_constant=_reject_constant
)
_CHECKED_DECODER = json.JSONDecoder(
    parse_float=_checked_number,
    parse_int=_checked_number,
    parse_constant=_reject_constant,
    object_pairs_hook=_checked_object,
)


def loads(text: str) -> object:
    """Parse JSON text as jsonb input does; objects -> dict (a repeated key keeps its
    last value), arrays -> list, numbers -> JsonbNumber. Raises ValueError on text
    PostgreSQL rejects (bad JSON, NaN, \\u0000, lone surrogates, numeric overflow)."""
    if not isinstance(text, str):
        raise TypeError(f"loads() needs str, not {type(text).__name__}")
    if not text.isascii() and _SURROGATE_RE.search(text) is not None:
        raise ValueError("invalid JSON: text holds a lone surrogate")
    # Only text that may decode to NUL or a surrogate, or that may hold a huge plain
    # number, takes the slower checked parse; a false alarm only costs time.
    checked = len(text) > _LONG_TEXT or ("\\u" in text and _ESCAPE_RE.search(text) is not None)
    try:
        if not checked:
            return _DECODER.decode(text)
        value = _CHECKED_DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    _check_shallow(value)
    return value


def _overflow(literal: str) -> NoReturn:
    raise ValueError(f"number {literal[:40]!r} overflows PostgreSQL's numeric format")


def _number_text(literal: str) -> str:
    """PostgreSQL numeric's text for a JSON number literal (exact, exponent expanded)."""
    if len(literal) < 1000 and "e" not in literal and "E" not in literal:
        # Plain integer or decimal: already canonical, except that -0, -0.00 lose the sign.
        if literal[0] == "-" and not literal.strip("-0."):
            return literal[1:]
        return literal
    m = _NUMBER_RE.fullmatch(literal)
    if m is None:
        raise ValueError(f"not a JSON number: {literal[:40]!r}")
    sign, int_part, frac, exp_sign, exp_digits = m.groups()
    frac = frac or ""
    exponent = 0
    if exp_digits is not None:
        exp_digits = exp_digits.lstrip("0")
        if len(exp_digits) > 10:
            _overflow(literal)
        exponent = int(exp_digits or "0")
        if exponent >= _MAX_EXPONENT:
            _overflow(literal)
        if exp_sign == "-":
            exponent = -exponent
    dscale = max(0, len(frac) - exponent)
    if dscale > _MAX_DSCALE:
        _overflow(literal)
    digits = (int_part + frac).lstrip("0")
    if not digits:
        return "0." + "0" * dscale if dscale else "0"
    # value * 10**dscale is the integer `digits` followed by `shift` zeros.
    shift = exponent - len(frac) + dscale
    if len(digits) + shift - dscale > _MAX_INT_DIGITS:
        _overflow(literal)
    scaled = digits + "0" * shift
    if dscale:
        if len(scaled) <= dscale:
            scaled = "0" * (dscale - len(scaled) + 1) + scaled
        scaled = scaled[:-dscale] + "." + scaled[-dscale:]
    return "-" + scaled if sign else scaled


def _key_order(key: str) -> tuple[int, str]:
    # UTF-8 byte order equals code point order, so only the length needs the bytes.
    return (len(key) if key.isascii() else len(key.encode("utf-8")), key)


def _float_text(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not representable in JSON")
    return _number_text(repr(value))


def _dump(value: object) -> str:
    t = type(value)
    if t is str:
        return _encode_str(value)
    if t is dict:
        if not value:
            return "{}"
        try:
            keys = sorted(value, key=_key_order)  # type: ignore[arg-type]
        except AttributeError:
            raise TypeError("object keys must be str") from None
        return (
            "{"
            + ", ".join([_encode_str(k) + ": " + _dump(value[k]) for k in keys])  # type: ignore[index]
            + "}"
        )
    if t is list or t is tuple:
        if not value:
            return "[]"
        return "[" + ", ".join(map(_dump, value)) + "]"  # type: ignore[call-overload]
    if t is JsonbNumber:
        return _number_text(value)  # type: ignore[arg-type]
    fn = _SCALARS.get(t)
    if fn is not None:
        return fn(value)
    # Subclasses (bool is checked by type above, so isinstance order is safe here).
    if isinstance(value, JsonbNumber):
        return _number_text(value)
    if isinstance(value, str):
        return _encode_str(value)
    if isinstance(value, dict):
        return _dump(dict(value))
    if isinstance(value, (list, tuple)):
        return _dump(list(value))
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _float_text(float(value))
    raise TypeError(f"cannot render {type(value).__name__} as jsonb")


_SCALARS: dict[type, Callable[[object], str]] = {
    bool: lambda v: "true" if v else "false",
    type(None): lambda v: "null",
    int: lambda v: str(v),
    float: _float_text,  # type: ignore[dict-item]
}


def dumps(value: object) -> str:
    """Render a ``loads()``-style value as PostgreSQL's ``jsonb::text``."""
    try:
        return _dump(value)
    except RecursionError:
        raise ValueError("value nested too deeply") from None


def jsonb_text(raw_json: str) -> str:
    """``raw_json::jsonb::text``; raises ValueError on input PostgreSQL would reject."""
    return dumps(loads(raw_json))


def canonical_or_none(raw: str | None) -> str | None:
    """None or "" -> None, else ``jsonb_text(raw)``."""
    if not raw:
        return None
    return jsonb_text(raw)
