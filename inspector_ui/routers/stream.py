"""WS /api/stream[?q=search]: a hello, then one {"type": "exchange", "data": summary} per new
exchange (only those matching `q`, when given).

A bad `q` is answered after accept(), so a browser can read why: one
{"type": "error", "message", "position"} message, then close 1008 (policy violation)
with the message as reason (cut to the 123 bytes a close frame allows).

A viewer whose queue overflows (it reads slower than traffic arrives) is closed with
1013 "try again later"; it can reconnect and catch up over REST from the hello's last_id.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from storage.pure.search import QueryError, parse_query
from storage.queries import list_exchanges

from ..broadcast import Subscriber, SubscriberGone
from ..deps import BroadcasterDep, SettingsDep, StoreDep

router = APIRouter(tags=["stream"])
log = logging.getLogger(__name__)

PROTOCOL = 1
CLOSE_TOO_SLOW = 1013
CLOSE_GOING_AWAY = 1001
CLOSE_BAD_QUERY = 1008


def _latest_id(store: Any) -> int | None:
    page = list_exchanges(store, limit=1)
    return page.data[0]["id"] if page.data else None


@router.websocket("/api/stream")
async def stream(websocket: WebSocket, store: StoreDep, broadcaster: BroadcasterDep, settings: SettingsDep) -> None:
    await websocket.accept()
    try:
        q = websocket.query_params.get("q") or None
        query = parse_query(q) if q is not None else None
    except QueryError as exc:
        await _refuse(websocket, exc)
        return
    # Subscribe before reading last_id: every exchange newer than it is then on the stream.
    subscriber = broadcaster.subscribe(query)
    try:
        try:
            last_id = await run_in_threadpool(_latest_id, store)
        except Exception:  # the stream still works while the database blips
            last_id = None
        hello = {"type": "hello", "protocol": PROTOCOL, "last_id": last_id}
        await websocket.send_text(json.dumps(hello, separators=(",", ":")))
        await _pump(websocket, subscriber, close_timeout=settings.stream_close_timeout)
    except WebSocketDisconnect:
        pass
    finally:
        broadcaster.unsubscribe(subscriber)


async def _refuse(websocket: WebSocket, exc: QueryError) -> None:
    error = {"type": "error", "message": exc.message, "position": exc.position}
    with contextlib.suppress(Exception):
        await websocket.send_text(json.dumps(error, separators=(",", ":")))
        reason = exc.message.encode("utf-8")[:123].decode("utf-8", "ignore")
        await websocket.close(CLOSE_BAD_QUERY, reason)


async def _pump(websocket: WebSocket, subscriber: Subscriber, *, close_timeout: float) -> None:
    """Send queued messages until the viewer leaves, overflows, or the server stops."""
    viewer_left = connection_lost = False

    async def until_disconnect(scope: anyio.CancelScope) -> None:
        nonlocal viewer_left
        await _until_disconnect(websocket)
        viewer_left = True
        scope.cancel()

    async def until_closed(scope: anyio.CancelScope) -> None:
        # The sender may be stuck in a send to a viewer that stopped reading; this lets an
        # overflow end the connection even then.
        await subscriber.wait_closed()
        scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(until_disconnect, group.cancel_scope)
        group.start_soon(until_closed, group.cancel_scope)
        connection_lost = await _send_all(websocket, subscriber)
        group.cancel_scope.cancel()
    if viewer_left or connection_lost:
        return
    if subscriber.overflowed:
        code, reason = CLOSE_TOO_SLOW, "too slow: fell behind the live stream; reconnect and catch up"
        log.info("dropping a slow /api/stream viewer")
    else:
        code, reason = CLOSE_GOING_AWAY, "server shutting down"
    # A viewer that stopped reading may never take the close frame: do not wait for it forever.
    with anyio.move_on_after(close_timeout), contextlib.suppress(Exception):
        await websocket.close(code, reason)


async def _send_all(websocket: WebSocket, subscriber: Subscriber) -> bool:
    """Send until the subscription ends (False) or the connection fails (True)."""
    try:
        while True:
            await websocket.send_text(await subscriber.next())
    except SubscriberGone:
        return False
    except (WebSocketDisconnect, OSError, RuntimeError):  # uvicorn's ClientDisconnected is an OSError
        return True


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the viewer sends, so a disconnect is noticed at once."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
