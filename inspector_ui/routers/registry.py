"""The self-registration registry (issue 17): POST /api/registry/heartbeat, GET /api/registry,
DELETE /api/registry/{name}/{instance} (a clean shutdown), DELETE /api/registry/{name} and
POST /api/registry/forget (forget a service, or one instance).

Forgetting a whole service also removes its stale proxy registrations (rows no proxy refreshed
for storage.services.STALE_AFTER: their proxy is gone), so a service removed from every
configuration stops being listed. Live proxies' rows stay: a configured service is forgotten by
removing it from the configuration.

Services talk to this API, never to the database (passageway.service sends the heartbeats; any
tool or language can send the same JSON). Writes follow the inspector's rules: JSON, its token
when one is set. Rows live in storage.registry."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from passageway.service_url import SERVICE_NAME
from storage import registry
from storage.services import forget_stale_registrations

from ..deps import StoreDep
from ..errors import NotFound

router = APIRouter(prefix="/api/registry", tags=["registry"])

ServiceName = Annotated[str, Path(max_length=63, description="The service's name.")]
InstanceName = Annotated[str, Path(max_length=200, description="The instance's id.")]
RealmQuery = Annotated[
    str | None, Query(max_length=200, description="Only this realm (empty: no realm; absent: every realm)")
]


def _service_name(value: str) -> str:
    if not SERVICE_NAME.fullmatch(value):
        raise ValueError("a service name: letters, digits, '_', '.' or '-' (at most 63)")
    return value


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=63, description="The service's name, as clients address it.")]
    url: Annotated[str, Field(max_length=2000, description="Where this instance is reachable: http(s)://host:port[/base].")]
    instance: Annotated[str, Field(min_length=1, max_length=200, description="This instance's id, unique within the service.")]
    realm: Annotated[str, Field(max_length=200)] | None = Field(None, description="Its realm; absent or empty for none.")
    health: Annotated[str, Field(max_length=2000)] | None = Field(None, description="Its readiness path, from '/'.")
    version: Annotated[str, Field(max_length=200)] | None = None
    depends_on: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list, max_length=registry.MAX_DEPENDENCIES, description="Services it needs."
    )
    ready: bool | None = Field(None, description="Its own readiness now (its checks and dependencies).")
    checks: dict[str, Any] | None = Field(None, description="Its checks' states, as its /readyz reports them.")
    interval_s: float = Field(
        registry.DEFAULT_INTERVAL, description="Seconds until its next heartbeat (it is gone after three missed)."
    )

    _names = field_validator("name")(_service_name)

    @field_validator("depends_on")
    @classmethod
    def _dependencies(cls, values: list[str]) -> list[str]:
        return [_service_name(value) for value in values]

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("expected http(s)://host:port[/base], without query or fragment")
        return value

    @field_validator("instance")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("printable characters only")
        return value

    @field_validator("health")
    @classmethod
    def _health(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "#" in value or not value.isprintable() or " " in value):
            raise ValueError("a path from '/', e.g. /readyz")
        return value


@router.post("/heartbeat", summary="Register an instance of a service, or refresh it")
async def post_heartbeat(store: StoreDep, beat: HeartbeatIn) -> Any:
    fields = beat.model_dump()
    fields["depends_on"] = tuple(fields["depends_on"])
    fields["realm"] = fields["realm"] or None
    new = await run_in_threadpool(registry.heartbeat, store, registry.Heartbeat(**fields))
    return {"registered": new, "gone_after_s": registry.grace(beat.interval_s).total_seconds()}


@router.get("", summary="Every registered instance, with its state (up, gone, deregistered)")
async def list_instances(store: StoreDep, realm: RealmQuery = None) -> Any:
    found = await run_in_threadpool(lambda: registry.instances(store, realm=realm))
    return {"instances": [instance.to_json() for instance in found]}


@router.delete("/{name}/{instance}", summary="Deregister an instance (its clean shutdown)")
async def delete_instance(store: StoreDep, name: ServiceName, instance: InstanceName, realm: RealmQuery = None) -> Any:
    if not await run_in_threadpool(lambda: registry.deregister(store, name=name, instance=instance, realm=realm)):
        raise NotFound(f"no instance {instance!r} of {name!r} is registered")
    return {"deregistered": True}


class ForgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=63, description="The service's name.")]
    instance: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="Only this instance; absent: the whole service (and its stale proxy registrations)."
    )
    realm: Annotated[str, Field(max_length=200)] | None = Field(None, description="Only this realm ('' for none); absent: every realm.")

    _names = field_validator("name")(_service_name)


def _forget(store: Any, name: str, instance: str | None, realm: str | None) -> dict[str, int]:
    """Remove the rows; NotFound when there was nothing to remove."""
    removed = registry.forget(store, name=name, instance=instance, realm=realm)
    stale = forget_stale_registrations(store, service=name, realm=realm) if instance is None else 0
    if not removed and not stale:
        where = f" in realm {realm!r}" if realm else ""
        what = f"no instance {instance!r} of {name!r}" if instance is not None else f"no service {name!r}"
        raise NotFound(f"{what} is registered{where}")
    return {"forgotten": removed, "stale_proxy_registrations": stale}


@router.delete("/{name}", summary="Forget a service: its registered instances and its stale proxy registrations")
async def forget_service(store: StoreDep, name: ServiceName, realm: RealmQuery = None) -> Any:
    return await run_in_threadpool(_forget, store, name, None, realm)


@router.post("/forget", summary="Forget a service, or one instance of it (the Services page's Forget)")
async def forget(store: StoreDep, what: ForgetIn) -> Any:
    return await run_in_threadpool(_forget, store, what.name, what.instance, what.realm)
