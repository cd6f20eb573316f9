"""Sending a replay: check its target (inspector_ui.replay.targets), send it through the proxy,
find its capture.

Redirects are never followed: a replay is one request, checked once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from starlette.concurrency import run_in_threadpool

from passageway.wire import REPLAY_HEADER
from storage.queries import exchange_id_for_uuid

from ..errors import Conflict, ProxyUnreachable, TimedOut
from .plan import ReplayPlan, ReplayRoutes, header_bytes
from .targets import ApprovedTarget, check_target, system_resolver

__all__ = ["ReplayClients", "ReplayResult", "SentReplay", "capture_of", "dispatch_replay", "send_replay", "sent_url"]


class ReplayClients:
    """The HTTP clients replays are sent with, one per way through the proxy, made on first use
    and kept: making an httpx client loads a CA bundle (tens of ms), more than a replay costs."""

    def __init__(self, routes: ReplayRoutes, *, timeout: float, proxy_ca: str | None) -> None:
        self._routes = routes
        self._timeout = timeout
        self._proxy_ca = proxy_ca
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def get(self, via_forward_proxy: bool) -> httpx.AsyncClient:
        client = self._clients.get(via_forward_proxy)
        if client is None:
            options: dict = {"follow_redirects": False, "timeout": self._timeout, "trust_env": False}
            if via_forward_proxy:
                options.update(proxy=self._routes.forward_proxy, verify=self._proxy_ca or True)
            client = self._clients[via_forward_proxy] = httpx.AsyncClient(**options)
            # No Accept, Accept-Encoding, Connection or User-Agent of httpx's own: a replay as
            # captured carries the captured headers and nothing else.
            for name in list(client.headers):
                del client.headers[name]
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


@dataclass(frozen=True, slots=True)
class SentReplay:
    """A replay the proxy answered; its capture is stored under `uuid` soon after."""

    uuid: str
    status: int
    """The status the client got (the upstream's, or the proxy's 502/504)."""
    sent_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ReplayResult:
    id: int
    status: int


async def send_replay(store, exchange_id: int, plan: ReplayPlan, *, record_wait: float = 10.0, **options) -> ReplayResult:
    """dispatch_replay, then capture_of: the new exchange's id."""
    sent = await dispatch_replay(exchange_id, plan, **options)
    return ReplayResult(id=await capture_of(store, sent, record_wait=record_wait), status=sent.status)


async def dispatch_replay(
    exchange_id: int,
    plan: ReplayPlan,
    *,
    routes: ReplayRoutes,
    original_url: str,
    inspector_addresses: Sequence[tuple[str, int]],
    allow_any: bool,
    clients: ReplayClients,
    resolve: Callable[[str, int], list[str]] = system_resolver,
    send_at: float | None = None,
) -> SentReplay:
    """Check the target (TargetRefused), then send the request through the proxy (no redirects
    followed); with `send_at` (time.monotonic()), not before then: a paced job does its checks early."""
    # The proxy makes the connection, so the addresses approved here cannot be pinned
    # for it; for configured services they are fixed by configuration anyway.
    approved = await run_in_threadpool(
        lambda: check_target(
            plan.target_url,
            services=routes.services,
            original_url=original_url,
            inspector_addresses=inspector_addresses,
            allow_any=allow_any,
            resolve=resolve,
        )
    )
    if plan.via_forward_proxy and routes.forward_proxy is None:
        raise Conflict(
            f"{plan.target_url} is not a configured service, and replaying to any other URL goes through the "
            "proxy's forward port: set forward_port in passageway.toml"
        )
    send_url = sent_url(plan, approved)
    nonce = secrets.token_hex(16)
    headers = header_bytes([*plan.headers, (REPLAY_HEADER, f"{exchange_id}; {nonce}")])
    client = clients.get(plan.via_forward_proxy)
    if send_at is not None and (delay := send_at - time.monotonic()) > 0:
        await asyncio.sleep(delay)
    sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    try:
        response = await client.request(plan.method, send_url, headers=headers, content=plan.body)
    except httpx.TimeoutException:
        raise TimedOut(f"the replay got no answer within {client.timeout.read:g} s") from None
    except httpx.HTTPError as exc:
        via = routes.forward_proxy if plan.via_forward_proxy else routes.gateway
        raise ProxyUnreachable(f"cannot send the replay through the proxy at {via}: {exc}") from None
    return SentReplay(uuid=nonce, status=response.status_code, sent_at=sent_at)


def sent_url(plan: ReplayPlan, approved: ApprovedTarget) -> str:
    """The URL to send: through the forward proxy, the approved origin (canonical) and the
    plan's path, so what the guard approved is exactly what goes; to a service, the gateway's."""
    if not plan.via_forward_proxy:
        return plan.send_url
    parts = urlsplit(plan.target_url)
    return approved.origin + (plan.target_url[len(f"{parts.scheme}://{parts.netloc}") :] or "/")


async def capture_of(store, sent: SentReplay, *, record_wait: float = 10.0) -> int:
    """The id of a sent replay's exchange, once the proxy's writer has stored it."""
    deadline = time.monotonic() + record_wait
    while True:
        new_id = await run_in_threadpool(exchange_id_for_uuid, store, uuid=sent.uuid, since=sent.sent_at)
        if new_id is not None:
            return new_id
        if time.monotonic() > deadline:
            raise TimedOut(
                f"the replay was sent (status {sent.status}) but its capture did not reach the database "
                f"within {record_wait:g} s"
            )
        await asyncio.sleep(0.05)
