"""Mocks: the mitmproxy addon that answers a simulated service's requests from its recordings.

The simulations of this proxy's realm (storage.mocks) and their indexed recordings
(storage.pure.mock_match) are loaded off the event loop by a proxy.refresher.Refresher: every
REFRESH_INTERVAL seconds it reads the simulations' versions (one small query) and loads the
recordings of those that are new or changed, then swaps in a new dict. While the database is
away the last loaded simulations keep answering. On the loop only matching runs: a request to a
service that is not simulated costs one dict lookup.

Where it sits (proxy.runner): after the Router (which names the service, and routes the gateway's
`/NAME/...` to a simulated NAME that has no upstream at all: see Router.simulated), the inspector
guard, Tracing (the request's trace headers are recorded as for any exchange), Faults (a fault
rule applies to a simulated service too: a status or reset answers before the mock, a delay adds
to it) and Capture (which records the answer like any exchange, with META_MOCK as its mark). It
answers in the `request` hook, once the body is in: matching needs it. Capture streams large
request bodies to the upstream; for a simulated service `requestheaders` undoes that, so the body
is read whole and no connection to any upstream is ever opened for an answered request.

The answer: the recorded status, reason, headers (less hop-by-hop, length and encoding ones) and
decoded body, plus X-Passageway-Mock naming the recording; with `latency`, after sleeping the
recorded duration (only that flow waits). No match: a 404 JSON answer naming the closest
recordings, marked "no-match" — unless the simulation has `passthrough` and the service has an
upstream, then the request is forwarded (and recorded as forwarded: no mark).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from mitmproxy import http

from passageway.wire import ERROR_HEADER, MOCK_HEADER
from storage.mocks import SimulationSpec, get_simulation, load_recordings, simulation_versions
from storage.pure.mock_match import MockIndex, MockMatch, MockRequest, MockState, Recording, answer_headers, build_index, match
from storage.store import Store

from .flow_record import META_MOCK, META_REQUEST_TAP, META_SERVICE, META_UNROUTED, url_text
from .refresher import Refresher
from .router import no_route_response

logger = logging.getLogger(__name__)

REFRESH_INTERVAL = 2.0
"""Seconds between two reads of the simulations: a change reaches every proxy within about this
(plus the time to load its recordings)."""
FIRST_READ_WAIT = 10.0
"""Seconds the proxy's start waits for the first load (recordings may take a few seconds)."""
MAX_LATENCY_S = 60.0
"""A reproduced latency is at most this long."""


@dataclass(frozen=True, slots=True)
class LoadedSimulation:
    """One simulation as the loop reads it: immutable, but for its sequences' state."""

    version: object
    spec: SimulationSpec
    index: MockIndex
    state: MockState


def no_match_response(service: str, request: MockRequest, found: MockMatch, *, note: str = "") -> http.Response:
    """The 404 a miss gets: JSON naming the closest recordings (method, path, status, which)."""
    target = request.path + (f"?{request.query}" if request.query else "")
    closest = [_described(r) for r in found.closest]
    shown = "; ".join(f"{c['method']} {c['path']}{'?' + c['query'] if c['query'] else ''} -> {c['status']} ({c['recording']})" for c in closest)
    body = {
        "error": "no_mock_match",
        "message": f"no recording of {service!r} matches {request.method} {target}"
        + (f"; closest: {shown}" if shown else "; it has no recordings")
        + note,
        "service": service,
        "request": {"method": request.method, "path": request.path, "query": request.query},
        "closest": closest,
    }
    return http.Response.make(
        404,
        json.dumps(body, indent=2).encode() + b"\n",
        {"Content-Type": "application/json", MOCK_HEADER: "no-match", ERROR_HEADER: "no_mock_match"},
    )


def _described(r: Recording) -> dict:
    return {"recording": r.label, "exchange_id": r.exchange_id, "method": r.method, "path": r.path, "query": r.query,
            "status": r.status}  # fmt: skip


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def mock_response(recording: Recording, http_version: str) -> http.Response:
    """The recorded answer, as the service gave it, marked with X-Passageway-Mock."""
    headers = http.Headers([(_encoded(n), _encoded(v)) for n, v in answer_headers(recording.response_headers)])
    headers[MOCK_HEADER] = recording.label
    response = http.Response.make(recording.status, recording.response_body, headers)
    response.http_version = http_version if http_version.startswith("HTTP/") else "HTTP/1.1"
    if recording.reason:
        response.reason = recording.reason
    return response


