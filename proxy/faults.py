"""Faults: the mitmproxy addon that injects the fault rules of its realm (storage.faults).

Rules are read off the event loop: a background thread loads the realm's active rules every
REFRESH_INTERVAL seconds and swaps in a new immutable tuple (storage.pure.faults.ordered). When
the database is away the last tuple stays, but each rule still ends at its own expiry, since
`decide` checks the time on every request. On the loop only matching runs: with no rules, a
request costs one attribute read.

Effects, after the Router (which names the service) and Tracing, before Capture:
- delay: `requestheaders` hands mitmproxy a coroutine that sleeps; only that flow waits;
- status: the proxy answers itself (JSON saying it is an injected fault, X-Passageway-Fault);
- reset: the flow is killed, so the client's connection is closed without an answer (recorded
  as error "killed", the message naming the rule);
- stall: the response's headers go out, its body is swallowed, and the proxy closes the
  connection after the stall (storage.pure.faults.STALL_MAX_S at most, never past the rule).

Only requests the Router gave a service are touched, never an answer the proxy already gave
(no_route, the inspector guard); health probes go straight to the upstreams (proxy.health) and
the registry's heartbeats to the inspector, so neither passes here. A proxy reads only its own
realm's rules: a rule can never reach a service of another realm.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Iterable

from mitmproxy import http

from passageway.wire import FAULT_HEADER
from storage.faults import active_rules
from storage.pure.faults import ActiveRule, FaultDecision, decide, ordered
from storage.store import Store

from .flow_record import META_ERROR_KIND, META_ERROR_MESSAGE, META_FAULT, META_SERVICE, url_text
from .refresher import Refresher

logger = logging.getLogger(__name__)

REFRESH_INTERVAL = 1.0
"""Seconds between two reads of the rules: a new rule reaches every proxy within about this."""
FIRST_READ_WAIT = 2.0
"""Seconds the proxy's start waits for the first read of the rules."""
META_DECISION = "passageway.fault_decision"


def fault_response(decision: FaultDecision) -> http.Response:
    """The answer a status fault gives: JSON that says it was injected, and by which rule."""
    mark = decision.describe()
    body = {
        "error": "injected_fault",
        "message": f"fault rule #{decision.rule_id} answered {decision.status} instead of the service",
        "rule": decision.rule_id,
    }
    return http.Response.make(
        decision.status or 500,
        json.dumps(body).encode() + b"\n",
        {"Content-Type": "application/json", FAULT_HEADER: mark},
    )


def by_service(rules: Iterable[ActiveRule]) -> dict[str, tuple[ActiveRule, ...]]:
    """Rules grouped by service, each group in the order `decide` tries them."""
    grouped: dict[str, list[ActiveRule]] = {}
    for rule in rules:
        grouped.setdefault(rule.service, []).append(rule)
    return {service: ordered(found) for service, found in grouped.items()}


def _swallow(chunk: bytes) -> list[bytes]:
    """A stalled body: nothing of it reaches the client."""
    return []


class Faults:
    """mitmproxy addon: applies the fault rules of `realm` (see the module doc)."""

    def __init__(
        self,
        store: Store | None,
        *,
        realm: str | None,
        refresh_interval: float = REFRESH_INTERVAL,
        random_source: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.realm = realm or ""
        self.random = random_source
        self.clock = clock
        self.rules: dict[str, tuple[ActiveRule, ...]] = {}
        """The rules now, by service, each service's most specific first; replaced whole by
        reload(), never changed in place. By service: a request to a service without a rule
        costs one dict lookup, however many rules other services have."""
        self.refresher = Refresher(
            self.reload,
            what="the fault rules",
            keeping=lambda: "keeping the last ones until they expire",
            interval=refresh_interval,
            thread_name="passageway-faults",
            logger=logger,
        )

    # --- the rules: loaded off the event loop ---

    def reload(self) -> None:
        """Read the realm's rules (blocking) and swap them in; raises what the store raises."""
        if self.store is None:
            return
        rules = by_service(active_rules(self.store, realm=self.realm))
        if rules != self.rules:
            shown = ", ".join(f"#{rule.id} on {rule.service}" for found in rules.values() for rule in found)
            logger.info("fault rules now: %s", shown or "none")
            self.rules = rules

    def running(self) -> None:
        if self.store is not None:
            self.refresher.start(first_read_wait=FIRST_READ_WAIT)

    def done(self) -> None:
        self.refresher.stop()

    # --- the effects (on the event loop) ---

    def requestheaders(self, flow: http.HTTPFlow):  # type: ignore[no-untyped-def]
        if not self.rules:
            return None
        rules = self.rules.get(flow.metadata.get(META_SERVICE))
        if rules is None or flow.response is not None or flow.error is not None:
            return None
        service = rules[0].service
        request = flow.request
        decision = decide(
            rules,
            service=service,
            method=request.method,
            path=url_text(request.data.path).partition("?")[0],
            headers=request.headers.get_all,
            now=self.clock(),
            random=self.random,
        )
        if decision is None:
            return None
        flow.metadata[META_FAULT] = decision.describe()
        if decision.delay_ms > 0:
            return self._delayed(flow, decision)  # mitmproxy awaits it: only this flow waits
        self._apply(flow, decision)
        return None

    async def _delayed(self, flow: http.HTTPFlow, decision: FaultDecision) -> None:
        await asyncio.sleep(decision.delay_ms / 1000.0)
        if flow.live:
            self._apply(flow, decision)

    @staticmethod
    def _apply(flow: http.HTTPFlow, decision: FaultDecision) -> None:
        if decision.status is not None:
            flow.response = fault_response(decision)
        elif decision.reset:
            flow.metadata[META_ERROR_KIND] = "killed"
            flow.metadata[META_ERROR_MESSAGE] = f"connection reset by fault rule #{decision.rule_id}"
            flow.kill()
        elif decision.stall:
            flow.metadata[META_DECISION] = decision

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(META_DECISION) is not None and flow.response is not None:
            flow.response.stream = _swallow  # headers go out now, the body never

    def response(self, flow: http.HTTPFlow):  # type: ignore[no-untyped-def]
        decision = flow.metadata.get(META_DECISION)
        if decision is None:
            return None
        return self._stall(flow, decision)

    async def _stall(self, flow: http.HTTPFlow, decision: FaultDecision) -> None:
        # The upstream's body has all arrived (and been dropped); holding this hook holds the
        # end of the response, so the client waits on a body that never comes, then is cut off.
        await asyncio.sleep(decision.stall_s)
        flow.metadata[META_ERROR_KIND] = "killed"
        flow.metadata[META_ERROR_MESSAGE] = (
            f"body stalled by fault rule #{decision.rule_id}; connection closed after {decision.stall_s:g} s"
        )
        if flow.live:
            flow.kill()
