"""The broadcaster on its own: serialize once, bounded queues, slow subscribers dropped."""

from __future__ import annotations

import asyncio
import json

import pytest

from inspector_ui import broadcast
from inspector_ui.broadcast import Broadcaster, SubscriberGone


def _run(coro):
    return asyncio.run(coro)


def test_each_message_is_serialized_once(monkeypatch):
    calls = []
    real_json_text = broadcast.json_text
    monkeypatch.setattr(broadcast, "json_text", lambda *a, **k: calls.append(1) or real_json_text(*a, **k))

    async def main():
        broadcaster = Broadcaster(store=None, queue_size=10)
        subscribers = [broadcaster.subscribe() for _ in range(5)]
        broadcaster.publish({"type": "exchange", "data": {"id": 1}})
        texts = [await s.next() for s in subscribers]
        assert len(set(map(id, texts))) == 1  # the very same str object for everyone
        assert json.loads(texts[0]) == {"type": "exchange", "data": {"id": 1}}

    _run(main())
    assert len(calls) == 1


def test_slow_subscriber_is_dropped_fast_one_keeps_everything():
    async def main():
        broadcaster = Broadcaster(store=None, queue_size=3)
        fast, slow = broadcaster.subscribe(), broadcaster.subscribe()
        received = []
        for i in range(10):
            broadcaster.publish({"i": i})
            received.append(json.loads(await fast.next()))  # fast keeps up, slow never reads
        assert received == [{"i": i} for i in range(10)]
        assert slow.overflowed and not fast.overflowed
        assert broadcaster.clients == 1 and broadcaster.dropped == 1
        with pytest.raises(SubscriberGone):
            await slow.next()

    _run(main())


def test_nothing_is_serialized_without_subscribers():
    broadcaster = Broadcaster(store=None)
    broadcaster.publish({"x": object()})  # would fail to serialize
    assert broadcaster.published == 0


def test_close_ends_every_subscription():
    async def main():
        broadcaster = Broadcaster(store=None)
        subscriber = broadcaster.subscribe()
        waiter = asyncio.create_task(subscriber.next())
        await asyncio.sleep(0)
        broadcaster.close()
        with pytest.raises(SubscriberGone):
            await waiter
        assert broadcaster.clients == 0 and broadcaster.dropped == 0

    _run(main())
