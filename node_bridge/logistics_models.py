"""SQL tables of logistics credit (C6), filled by the indexer from the LogisticsRegistry's events alone.

Every row is chain-derived (an index rebuild restores it) and carries the block, time, transaction and log index
of the event that made it, so an answer can cite the transaction that proves each fact. Couriers appear only as
their salted commitments.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, UniqueConstraint
from sqlmodel import Field, SQLModel


class LogisticsFirm(SQLModel, table=True):
    """A registered delivery firm (``FirmRegistered``)."""

    __tablename__ = "logistics_firm"

    firm: str = Field(primary_key=True, max_length=66, description="subject id: the credit code, zero-padded")
    code: str | None = Field(default=None, max_length=18, description="the firm's unified social credit code")
    id: str = Field(max_length=66, unique=True, description="EIP-712 digest of the FirmRegistration")
    registrar: str = Field(max_length=66, index=True, description="member id of the LOGISTICS registrar")
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class LogisticsCourier(SQLModel, table=True):
    """A courier registered with a firm (``CourierRegistered``): a commitment, never a name or number."""

    __tablename__ = "logistics_courier"

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the CourierRegistration")
    courier: str = Field(max_length=66, index=True, description="salted commitment of the natural person")
    firm: str = Field(max_length=66, index=True)
    registrar: str = Field(max_length=66)
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class LogisticsEvaluation(SQLModel, table=True):
    """One evaluator's figures for a firm and a month (``EvaluationRecorded``)."""

    __tablename__ = "logistics_evaluation"
    __table_args__ = (UniqueConstraint("evaluator", "firm", "period", name="uq_logistics_evaluation_slot"),)

    id: str = Field(primary_key=True, max_length=66, description="EIP-712 digest of the Evaluation")
    evaluator: str = Field(max_length=66, index=True, description="member id of the PLATFORM or REGULATOR")
    firm: str = Field(max_length=66, index=True)
    period: int = Field(description="YYYYMM")
    parcels: int = Field(sa_type=BigInteger)
    on_time_bps: int
    loss_damage_bps: int
    complaints_per_10k: int = Field(sa_type=BigInteger)
    violations: int
    sanctions: int
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


class LogisticsRule(SQLModel, table=True):
    """A published version of the rating rule (``RulePublished``): the keccak256 of its file."""

    __tablename__ = "logistics_rule"

    version: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False})
    rule_hash: str = Field(max_length=66)
    id: str = Field(max_length=66, unique=True, description="EIP-712 digest of the RatingRule")
    publisher: str = Field(max_length=66, description="member id of the REGULATOR")
    signer: str = Field(max_length=42)
    block_number: int = Field(sa_type=BigInteger, index=True)
    block_time: int = Field(sa_type=BigInteger)
    tx_hash: str = Field(max_length=66)
    log_index: int


LOGISTICS_TABLES: tuple[type[SQLModel], ...] = (LogisticsFirm, LogisticsCourier, LogisticsEvaluation, LogisticsRule)
