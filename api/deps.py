"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.chain_view import ChainView
from credtrace.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_chain(request: Request) -> ChainView:
    chain: ChainView = request.app.state.chain
    return chain


SettingsDep = Annotated[Settings, Depends(get_settings)]
ChainDep = Annotated[ChainView, Depends(get_chain)]
