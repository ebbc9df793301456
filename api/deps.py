"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from api.chain_view import ChainView
from api.governance import ContractRef
from credtrace.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_chain(request: Request) -> ChainView:
    chain: ChainView = request.app.state.chain
    return chain


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """One session per request; a route that writes commits it itself, before it answers."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


def get_consortium(chain: Annotated[ChainView, Depends(get_chain)]) -> ContractRef:
    return chain.consortium()


SettingsDep = Annotated[Settings, Depends(get_settings)]
ChainDep = Annotated[ChainView, Depends(get_chain)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
ConsortiumDep = Annotated[ContractRef, Depends(get_consortium)]
