"""SQL tables of consumer protection (C7), all derived from the ProtectionRegistry's events by the indexer.

- ``protection_fund_version``: every fund declaration as signed (the history); a fund's current state is its row
  of highest version (the contract accepts version n only after n - 1 of the same platform).
- ``protection_case_step``: every case step as signed (a case's timeline).
- ``protection_case``: one row per case, what its steps add up to (state, amounts claimed, paid and recovered,
  the promised and actual pay times, links to a trace code and a decision), recomputed from the steps whenever
  one is added or rolled back, so the summary and the risk signals are plain queries.

Amounts are minor units (fen for CNY) and times unix seconds, both within a signed 64-bit integer (the contract
caps amounts at 2^63 - 1). The consumer appears only as the commitment the platform signed, never in clear.
"""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class FundVersionRow(SQLModel, table=True):
    """One version of a platform's consumer-protection fund (``FundDeclared``)."""

    __tablename__ = "protection_fund_version"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the signed declaration")
    fund_id: str = Field(max_length=66, index=True)
    version: int
    platform: str = Field(max_length=66, index=True)
    amount: int = Field(sa_type=BigInteger, description="minor units of the currency")
    currency: str = Field(max_length=3)
    custodian: str
    period_start: int = Field(sa_type=BigInteger)
    period_end: int = Field(sa_type=BigInteger)
    nonce: str = Field(max_length=80)
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class CaseStepRow(SQLModel, table=True):
    """One signed step of an advance-compensation case (``CaseStepRecorded``)."""

    __tablename__ = "protection_case_step"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the signed step")
    case_id: str = Field(max_length=66, index=True)
    step: str = Field(max_length=12, description="complaint | compensated | recovered | closed")
    platform: str = Field(max_length=66)
    merchant: str = Field(max_length=66)
    consumer: str = Field(max_length=66, description="salted commitment, or zero")
    amount: int = Field(sa_type=BigInteger)
    due_by: int = Field(sa_type=BigInteger)
    trace_code: str = Field(max_length=66)
    decision: str = Field(max_length=66)
    at: int = Field(sa_type=BigInteger)
    nonce: str = Field(max_length=80)
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class CaseRow(SQLModel, table=True):
    """An advance-compensation case as its steps leave it."""

    __tablename__ = "protection_case"

    case_id: str = Field(primary_key=True, max_length=66)
    platform: str = Field(max_length=66, index=True)
    merchant: str = Field(max_length=66, index=True)
    merchant_code: str | None = Field(default=None, max_length=18, description="credit code, if an organisation")
    consumer: str = Field(max_length=66, description="salted commitment, or zero")
    state: str = Field(max_length=12, index=True, description="the last step: complaint ... closed")
    claimed: int = Field(sa_type=BigInteger)
    compensated: int = Field(default=0, sa_type=BigInteger)
    recovered: int = Field(default=0, sa_type=BigInteger)
    due_by: int = Field(sa_type=BigInteger, description="when the platform promised to pay")
    opened_at: int = Field(sa_type=BigInteger)
    paid_at: int | None = Field(default=None, sa_type=BigInteger, description="when it compensated the consumer")
    recovered_at: int | None = Field(default=None, sa_type=BigInteger, description="its last recovery")
    closed_at: int | None = Field(default=None, sa_type=BigInteger)
    last_at: int = Field(sa_type=BigInteger, description="time of its last step (the next may not be earlier)")
    trace_code: str | None = Field(default=None, max_length=66, index=True, description="first non-zero one")
    decision: str | None = Field(default=None, max_length=66, index=True, description="last non-zero one")
    steps: int
    opened_block: int = Field(sa_type=BigInteger)
    updated_block: int = Field(sa_type=BigInteger, index=True)


PROTECTION_TABLES: tuple[type[SQLModel], ...] = (FundVersionRow, CaseStepRow, CaseRow)
