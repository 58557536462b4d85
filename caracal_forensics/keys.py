"""The deployment's audit HMAC key: where it comes from, how it is checked, how it is named.

The key is read the way Caracal's services take it (FORMAT.md section 2): hex text that
decodes to at least 32 bytes, given directly in ``AUDIT_HMAC_KEY`` or in a file named by
``AUDIT_HMAC_KEY_FILE``; the toolkit adds ``--key-file PATH``. It is never accepted on the
command line itself (argv is visible to every user of the machine), and no message,
report or log line ever holds it: reports carry only :func:`key_fingerprint`.
"""

from __future__ import annotations

import binascii
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from .errors import HmacKeyError

KEY_ENV = "AUDIT_HMAC_KEY"
KEY_FILE_ENV = "AUDIT_HMAC_KEY_FILE"
MIN_KEY_BYTES = 32
#: A key file holds some 64 hex digits; one longer than this is not a key file (a device
#: such as /dev/zero, a log named by mistake) and is never read whole.
MAX_KEY_FILE_BYTES = 1 << 16


def parse_key(text: str | bytes, *, origin: str) -> bytes:
    """Decode hex key text (surrounding whitespace ignored); ``origin`` names it in errors."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise HmacKeyError(f"HMAC key from {origin} is not hex text") from None
    parts = text.split()
    if not parts:
        raise HmacKeyError(f"HMAC key from {origin} is empty")
    stripped = "".join(parts)
    try:
        key = binascii.unhexlify(stripped)
    except (binascii.Error, ValueError):
        # Never echo the text: a near-miss (a typo, a base64 key) is still a secret.
        raise HmacKeyError(
            f"HMAC key from {origin} is not hex text ({len(stripped)} characters)"
        ) from None
    if len(parts) > 1:
        # Two keys in one file (an old and a new one?) would join into a third that
        # fails every HMAC, which reads as tampering: say so instead.
        raise HmacKeyError(
            f"HMAC key from {origin} is {len(parts)} pieces of hex separated by whitespace "
            "(several lines?); one hex key is expected"
        )
    return check_key(key, origin=origin)


def check_key(key: bytes, *, origin: str = "the caller") -> bytes:
    """Reject keys shorter than Caracal accepts (32 bytes decoded)."""
    if len(key) < MIN_KEY_BYTES:
        raise HmacKeyError(
            f"HMAC key from {origin} decodes to {len(key)} bytes; at least "
            f"{MIN_KEY_BYTES} are required"
        )
    return key


def read_key_file(path: str | os.PathLike[str], *, origin: str | None = None) -> bytes:
    """Read and decode a file holding the key as hex text."""
    origin = origin or f"file {os.fspath(path)}"
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise HmacKeyError(f"cannot read HMAC key {origin}: {error.strerror}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise HmacKeyError(f"HMAC key from {origin} is longer than {MAX_KEY_FILE_BYTES:,} "
                           "bytes: not a key file")
    return parse_key(data, origin=origin)


def load_key(
    key_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes | None:
    """The decoded key from ``key_file``, else $AUDIT_HMAC_KEY, else $AUDIT_HMAC_KEY_FILE.

    None when none is given: verification then checks content and links and reports the
    HMAC as unverifiable. A given but unusable key is an error, never silently ignored.
    """
    env = os.environ if environ is None else environ
    if key_file is not None:
        return read_key_file(key_file, origin=f"--key-file {os.fspath(key_file)}")
    if env.get(KEY_ENV, "").strip():
        return parse_key(env[KEY_ENV], origin=f"${KEY_ENV}")
    if env.get(KEY_FILE_ENV, "").strip():
        path = env[KEY_FILE_ENV].strip()
        return read_key_file(path, origin=f"${KEY_FILE_ENV} ({path})")
    return None


def coerce_key(key: bytes | str | None) -> bytes | None:
    """The library's key argument: ``str`` is hex text (as in key.hex), ``bytes`` decoded."""
    if key is None:
        return None
    if isinstance(key, str):
        return parse_key(key, origin="the key argument")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return check_key(bytes(key), origin="the key argument")
    raise HmacKeyError(f"the key must be hex text (str) or bytes, not {type(key).__name__}")


def key_fingerprint(key: bytes | None) -> str | None:
    """``sha256:`` + the first 16 hex digits of SHA-256 over the decoded key bytes.

    Enough to tell two keys apart in reports (64 bits), far too little to help guess a
    256-bit key. Same definition as ``printf %s HEX | xxd -r -p | sha256sum | cut -c1-16``.
    """
    if key is None:
        return None
    return "sha256:" + hashlib.sha256(key).hexdigest()[:16]
