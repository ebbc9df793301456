"""Natural persons (C2): register a resident identity number as a salted commitment; erase it (crypto-shredding).

The number is taken in, checked, turned into a commitment and forgotten: it is never stored, logged or returned.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from pydantic import BaseModel, BeforeValidator, Field, SecretStr

from api.auth import Caller, CallerDep, require_roles
from api.deps import SessionDep, SettingsDep
from api.schemas import HEX32
from credtrace import persons
from node_bridge.consortium import Role

router = APIRouter(prefix="/v1", tags=["persons"])

Registrar = Annotated[
    Caller, Depends(require_roles(Role.PLATFORM, Role.LOGISTICS, Role.PAYMENT, Role.REGULATOR, Role.CERTIFIER))
]


def _digits_as_text(value: object) -> object:
    """A number sent as a JSON integer is taken as its digits (so a type error never echoes it back)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class PersonCreate(BaseModel):
    """A natural person to register; only the commitment comes back."""

    id_number: Annotated[SecretStr, BeforeValidator(_digits_as_text)] = Field(
        description="PRC resident identity number (GB 11643-1999), 18 characters"
    )


class PersonRegistered(BaseModel):
    commitment: str = Field(description="0x keccak256(salt ‖ id number): the person's only identifier in records")


@router.post("/persons", response_model=PersonRegistered, status_code=status.HTTP_201_CREATED)
def register_person(
    session: SessionDep, settings: SettingsDep, caller: Registrar, body: PersonCreate
) -> PersonRegistered:
    """Register a natural person (a PLATFORM, LOGISTICS, PAYMENT, REGULATOR or CERTIFIER member's key).

    Idempotent: the same number gives the same commitment while it lives; after it was erased, a new one.
    """
    pepper = persons.load_pepper(settings)
    commitment = persons.register_person(session, pepper, body.id_number.get_secret_value(), caller.member_id)
    session.commit()
    return PersonRegistered(commitment=commitment)


@router.delete("/persons/{commitment}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def shred_person(session: SessionDep, caller: CallerDep, commitment: Annotated[str, Path(pattern=HEX32)]) -> Response:
    """Erase a person's salt and lookup key (a REGULATOR, or the member that registered it); the commitment
    then ties to no one and routes about it answer 410. Idempotent."""
    persons.shred_person(session, commitment, caller.member_id, any_person=caller.has_any(Role.REGULATOR))
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
