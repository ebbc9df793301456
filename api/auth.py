"""Who is calling: a member's API key (``Authorization: Bearer ctk_<id>_<secret>``) and the roles it carries.

A key is shown once when it is created; the store keeps only the SHA-256 of its secret, compared in constant
time. The caller is the key's member as the index (table ``member``) says: it must be active, and its roles are
the chain's. A verified key is cached in memory for ``api_key_cache_seconds`` (default 5 s), so the common request
costs no SQL; a revoked key, a suspended member or changed roles take effect within that time. Keys are an
access check only: signatures inside write bodies are still what makes a write valid on chain.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from operator import or_
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.models import ApiKey
from credtrace.errors import NotAuthenticated, NotAuthorised, NotFound, ValidationFailed
from node_bridge.consortium import Role
from node_bridge.models import Member, utcnow

KEY_PREFIX = "ctk"
ACTIVE = "active"
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is refreshed at most this often (and only when a key is not served from the cache)."""
_KEY = re.compile(r"^ctk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")
_MEMBER_ID = re.compile(r"^0x[0-9a-f]{64}$")
_USAGE = "send 'Authorization: Bearer ctk_<id>_<secret>', a member's API key (`credtrace apikey create`)"


@dataclass(frozen=True)
class Caller:
    """The member an API key speaks for."""

    member_id: str
    name: str
    roles: Role
    key_id: str

    def has_any(self, roles: Role) -> bool:
        return bool(self.roles & roles)


def role_names(roles: Role) -> list[str]:
    """The single roles set in ``roles``, in the contract's order."""
    return [role.name or "" for role in Role if role & roles]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(token: str) -> tuple[str, str]:
    """Split ``ctk_<id>_<secret>`` into id and secret; :class:`NotAuthenticated` if it is not one."""
    match = _KEY.match(token.strip())
    if match is None:
        raise NotAuthenticated(f"is not a credtrace API key; {_USAGE}")
    return match.group(1), match.group(2)


def member_id_of(value: str, field: str = "member") -> str:
    """A member id in canonical form (0x + 64 lowercase hex); :class:`ValidationFailed` on ``field`` if not."""
    canonical = value.strip().lower()
    if not _MEMBER_ID.match(canonical):
        raise ValidationFailed(field, f"{value!r} is not a member id (0x and 64 hex digits)")
    return canonical


def resolve_member(session: Session, ref: str, known: Mapping[str, tuple[str, str]] | None = None) -> tuple[str, str]:
    """``(member id, name)`` for a 0x member id, a member's name in the index, or a name in ``known`` (the demo's
    names before the index has them); :class:`NotFound` naming what was tried."""
    if ref.startswith("0x"):
        canonical = member_id_of(ref)
        member = session.get(Member, canonical)
        return canonical, member.name if member is not None else "(not in the index yet)"
    member = session.exec(select(Member).where(Member.name == ref)).first()
    if member is not None:
        return member.id, member.name
    if known and ref in known:
        return known[ref]
    raise NotFound(f"member: no member named {ref!r} in the index or the demo; give its 0x member id instead")


def create_api_key(session: Session, member_id: str, label: str = "") -> tuple[str, ApiKey]:
    """A new key for ``member_id``; returns the full key (shown once, never stored) and its row (not committed)."""
    secret = secrets.token_urlsafe(32)
    record = ApiKey(id=secrets.token_hex(8), member_id=member_id_of(member_id), label=label, secret_hash=_hash(secret))
    session.add(record)
    session.flush()
    return f"{KEY_PREFIX}_{record.id}_{secret}", record


def list_api_keys(session: Session, member_id: str | None = None) -> list[ApiKey]:
    """Every key (of one member if given), oldest first; the rows hold no secret."""
    query = select(ApiKey).order_by(col(ApiKey.created_at), col(ApiKey.id))
    if member_id is not None:
        query = query.where(ApiKey.member_id == member_id_of(member_id))
    return list(session.exec(query))


def revoke_api_key(session: Session, key_id: str) -> ApiKey:
    """Revoke a key (idempotent: the first revocation time stays); :class:`NotFound` if there is no such key."""
    record = session.get(ApiKey, key_id)
    if record is None:
        raise NotFound(f"no API key with id {key_id!r} (see `credtrace apikey list`)")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        session.add(record)
        session.flush()
    return record


