"""Map credtrace's exception tree to HTTP answers: a clear 4xx naming the field, never a 500 for bad input."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from credtrace.errors import (
    ChainUnavailable,
    Conflict,
    ContractReverted,
    CredtraceError,
    Gone,
    NotAuthenticated,
    NotAuthorised,
    NotFound,
    ValidationFailed,
)

_STATUS: list[tuple[type[CredtraceError], int]] = [
    (ValidationFailed, 422),
    (NotFound, 404),
    (NotAuthorised, 403),
    (NotAuthenticated, 401),
    (Gone, 410),
    (ContractReverted, 409),
    (Conflict, 409),
    (ChainUnavailable, 503),
]


def status_for(exc: CredtraceError) -> int:
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CredtraceError)
    detail: dict[str, object] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, ValidationFailed):
        detail["field"] = exc.field
        detail["reason"] = exc.reason
    if isinstance(exc, Conflict):
        detail["field"] = exc.field
        detail["reason"] = exc.reason
        detail["contract_error"] = exc.error
    headers = None
    if isinstance(exc, NotAuthenticated):
        detail["header"] = exc.header
        headers = {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, Gone):
        detail["subject"] = exc.subject
    return JSONResponse(status_code=status_for(exc), content={"detail": detail}, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(CredtraceError, _handle)
