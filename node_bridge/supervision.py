"""Inter-department collaborative supervision (C12): the messages departments sign, mirrored in Solidity.

A case is a chain of ``CaseEntry`` messages, each signed by a department (a REGULATOR member): OPEN on a subject,
REFER to another department with a deadline, ACKNOWLEDGE (by the department referred to), EVIDENCE, FINDING,
LINK_DECISION, CLOSE (by the opener). A ``JointDecision`` names two or more departments of the case; each signs the
same EIP-712 digest, and the decision is active once all have (``contracts/SupervisionRegistry.sol``).

Case texts are not on chain: an entry carries ``noteHash = keccak256(text)`` (:func:`note_hash`); the API keeps the
text beside the case and shows it only to the departments on the case and to auditors.

:func:`replay` applies entries to a :class:`CaseState` with the contract's rules and errors; the API uses it to
refuse a step out of order before it reaches the chain, over what the index holds plus what is accepted but not
yet indexed, and to build the case's timeline.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from credtrace.errors import Conflict
from node_bridge.consortium import Role
from node_bridge.eip712 import TypeFields, hex32, keccak
from node_bridge.signed import MessageType, SignedRegistry

CONTRACT = "SupervisionRegistry"
ZERO32 = bytes(32)
MAX_DEPARTMENTS = 32
MAX_NOTE = 20_000
"""Most characters of a case text (description, finding) the API keeps."""


class Action(enum.IntEnum):
    """Case actions, numbered as the contract numbers them."""

    OPEN = 0
    REFER = 1
    ACKNOWLEDGE = 2
    EVIDENCE = 3
    FINDING = 4
    LINK_DECISION = 5
    CLOSE = 6

    @property
    def slug(self) -> str:
        return self.name.lower().replace("_", "-")


class Standing(enum.IntEnum):
    """Where a department stands on a case (``departmentState``)."""

    NONE = 0
    REFERRED = 1
    ON_CASE = 2


CASE_ENTRY: TypeFields = [
    {"name": "department", "type": "bytes32"},
    {"name": "caseId", "type": "bytes32"},
    {"name": "action", "type": "uint8"},
    {"name": "subject", "type": "bytes32"},
    {"name": "counterpart", "type": "bytes32"},
    {"name": "deadline", "type": "uint64"},
    {"name": "documentHash", "type": "bytes32"},
    {"name": "noteHash", "type": "bytes32"},
    {"name": "ref", "type": "bytes32"},
    {"name": "at", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
]
JOINT_DECISION: TypeFields = [
    {"name": "caseId", "type": "bytes32"},
    {"name": "subject", "type": "bytes32"},
    {"name": "kind", "type": "uint8"},
    {"name": "tier", "type": "uint8"},
    {"name": "measures", "type": "uint32"},
    {"name": "documentHash", "type": "bytes32"},
    {"name": "effectiveAt", "type": "uint64"},
    {"name": "validUntil", "type": "uint64"},
    {"name": "departments", "type": "bytes32[]"},
    {"name": "nonce", "type": "uint256"},
]

REGISTRY = SignedRegistry(
    CONTRACT,
    types=(
        # `subject` is 0x-hex: zero on every entry but OPEN (a credit code is turned into its id before signing)
        MessageType("CaseEntry", CASE_ENTRY, "record", "department", Role.REGULATOR),
        # signed by each of `departments` (a bytes32[] signer field: see api/signed_writes.py)
        MessageType("JointDecision", JOINT_DECISION, "cosign", "departments", Role.REGULATOR, subjects=("subject",)),
    ),
)


def note_hash(text: str) -> bytes:
    """What an entry signs for a case text: keccak256 of its UTF-8 bytes."""
    return keccak(text.encode())


def case_id(reference: str) -> bytes:
    """A case id from a department's case reference (``MR-2026-0017``): keccak256 of ``credtrace case:`` + it.

    A 0x-hex id is taken as it is, so commands accept either."""
    if reference.startswith("0x") and len(reference) == 66:
        return bytes.fromhex(reference[2:])
    return keccak(b"credtrace case:" + reference.encode())


def cosignature_id(decision_id: bytes, department: bytes) -> bytes:
    """The id one department's signature of a joint decision is accepted and queued under:
    keccak256(decision id ‖ department), since every department signs the same digest."""
    return keccak(decision_id + department)


def _conflict(error: str, field: str, reason: str) -> Conflict:
    return Conflict(field, error, reason)


@dataclass
class Referral:
    id: bytes
    by: bytes
    to: bytes
    deadline: int
    at: int
    acknowledged_by: bytes | None = None
    late: bool = False


@dataclass
class CaseState:
    """A case as its entries so far make it (what the contract stores, plus the referrals' history)."""

    id: bytes
    subject: bytes = ZERO32
    opener: bytes = ZERO32
    closed: bool = False
    standing: dict[bytes, Standing] = field(default_factory=dict)
    referrals: dict[bytes, Referral] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.opener != ZERO32

    def departments(self) -> list[bytes]:
        """The departments on the case or referred to it (who may see it), opener first."""
        return list(self.standing)

    def check_open(self, subject: bytes) -> None:
        """The case exists, is open, and ``subject`` is zero or the case's (contract: UnknownCase, CaseClosed,
        SubjectMismatch)."""
        if not self.exists:
            raise _conflict("UnknownCase", "caseId", f"no case {hex32(self.id)} was opened")
        if self.closed:
            raise _conflict("CaseClosed", "caseId", f"case {hex32(self.id)} is closed: nothing more is recorded on it")
        if subject != ZERO32 and subject != self.subject:
            raise _conflict("SubjectMismatch", "subject", f"the case is on {hex32(self.subject)}, not {hex32(subject)}")

    def apply(
        self, entry_id: bytes, m: Mapping[str, Any], *, is_department: bool = True, block_time: int | None = None
    ) -> bool:
        """Apply one entry with the contract's rules (a :class:`Conflict` named after its custom error if it breaks
        one); returns whether it is a late acknowledgement. ``is_department``: whether ``counterpart`` is an active
        REGULATOR member (checked by the caller); ``block_time`` when it was recorded, if it was."""
        action, department, entry_case = m["action"], m["department"], m["caseId"]
        if action > Action.CLOSE:
            raise _conflict("UnknownAction", "action", f"{action} is not one of {', '.join(a.slug for a in Action)}")
        if entry_case == ZERO32:
            raise _conflict("ZeroCaseId", "caseId", "a case id of zero")
        if action == Action.OPEN:
            if self.exists:
                raise _conflict("CaseExists", "caseId", f"case {hex32(entry_case)} was opened already")
            if m["subject"] == ZERO32:
                raise _conflict("MissingSubject", "subject", "a case is opened on a subject")
            self.subject, self.opener = m["subject"], department
            self.standing[department] = Standing.ON_CASE
            return False
        self.check_open(m["subject"])
        if action == Action.ACKNOWLEDGE:
            return self._acknowledge(m, block_time)
        if self.standing.get(department) != Standing.ON_CASE:
            referred = self.standing.get(department) == Standing.REFERRED
            why = "acknowledge the referral first" if referred else "it did not open it nor acknowledge a referral"
            raise _conflict("NotOnCase", "department", f"{hex32(department)} is not on case {hex32(entry_case)}: {why}")
        if action == Action.REFER:
            to = m["counterpart"]
            if not is_department:
                raise _conflict("NotADepartment", "counterpart", f"{hex32(to)} is not an active REGULATOR member")
            if to in self.standing:
                raise _conflict("AlreadyOnCase", "counterpart", f"{hex32(to)} is on the case or referred it already")
            if m["deadline"] <= m["at"]:
                raise _conflict("InvalidDeadline", "deadline", f"{m['deadline']} is not after the referral's time")
            self.standing[to] = Standing.REFERRED
            self.referrals[entry_id] = Referral(entry_id, department, to, m["deadline"], m["at"])
        elif action == Action.EVIDENCE:
            if m["documentHash"] == ZERO32:
                raise _conflict("MissingDocument", "documentHash", "evidence names the hash of its document")
            if m["noteHash"] == ZERO32:
                raise _conflict("MissingNote", "noteHash", "evidence carries the hash of its description")
        elif action == Action.FINDING:
            if m["noteHash"] == ZERO32:
                raise _conflict("MissingNote", "noteHash", "a finding carries the hash of its text")
        elif action == Action.LINK_DECISION:
            if m["ref"] == ZERO32:
                raise _conflict("MissingReference", "ref", "name the decision (record or joint decision id)")
        elif action == Action.CLOSE:
            if department != self.opener:
                raise _conflict(
                    "NotOpener", "department", f"only the opening department {hex32(self.opener)} closes it"
                )
            self.closed = True
        return False

    def _acknowledge(self, m: Mapping[str, Any], block_time: int | None) -> bool:
        ref, department = m["ref"], m["department"]
        if ref == ZERO32:
            raise _conflict("MissingReference", "ref", "name the referral acknowledged (its entry id)")
        referral = self.referrals.get(ref)
        if referral is None:
            raise _conflict("NoReferral", "ref", f"no referral {hex32(ref)} on case {hex32(self.id)}")
        if referral.to != department:
            raise _conflict(
                "WrongDepartment",
                "department",
                f"the referral was made to {hex32(referral.to)}, not {hex32(department)}",
            )
        if referral.acknowledged_by is not None:
            raise _conflict("AlreadyAcknowledged", "ref", f"referral {hex32(ref)} was acknowledged already")
        referral.acknowledged_by = department
        referral.late = block_time is not None and block_time > referral.deadline
        self.standing[department] = Standing.ON_CASE
        return referral.late

    def check_decision(self, d: Mapping[str, Any], organisation: bytes | None = None) -> None:
        """A joint decision's rules (contract: DepartmentCount, DuplicateDepartment, NotOnCase, InvalidValidity,
        NotNamedDepartment)."""
        self.check_open(d["subject"])
        if d["validUntil"] and d["validUntil"] <= d["effectiveAt"]:
            raise _conflict("InvalidValidity", "validUntil", "the decision's validity ends before it takes effect")
        departments: list[bytes] = d["departments"]
        if not 2 <= len(departments) <= MAX_DEPARTMENTS:
            raise _conflict(
                "DepartmentCount", "departments", f"names {len(departments)}; a joint decision needs 2 to 32"
            )
        seen: set[bytes] = set()
        for index, department in enumerate(departments):
            if department in seen:
                raise _conflict("DuplicateDepartment", f"departments[{index}]", f"{hex32(department)} is named twice")
            seen.add(department)
            if self.standing.get(department) != Standing.ON_CASE:
                raise _conflict(
                    "NotOnCase", f"departments[{index}]", f"{hex32(department)} is not on case {hex32(self.id)}"
                )
        if organisation is not None and organisation not in seen:
            raise _conflict("NotNamedDepartment", "departments", f"the decision does not name {hex32(organisation)}")


def replay(case: bytes, entries: Iterable[tuple[bytes, Mapping[str, Any]]]) -> CaseState:
    """The state of case ``case`` after ``entries`` (id, message) in order, each assumed valid."""
    state = CaseState(case)
    for entry_id, message in entries:
        state.apply(entry_id, message)
    return state
