"""SQL tables the API owns (sqlmodel): members' API keys and natural persons' salts.

Neither is an index table: the chain does not know them, and ``credtrace index rebuild`` leaves them alone.
Schema changes go through alembic (``node_bridge/migrations/versions/0002_access.py``).
"""

from __future__ import annotations

from datetime import datetime  # stored as sqlmodel's UTCDateTime: timezone-aware, read back in UTC

from sqlmodel import Field, SQLModel

from node_bridge.models import utcnow


class ApiKey(SQLModel, table=True):
    """An API key of a member: ``ctk_<id>_<secret>``; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=32, description="public key id, the middle part of the key")
    member_id: str = Field(max_length=66, index=True, description="0x-hex member id (keccak256 of its credit code)")
    label: str = Field(default="", max_length=200)
    secret_hash: str = Field(max_length=64, description="sha256 hex of the secret part")
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    last_used_at: datetime | None = Field(default=None, description="updated at most once per cache period")


class Person(SQLModel, table=True):
    """A natural person known only by a salted commitment; shredding erases the salt and the lookup key."""

    __tablename__ = "person"

    commitment: str = Field(primary_key=True, max_length=66, description="0x keccak256(salt ‖ normalised id)")
    salt: str | None = Field(default=None, max_length=64, description="32 random bytes, hex; NULL once shredded")
    lookup_key: str | None = Field(
        default=None, max_length=64, unique=True, index=True, description="HMAC-SHA256(pepper, normalised id), hex"
    )
    registered_by: str = Field(max_length=66, index=True, description="member id of the first registrant")
    created_at: datetime = Field(default_factory=utcnow)
    shredded_at: datetime | None = None


ACCESS_TABLES: tuple[type[SQLModel], ...] = (ApiKey, Person)
