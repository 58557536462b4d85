"""What makes a chain a chain: its rows, the fields its content hash covers and how that
hash is computed. The HMAC (same key, ``content + "|" + prev``), the links, the sequence
and every finding are the same for every chain Caracal keeps (FORMAT.md 2, 5 and 8), so
``stages.Run`` and ``findings`` take a description and are shared, never copied.

Two chains exist: the audit events (``EVENT_CHAIN``) and the admin changes
(``admin.chain.ADMIN_CHAIN``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from ..model import HASH_FIELDS, JSONB_FIELDS

#: The content hashes of one batch of rows: (recomputed content_sha256 per row, or NULL;
#: and a replacement for the batch's ``missing`` column, or None to keep it). A row whose
#: hash could not be found names why in ``missing`` (``admin.chain.ORDER_NOT_FOUND``).
ContentHasher = Callable[[pa.RecordBatch], tuple[pa.Array, "pa.Array | None"]]


@dataclass(frozen=True)
class ChainSpec:
    """One chain, described.

    ``name``: the report section (``Report.chain``). ``view``: the DuckDB view holding its
    rows (with the chain columns, provenance, ``absent_fields`` and
    ``occurred_at_digits``; a zone_id never NULL). ``hashed``: the fields whose absence
    makes the content hash impossible, in preimage order (``occurred_at`` last).
    ``optional``: hashed fields a shape may omit when NULL (hashed as NULL, only a match
    with the stored hash counts). ``content``: the hasher of a batch holding ``hashed``
    (None: the event chain's own, in the C kernel or SQL). ``what``: a row, in words."""

    name: str
    view: str
    hashed: tuple[str, ...]
    optional: tuple[str, ...] = ()
    content: ContentHasher | None = None
    what: str = "event"
    #: put in ``missing`` by ``content`` for a row whose hash it could not find (and the
    #: search budget it spent): worded ``key_order_not_found``, not ``field_absent``
    undecided: str | None = None
    budget: int | None = None
    #: a full row with a NULL chain_hmac was written without a key (the admin chain):
    #: linked but unsigned, said as such (``Reason.UNSIGNED``)
    unsigned_allowed: bool = False


#: The audit events' chain (FORMAT.md 2).
EVENT_CHAIN = ChainSpec(name="events", view="events", hashed=(*HASH_FIELDS, "occurred_at"),
                        optional=JSONB_FIELDS)
