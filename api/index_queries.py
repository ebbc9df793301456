"""Reads of the SQL index, as public shapes. The index is what the chain says; nothing here writes."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.schemas import ApprovalPublic, KeyPublic, MemberPublic, Page, ProposalPublic
from credtrace.errors import NotFound, ValidationFailed
from node_bridge.consortium import Action, Role, decode_payload
from node_bridge.models import Member, MemberKey, Proposal, ProposalApproval


def role_names(roles: int) -> list[str]:
    return [role.name for role in Role if role.name and roles & role]


def _role_bit(role: str) -> int:
    try:
        return int(Role[role.upper()])
    except KeyError as exc:
        raise ValidationFailed("role", f"{role!r} is not one of {', '.join(r.name or '' for r in Role)}") from exc


def _member(member: Member, keys: list[MemberKey]) -> MemberPublic:
    return MemberPublic(
        id=member.id,
        name=member.name,
        roles=role_names(member.roles),
        status=member.status,
        admitted_block=member.admitted_block,
        updated_block=member.updated_block,
        keys=[KeyPublic.model_validate(key, from_attributes=True) for key in keys],
    )


def list_members(session: Session, role: str | None, status: str | None, limit: int, offset: int) -> Page[MemberPublic]:
    query = select(Member)
    if role:
        query = query.where(col(Member.roles).op("&")(_role_bit(role)) != 0)
    if status:
        query = query.where(Member.status == status.lower())
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    members = session.exec(query.order_by(col(Member.admitted_block), col(Member.id)).offset(offset).limit(limit)).all()
    ids = [m.id for m in members]
    keys = session.exec(
        select(MemberKey).where(col(MemberKey.member_id).in_(ids)).order_by(col(MemberKey.added_block))
    ).all()
    by_member: dict[str, list[MemberKey]] = {}
    for key in keys:
        by_member.setdefault(key.member_id, []).append(key)
    items = [_member(m, by_member.get(m.id, [])) for m in members]
    return Page[MemberPublic](items=items, total=total, limit=limit, offset=offset)


def get_member(session: Session, member_id: str) -> MemberPublic:
    member = session.get(Member, member_id.lower())
    if member is None:
        raise NotFound(f"no member {member_id} in the index")
    keys = session.exec(select(MemberKey).where(MemberKey.member_id == member.id).order_by(col(MemberKey.added_block)))
    return _member(member, list(keys))


def _fields(proposal: Proposal) -> dict[str, object]:
    try:
        decoded = decode_payload(Action[proposal.action], bytes.fromhex(proposal.payload.removeprefix("0x")))
    except (KeyError, ValueError):
        return {}
    return {name: role_names(value) if name == "roles" else value for name, value in decoded.items()}


def _proposal(proposal: Proposal, approvals: list[ProposalApproval]) -> ProposalPublic:
    data = proposal.model_dump()
    return ProposalPublic(
        **data,
        fields=_fields(proposal),
        approvers=[ApprovalPublic.model_validate(a, from_attributes=True) for a in approvals],
    )


def list_proposals(
    session: Session, executed: bool | None, member_id: str | None, limit: int, offset: int
) -> Page[ProposalPublic]:
    query = select(Proposal)
    if executed is not None:
        query = query.where(Proposal.executed == executed)
    if member_id:
        query = query.where(Proposal.member_id == member_id.lower())
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(Proposal.created_block).desc(), col(Proposal.id)).offset(offset).limit(limit)
    )
    items = [_proposal(p, []) for p in rows]
    return Page[ProposalPublic](items=items, total=total, limit=limit, offset=offset)


def get_proposal(session: Session, proposal_id: str) -> ProposalPublic:
    proposal = session.get(Proposal, proposal_id.lower())
    if proposal is None:
        raise NotFound(f"no proposal {proposal_id} in the index")
    approvals = session.exec(
        select(ProposalApproval)
        .where(ProposalApproval.proposal_id == proposal.id)
        .order_by(col(ProposalApproval.block_number), col(ProposalApproval.member_id))
    )
    return _proposal(proposal, list(approvals))
