"""SQL tables of online payment management (C11), filled by the indexer from PaymentRegistry events.

``payment_binding`` and ``payment_signal`` hold every signed field of the ``AccountBound`` and
``PaymentSignalFiled`` events; ``payment_alert`` holds the alerts :mod:`node_bridge.payment_index` derives from them
and from the CreditRegistry's blacklist records, each with the ids of the bindings and records that prove it. All
three are index tables: an index rebuild drops and derives them again, identically.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel


class PaymentBinding(SQLModel, table=True):
    """A settlement account (its keyed hash, never the number) bound to a merchant's subject by a PAYMENT member, and
    the unbinding that ended it, if one did (a pair bound again later is a new row)."""

    __tablename__ = "payment_binding"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the signed AccountBinding")
    payment: str = Field(max_length=66, index=True, description="member id of the PAYMENT member")
    subject: str = Field(max_length=66, index=True)
    subject_code: str | None = Field(default=None, max_length=18, description="credit code; None for a person")
    account_hash: str = Field(max_length=66, index=True, description="HMAC-SHA256(pepper, account number)")
    bound_at: int = Field(sa_type=BigInteger)
    nonce: str = Field(max_length=80)
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int
    unbound_by: str | None = Field(default=None, max_length=66, description="id of the AccountUnbinding that ended it")
    unbound_at: int | None = Field(default=None, sa_type=BigInteger)
    unbound_block: int | None = Field(default=None, sa_type=BigInteger, index=True)
    unbound_tx: str | None = Field(default=None, max_length=66)


class PaymentSignalRow(SQLModel, table=True):
    """A PAYMENT member's monthly aggregates for one merchant."""

    __tablename__ = "payment_signal"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the signed PaymentSignal")
    payment: str = Field(max_length=66, index=True)
    merchant: str = Field(max_length=66, index=True)
    month: int = Field(description="YYYYMM")
    orders: int = Field(sa_type=BigInteger)
    refund_bps: int
    chargeback_bps: int
    nonce: str = Field(max_length=80)
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class PaymentRelation(SQLModel, table=True):
    """Two subjects declared one group (``SubjectsRelated``); ``subject_a`` < ``subject_b`` (0x-hex order)."""

    __tablename__ = "payment_relation"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the signed SubjectRelation")
    declarant: str = Field(max_length=66, description="member id of the PAYMENT or REGULATOR member")
    subject_a: str = Field(max_length=66, index=True)
    subject_b: str = Field(max_length=66, index=True)
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class PaymentAlert(SQLModel, table=True):
    """An alert raised by one event (a binding, or a first blacklist record), as of that event's place in the chain.

    ``subject`` is the subject of the raising event; ``subjects`` every subject involved (the raising one first);
    ``bindings`` and ``records`` the ids of the bindings and credit records that prove the alert.
    """

    __tablename__ = "payment_alert"

    id: str = Field(primary_key=True, max_length=66, description="keccak256 of the kind and the raising event")
    kind: str = Field(max_length=32, index=True, description="shared_account | blacklist_reappearance")
    account_hash: str = Field(max_length=66, index=True)
    subject: str = Field(max_length=66, index=True)
    subjects: list[str] = Field(sa_column=Column(JSON, nullable=False))
    bindings: list[str] = Field(sa_column=Column(JSON, nullable=False))
    records: list[str] = Field(sa_column=Column(JSON, nullable=False))
    raised_by: str = Field(max_length=66, description="id of the binding or credit record that raised it")
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


PAYMENT_TABLES: tuple[type[SQLModel], ...] = (PaymentBinding, PaymentSignalRow, PaymentRelation, PaymentAlert)
