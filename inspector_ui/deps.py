"""Request dependencies: the store and the broadcaster live on app.state, set up in the lifespan."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from .broadcast import Broadcaster


def get_store(request: Request) -> Any:
    return request.app.state.store


def get_broadcaster(connection: HTTPConnection) -> Broadcaster:
    return connection.app.state.broadcaster


StoreDep = Annotated[Any, Depends(get_store)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
