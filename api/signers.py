"""Who a signature speaks for, from the index: the member behind an active key, and its roles.

Every write route checks a signed message's signer the way the contracts will (an active key of an active
member); a batch asks about the same few signers many times, so :class:`Signers` remembers the answers for one
request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from node_bridge.models import Member, MemberKey

ACTIVE = "active"


def active_member_of(session: Session, signer: str) -> Member | None:
    """The active member that ``signer`` is an active key of; None otherwise."""
    key = session.get(MemberKey, signer)
    if key is None or not key.active:
        return None
    member = session.get(Member, key.member_id)
    return member if member is not None and member.status == ACTIVE else None


def signer_standing(session: Session, signer: str) -> tuple[str, int] | None:
    """(member id, role bits) of an active key of an active member; None otherwise."""
    member = active_member_of(session, signer)
    return None if member is None else (member.id, member.roles)


@dataclass
class Signers:
    """:func:`signer_standing`, each signer looked up once (per request)."""

    session: Session
    cache: dict[str, tuple[str, int] | None] = field(default_factory=dict)

    def standing(self, signer: str) -> tuple[str, int] | None:
        if signer not in self.cache:
            self.cache[signer] = signer_standing(self.session, signer)
        return self.cache[signer]
