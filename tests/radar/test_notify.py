"""Webhook notifications: the payload, and delivery that retries, gives up, and never blocks."""

from __future__ import annotations

import time

import pytest

from radar.notify import Notifier, first_failure, state_change_payload
from tests.support.webhooks import Hook

FAILED_RUN = {
    "id": 7,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "started_at": "2026-12-03T10:00:00Z",
    "duration_ms": 12.5,
    "steps": [
        {"line": 1, "exchange_id": 40, "error": None, "asserts": [{"line": 3, "passed": True, "text": "status == 200"}]},
        {
            "line": 6,
            "exchange_id": 41,
            "error": None,
            "asserts": [
                {"line": 9, "passed": False, "text": 'jsonpath "$.state" == "paid"', "expected": '"paid"',
                 "actual": '"pending"', "message": None},
            ],
        },
    ],
}  # fmt: skip


def test_a_failure_names_the_first_failed_assert_with_links():
    payload = state_change_payload(
        monitor="checkout", realm="staging", previous="up", state="down", run=FAILED_RUN, inspector_url="http://ui:9/"
    )
    assert payload["state"] == "down" and payload["previous_state"] == "up"
    assert payload["run"] == "http://ui:9/test-runs/7"
    assert payload["exchange"] == "http://ui:9/?id=41"
    assert payload["trace"] == "http://ui:9/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    assert payload["failure"]["line"] == 9 and payload["failure"]["actual"] == '"pending"'
    assert payload["text"] == (
        'Monitor checkout (staging) is FAILING: line 9: jsonpath "$.state" == "paid": expected "paid", '
        'actual "pending" <http://ui:9/test-runs/7|run #7>'
    )


def test_a_recovery_carries_no_failure():
    passed = {**FAILED_RUN, "steps": FAILED_RUN["steps"][:1]}
    payload = state_change_payload(
        monitor="checkout", realm=None, previous="down", state="up", run=passed, inspector_url="http://ui:9"
    )
    assert payload["failure"] is None and payload["exchange"] is None
    assert payload["text"] == "Monitor checkout is passing again <http://ui:9/test-runs/7|run #7>"


def test_first_failure_falls_back_to_step_and_run_errors():
    step_error = {"steps": [{"line": 4, "exchange_id": None, "error": "connect_failed: refused", "asserts": []}]}
    assert first_failure(step_error) == {"line": 4, "error": "connect_failed: refused", "exchange_id": None}
    assert first_failure({"steps": [], "error": "checks.hurl:2:1: unsupported: [Multipart]"}) == {
        "error": "checks.hurl:2:1: unsupported: [Multipart]"
    }
    assert first_failure({"steps": []}) is None


@pytest.fixture
def hooks():
    made = []

    def make(*args, **kwargs):
        made.append(Hook(*args, **kwargs))
        return made[-1]

    yield make
    for hook in made:
        hook.close()


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_delivery_retries_with_backoff_until_the_hook_accepts(hooks):
    hook = hooks(answers=(500, 503, 200))
    notifier = Notifier(first_backoff=0.05, attempts=5)
    try:
        notifier.send([hook.url], {"monitor": "m", "text": "x"})
        wait_for(lambda: notifier.stats.delivered == 1)
        assert len(hook.received) == 3 and notifier.stats.retried == 2 and notifier.stats.failed == 0
    finally:
        notifier.close()


def test_a_hook_that_refuses_the_payload_is_not_retried(hooks, caplog):
    hook = hooks(answers=(400,))
    notifier = Notifier(first_backoff=0.05)
    try:
        notifier.send([hook.url], {"monitor": "m"})
        wait_for(lambda: notifier.stats.failed == 1)
        assert len(hook.received) == 1
        assert "answered 400" in caplog.text
    finally:
        notifier.close()


def test_a_hanging_and_a_dead_hook_neither_block_send_nor_delay_a_good_one(hooks, caplog):
    hanging, good = hooks(hang=3.0), hooks()
    dead = "http://127.0.0.1:9/hook"  # discard port: connection refused
    notifier = Notifier(timeout=0.3, attempts=2, first_backoff=0.05, workers=3)
    try:
        started = time.monotonic()
        notifier.send([hanging.url, dead, good.url], {"monitor": "m"})
        assert time.monotonic() - started < 0.05
        wait_for(lambda: notifier.stats.delivered == 1, timeout=2.0)
        assert good.received == [{"monitor": "m"}]
        wait_for(lambda: notifier.stats.failed == 2)
        assert "ReadTimeout" in caplog.text and "ConnectError" in caplog.text
    finally:
        notifier.close()


def test_a_full_queue_drops_and_counts(hooks):
    hanging = hooks(hang=1.0)
    notifier = Notifier(timeout=2.0, attempts=1, workers=1, max_queued=2)
    try:
        notifier.send([hanging.url] * 5, {"monitor": "m"})
        assert notifier.stats.dropped >= 2
    finally:
        notifier.close(timeout=0.1)


def test_a_failed_step_not_yet_captured_is_linked_through_its_trace():
    run = {**FAILED_RUN, "steps": [{**FAILED_RUN["steps"][1], "exchange_id": None}]}
    payload = state_change_payload(
        monitor="checkout", realm=None, previous="up", state="down", run=run, inspector_url="http://ui:9"
    )
    assert payload["exchange"] == "http://ui:9/?q=trace:4bf92f3577b34da6a3ce929d0e0e4736"
