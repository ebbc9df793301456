"""Traceability writes (C5): products, lots, code issuance, signed code batches and signed checkpoint events.

Like :mod:`api.credit_writes`, everything here runs in the caller's SQL transaction and raises on the first bad
input, naming it (``events[3].codes[0]``); the route commits before it answers, so nothing of a rejected request is
stored.

- :mod:`api.trace.products`: products and lots;
- :mod:`api.trace.codes`: code issuance, the signed ``CodeBatch`` and reading codes back;
- :mod:`api.trace.verify`: a signed checkpoint event's shape, digest and signer (big batches over worker processes);
- :mod:`api.trace.events`: accepting signed checkpoint events (standing, custody, bulk inserts) and reading them;
- :mod:`api.trace.proofs`: events' inclusion proofs once the anchorer's root is indexed;
- :mod:`api.trace.sql`: the tables and bulk SQL they share (0x-hex and JSON values: :mod:`node_bridge.eip712`).
"""

from api.trace.codes import (
    MAX_CODES,
    IssuedBatch,
    batch_paths,
    code_batch_message,
    code_by_path,
    issue_codes,
    new_serials,
    own_batch,
    sign_code_batch,
)
from api.trace.events import (
    MAX_EVENTS,
    AcceptedEvent,
    SignedEvent,
    accept_checked,
    accept_events,
    check_events,
    event_codes,
    event_status,
)
from api.trace.products import MAX_TEXT, own_lot, own_product, register_lot, register_product
from api.trace.proofs import TREES, TreeCache, chain_anchor, chain_anchor_table, proof
from api.trace.verify import Verifier, digital_link_of, normalise_event
from node_bridge.eip712 import hex32, to_json

__all__ = [
    "MAX_CODES",
    "MAX_EVENTS",
    "MAX_TEXT",
    "TREES",
    "AcceptedEvent",
    "IssuedBatch",
    "SignedEvent",
    "TreeCache",
    "Verifier",
    "accept_checked",
    "accept_events",
    "batch_paths",
    "chain_anchor",
    "chain_anchor_table",
    "check_events",
    "code_batch_message",
    "code_by_path",
    "digital_link_of",
    "event_codes",
    "event_status",
    "hex32",
    "issue_codes",
    "new_serials",
    "normalise_event",
    "own_batch",
    "own_lot",
    "own_product",
    "proof",
    "register_lot",
    "register_product",
    "sign_code_batch",
    "to_json",
]
