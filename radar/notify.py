"""Webhook notifications of monitors' changes of state (pass -> fail, fail -> pass).

The payload is built by a pure function from the run's result, which the runner has already
scrubbed of secrets. Delivery never blocks the monitor runner: `Notifier.send` queues each
(URL, payload) for a small pool of worker threads that POST it with a timeout and retry with
exponential backoff; what could not be delivered after every attempt is counted and logged,
and so is what a full queue refuses.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["NotifierStats", "Notifier", "state_change_payload"]

log = logging.getLogger(__name__)

USER_AGENT = "passageway-monitor"
_STATE_WORDS = {"up": "passing again", "down": "FAILING"}


def first_failure(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first thing that went wrong in a run: a failed assert, else a step's error, else the
    run's own error (a file that does not parse, an undefined variable)."""
    for step in run.get("steps") or ():
        for result in step.get("asserts") or ():
            if not result.get("passed"):
                return {
                    "line": result.get("line"),
                    "assert": result.get("text"),
                    "expected": result.get("expected"),
                    "actual": result.get("actual"),
                    "message": result.get("message"),
                    "exchange_id": step.get("exchange_id"),
                }
        if step.get("error"):
            return {"line": step.get("line"), "error": step["error"], "exchange_id": step.get("exchange_id")}
    if run.get("error"):
        return {"error": run["error"]}
    return None


def state_change_payload(
    *, monitor: str, realm: str | None, previous: str, state: str, run: Mapping[str, Any], inspector_url: str
) -> dict[str, Any]:
    """The JSON a webhook receives: who changed to what, the run and its first failure with
    links, and a Slack-compatible `text`."""
    base = inspector_url.rstrip("/")
    run_id = run.get("id")
    run_link = f"{base}/test-runs/{run_id}" if run_id is not None else None
    trace_id = run.get("trace_id")
    trace_link = f"{base}/traces/{trace_id}" if trace_id else None
    failure = first_failure(run) if state == "down" else None
    exchange_link = None
    if failure and failure.get("exchange_id") is not None:
        exchange_link = f"{base}/?id={failure['exchange_id']}"
    elif failure and failure.get("line") is not None and trace_id:  # a step not captured (yet): its trace's
        exchange_link = f"{base}/?q=trace:{trace_id}"
    where = f" ({realm})" if realm else ""
    text = f"Monitor {monitor}{where} is {_STATE_WORDS.get(state, state)}"
    if failure:
        if "assert" in failure:
            text += f": line {failure['line']}: {failure['assert']}: expected {failure['expected']}, actual {failure['actual']}"
        else:
            line = f"line {failure['line']}: " if failure.get("line") else ""
            text += f": {line}{failure['error']}"
    if run_link:
        text += f" <{run_link}|run #{run_id}>"
    return {
        "monitor": monitor,
        "realm": realm,
        "state": state,
        "previous_state": previous,
        "run_id": run_id,
        "run": run_link,
        "started_at": run.get("started_at"),
        "duration_ms": run.get("duration_ms"),
        "failure": failure,
        "exchange": exchange_link,
        "trace": trace_link,
        "text": text,
    }


@dataclass(slots=True)
class NotifierStats:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    """Notifications given up after every attempt."""
    dropped: int = 0
    """Refused because the queue was full (webhooks that hang, and many changes at once)."""


@dataclass(frozen=True, slots=True)
class _Delivery:
    url: str
    payload: Mapping[str, Any]


class Notifier:
    """Delivers webhooks in the background; `send` never waits on the network."""

    def __init__(
        self,
        *,
        attempts: int = 5,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
        workers: int = 4,
        max_queued: int = 1000,
    ) -> None:
        self.attempts = attempts
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.stats = NotifierStats()
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Delivery | None] = queue.Queue(max_queued)
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=timeout, headers={"user-agent": USER_AGENT}, follow_redirects=False)
        self._workers = [
            threading.Thread(target=self._work, name=f"passageway-notify-{n}", daemon=True) for n in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    def send(self, urls: Iterable[str], payload: Mapping[str, Any]) -> int:
        """Queue the payload for each URL; how many were queued (the rest are dropped, counted)."""
        queued = 0
        for url in urls:
            try:
                self._queue.put_nowait(_Delivery(url, payload))
                queued += 1
            except queue.Full:
                self._count("dropped")
                log.warning("monitor notification to %s dropped: %d notifications already wait", url, self._queue.maxsize)
        return queued

    def close(self, timeout: float = 5.0) -> None:
        """Stops the workers; what is still queued or waiting for a retry is not sent."""
        self._stop.set()
        for _ in self._workers:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        for worker in self._workers:
            worker.join(timeout)
        self._client.close()

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self.stats, what, getattr(self.stats, what) + 1)

    def _work(self) -> None:
        while not self._stop.is_set():
            delivery = self._queue.get()
            if delivery is None:
                return
            self._deliver(delivery)

    def _deliver(self, delivery: _Delivery) -> None:
        backoff = self.first_backoff
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._client.post(delivery.url, json=dict(delivery.payload))
                if response.status_code < 300:
                    self._count("delivered")
                    return
                problem = f"answered {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the hook refuses this payload: sending it again will not help
            except httpx.HTTPError as e:
                problem = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if attempt == self.attempts or self._stop.wait(backoff):
                break
            self._count("retried")
            backoff = min(backoff * 2, self.max_backoff)
        self._count("failed")
        log.warning(
            "monitor notification for %s to %s not delivered (%s)", delivery.payload.get("monitor"), delivery.url, problem
        )