def key_record(session: Session, token: str) -> ApiKey | None:
    """The unrevoked row of a full key whose secret matches, else None (no exception, no member check)."""
    try:
        key_id, secret = parse_key(token)
    except NotAuthenticated:
        return None
    record = session.get(ApiKey, key_id)
    if record is None or record.revoked_at is not None or not hmac.compare_digest(record.secret_hash, _hash(secret)):
        return None
    return record


def verify_api_key(session: Session, token: str) -> Caller:
    """The caller a full key speaks for, from SQL. 401 (:class:`NotAuthenticated`) for an unknown, wrong or
    revoked key; 403 (:class:`NotAuthorised`) if its member is not an active member in the index."""
    key_id, secret = parse_key(token)
    record = session.get(ApiKey, key_id)
    if record is None or not hmac.compare_digest(record.secret_hash, _hash(secret)):
        raise NotAuthenticated(f"API key {key_id} is unknown or its secret is wrong; {_USAGE}")
    if record.revoked_at is not None:
        raise NotAuthenticated(f"API key {key_id} was revoked at {record.revoked_at.isoformat()}")
    member = session.get(Member, record.member_id)
    if member is None or member.status != ACTIVE:
        state = member.status if member is not None else "not in the index"
        raise NotAuthorised(f"Authorization: API key {key_id} belongs to member {record.member_id}, which is {state}")
    now = utcnow()
    if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
        record.last_used_at = now
        session.add(record)
        session.commit()
    return Caller(member_id=member.id, name=member.name, roles=Role(member.roles), key_id=key_id)


@dataclass
class _Entry:
    secret_hash: str
    caller: Caller
    expires: float


class KeyCache:
    """Verified keys in memory for ``ttl`` seconds (0: no cache), keyed by key id; holds hashes, never secrets."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, _Entry] = {}

    def get(self, key_id: str, secret: str) -> Caller | None:
        """The cached caller; None if not cached or expired. A wrong secret for a cached id is refused at once."""
        entry = self._entries.get(key_id)
        if entry is None or entry.expires <= time.monotonic():
            return None
        if not hmac.compare_digest(entry.secret_hash, _hash(secret)):
            raise NotAuthenticated(f"API key {key_id} is unknown or its secret is wrong; {_USAGE}")
        return entry.caller

    def put(self, key_id: str, secret: str, caller: Caller) -> None:
        if self.ttl > 0:
            self._entries[key_id] = _Entry(_hash(secret), caller, time.monotonic() + self.ttl)

    def forget(self, key_id: str) -> None:
        """Drop a key at once (this process only; others drop it when their entry expires)."""
        self._entries.pop(key_id, None)


def _verify_in_store(engine: Engine, token: str) -> Caller:
    with Session(engine, expire_on_commit=False) as session:
        return verify_api_key(session, token)


_bearer = HTTPBearer(auto_error=False, description="A member's API key: `ctk_<id>_<secret>`.")


async def current_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """The calling member: from the cache when it can, else from SQL (in a worker thread)."""
    if credentials is None:
        raise NotAuthenticated(f"missing or not a Bearer credential; {_USAGE}")
    key_id, secret = parse_key(credentials.credentials)
    cache: KeyCache = request.app.state.key_cache
    caller = cache.get(key_id, secret)
    if caller is None:
        caller = await run_in_threadpool(_verify_in_store, request.app.state.engine, credentials.credentials)
        cache.put(key_id, secret, caller)
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
"""Any active member with a valid API key."""


def require_roles(*roles: Role) -> Callable[[Caller], Coroutine[Any, Any, Caller]]:
    """A dependency admitting an active member holding at least one of ``roles``; 403 naming them otherwise.

    Use it as ``caller: Annotated[Caller, Depends(require_roles(Role.REGULATOR))]`` or in a route's
    ``dependencies=[Depends(require_roles(...))]``.
    """
    needed = reduce(or_, roles, Role(0))
    wanted = " or ".join(role_names(needed))

    async def check(caller: CallerDep) -> Caller:
        if not caller.has_any(needed):
            held = ", ".join(role_names(caller.roles)) or "no role"
            raise NotAuthorised(f"Authorization: member {caller.name} ({held}) may not do this; it needs {wanted}")
        return caller

    check.__name__ = "require_" + "_or_".join(role_names(needed)).lower()
    return check


RegulatorDep = Annotated[Caller, Depends(require_roles(Role.REGULATOR))]
"""An active REGULATOR member."""