class Mocks:
    """mitmproxy addon: answers the simulated services of `realm` (see the module doc)."""

    def __init__(self, store: Store | None, *, realm: str | None, refresh_interval: float = REFRESH_INTERVAL,
                 decode_limit: int | None = None) -> None:  # fmt: skip
        self.store = store
        self.realm = realm or ""
        self.decode_limit = decode_limit
        self.simulations: Mapping[str, LoadedSimulation] = {}
        """By service; replaced whole by reload(), never changed in place."""
        self.refresher = Refresher(
            self.reload,
            what="the simulations",
            keeping=lambda: f"the last loaded ones keep answering: {', '.join(self.simulations) or 'none'}",
            interval=refresh_interval,
            thread_name="passageway-mocks",
            logger=logger,
        )

    # --- the simulations: loaded off the event loop ---

    def reload(self) -> None:
        """Read the realm's simulations (blocking), load the recordings of the changed ones and
        swap them in; raises what the store raises (then the last ones stay)."""
        if self.store is None:
            return
        versions = simulation_versions(self.store, realm=self.realm)
        current = self.simulations
        if {name: sim.version for name, sim in current.items()} == versions:
            return
        loaded: dict[str, LoadedSimulation] = {}
        for service, version in versions.items():
            kept = current.get(service)
            if kept is not None and kept.version == version:
                loaded[service] = kept
                continue
            stored = get_simulation(self.store, service=service, realm=self.realm)
            if stored is None:
                continue
            kwargs = {"decode_limit": self.decode_limit} if self.decode_limit else {}
            index = build_index(load_recordings(self.store, stored.spec, **kwargs))
            loaded[service] = LoadedSimulation(stored.version, stored.spec, index, MockState())
            logger.info(
                "simulating %s from %d recording(s)%s", service, index.recordings,
                f" ({index.dropped} over the bounds left out)" if index.dropped else "",
            )  # fmt: skip
        for service in current.keys() - loaded.keys():
            logger.info("no longer simulating %s", service)
        self.simulations = loaded

    def simulates(self, service: str) -> bool:
        """Whether `service` is simulated here (the Router routes such a name without an upstream)."""
        return service in self.simulations

    def running(self) -> None:
        if self.store is not None:
            self.refresher.start(first_read_wait=FIRST_READ_WAIT)

    def done(self) -> None:
        self.refresher.stop()

    # --- the answers (on the event loop) ---

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self.simulations or flow.metadata.get(META_SERVICE) not in self.simulations:
            return
        if flow.request.stream:  # Capture streams large bodies upstream: a mock reads the body whole
            flow.request.stream = None
            flow.metadata.pop(META_REQUEST_TAP, None)

    def request(self, flow: http.HTTPFlow):  # type: ignore[no-untyped-def]
        service = flow.metadata.get(META_SERVICE)
        simulation = self.simulations.get(service) if service is not None else None
        if flow.response is not None or flow.error is not None:
            return None
        if simulation is None:
            if flow.metadata.get(META_UNROUTED):  # its simulation ended since the Router routed it
                flow.response = no_route_response(flow.request.path, self.simulations)
            return None
        request = flow.request
        path, _, query = url_text(request.data.path).partition("?")
        asked = MockRequest(
            method=request.method, path=path, query=query,
            headers=[(k, v) for k, v in request.headers.items(multi=True)],
            body=request.get_content(strict=False) or b"",
        )  # fmt: skip
        found = match(simulation.index, simulation.state, asked)
        if found.recording is None:
            unrouted = flow.metadata.get(META_UNROUTED, False)
            if simulation.spec.passthrough and not unrouted:
                return None  # forwarded, as the simulation asks
            note = f"; passthrough is on, but {service!r} has no upstream to forward to" if simulation.spec.passthrough else ""
            flow.metadata[META_MOCK] = "no-match"
            flow.response = no_match_response(service, asked, found, note=note)
            return None
        recording = found.recording
        flow.metadata[META_MOCK] = recording.label
        if simulation.spec.latency and recording.duration_ms:
            return self._after(flow, recording, min(recording.duration_ms / 1000.0, MAX_LATENCY_S))
        flow.response = mock_response(recording, request.http_version)
        return None

    @staticmethod
    async def _after(flow: http.HTTPFlow, recording: Recording, seconds: float) -> None:
        await asyncio.sleep(seconds)  # mitmproxy awaits it: only this flow waits
        if flow.live:
            flow.response = mock_response(recording, flow.request.http_version)
