"""Request dependencies: the one way routes reach what lives on app.state (the settings, set in
create_app; the store, the broadcaster, the replay clients and jobs and the maintenance role,
set up in the lifespan)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from storage.maintenance import Maintenance

from .broadcast import Broadcaster
from .replay import ReplayClients, ReplayJobs
from .settings import InspectorSettings


def get_settings(connection: HTTPConnection) -> InspectorSettings:
    return connection.app.state.settings


def get_store(connection: HTTPConnection) -> Any:
    return connection.app.state.store


def get_broadcaster(connection: HTTPConnection) -> Broadcaster:
    return connection.app.state.broadcaster


def get_replay_clients(connection: HTTPConnection) -> ReplayClients:
    return connection.app.state.replay_clients


def get_replay_jobs(connection: HTTPConnection) -> ReplayJobs:
    return connection.app.state.replay_jobs


def get_inspector_addresses(connection: HTTPConnection) -> list[tuple[str, int]]:
    """Where this inspector listens (as configured, and where this request reached it): never a
    target of a replay or of a test run through the API."""
    settings = get_settings(connection)
    server = connection.scope.get("server")
    addresses = [(settings.host, settings.port)]
    if server and server[1]:
        addresses.append((settings.host, int(server[1])))
    return addresses


def get_maintenance(connection: HTTPConnection) -> Maintenance | None:
    """The maintenance this inspector runs; None when it leaves it to another process."""
    return connection.app.state.maintenance


SettingsDep = Annotated[InspectorSettings, Depends(get_settings)]
StoreDep = Annotated[Any, Depends(get_store)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
ReplayClientsDep = Annotated[ReplayClients, Depends(get_replay_clients)]
ReplayJobsDep = Annotated[ReplayJobs, Depends(get_replay_jobs)]
MaintenanceDep = Annotated[Maintenance | None, Depends(get_maintenance)]
InspectorAddressesDep = Annotated[list[tuple[str, int]], Depends(get_inspector_addresses)]
