"""The smart service: one line makes an ASGI app (FastAPI, Starlette) register itself, say how it
is, and count what it answers.

    app = SmartService(app, name="orders", depends_on=["billing"], checks={"db": check_db})

- `/healthz`: alive (200 while the process answers). `/readyz`: ready — the service's own checks
  (sync or async callables, run concurrently with a timeout) and its declared dependencies' state
  as the inspector's registry last said (refreshed in the background, never by calling them).
  Both answer `application/health+json` with `status` pass|warn|fail and each part's state.
- `/metrics`: request count, errors and a latency histogram per route template, in Prometheus
  text (passageway.metrics). The service's own three endpoints are not counted.
- Registration: on lifespan startup a background task sends a heartbeat to the inspector
  (`POST /api/registry/heartbeat`) every `interval` seconds and refreshes the dependencies'
  state; an unreachable inspector is logged once per outage and retried, never blocking startup
  or requests. On clean shutdown it deregisters (`DELETE /api/registry/{name}/{instance}`).
- Each request runs in its caller's trace (TraceContextMiddleware, unless the app has it).

Configuration comes from arguments, else the environment: PASSAGEWAY_INSPECTOR_URL,
PASSAGEWAY_TOKEN (sent as `Authorization: Bearer`, as the inspector expects),
PASSAGEWAY_REALM, PASSAGEWAY_SERVICE_URL (where this instance is reachable: required to register,
since an ASGI app cannot learn its server's address before it serves).

Standard library and httpx only. ASGI only: a WSGI app is not supported.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import UNMATCHED_ROUTE, RequestMetrics
from .service_url import SERVICE_NAME
from .tracecontext import ASGIApp, Message, Receive, Scope, Send, TraceContextMiddleware

log = logging.getLogger("passageway.service")

INSPECTOR_URL_ENV = "PASSAGEWAY_INSPECTOR_URL"
TOKEN_ENV = "PASSAGEWAY_TOKEN"
REALM_ENV = "PASSAGEWAY_REALM"
SERVICE_URL_ENV = "PASSAGEWAY_SERVICE_URL"

HEALTH_CONTENT_TYPE = "application/health+json"
DEFAULT_INTERVAL = 5.0
MIN_INTERVAL, MAX_INTERVAL = 0.5, 300.0
"""The registry's bounds (storage.registry): a heartbeat outside them is refused."""
DEFAULT_CHECK_TIMEOUT = 2.0
QUIET_START_BEATS = 2
"""Failed heartbeats this many intervals into startup, before the first success, are not yet an
outage worth a warning: an inspector started beside the service (`passageway up`, compose) is
often a moment later."""
STARTING_RETRY = 1.0
"""Seconds between attempts while starting and not yet registered."""
STALE_AFTER_BEATS = 3
"""Dependencies' states older than this many intervals (the inspector unreachable) read as unknown."""
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "_OTHER"
"""The method label of any other method: a client cannot grow /metrics by inventing methods."""
MAX_ERROR_TEXT = 300

Check = Callable[[], Any]
"""A readiness check: sync or async, no arguments; fails by raising or returning False."""


class ServiceConfigError(ValueError):
    """A smart service's configuration is wrong (a bad name, URL, path or interval)."""


# --- pure helpers --------------------------------------------------------------------------------


def check_url(value: str, what: str) -> str:
    """`value` if it is http(s)://host[:port][/base] without query or fragment (what the registry takes)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ServiceConfigError(f"{what} {value!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ServiceConfigError(f"{what} {value!r}: expected http(s)://host:port[/base]")
    return value.rstrip("/")


def check_path(value: str, what: str) -> str:
    if not value.startswith("/") or not value.isprintable() or " " in value or "?" in value or "#" in value:
        raise ServiceConfigError(f"{what} {value!r}: expected a path from '/', e.g. /readyz")
    return value


def default_instance_id() -> str:
    """Unique among this host's processes and stable for this one's life: hostname-pid."""
    return f"{socket.gethostname() or 'localhost'}-{os.getpid()}"


def metric_method(method: str) -> str:
    return method if method in STANDARD_METHODS else OTHER_METHOD


def route_template(routes: Sequence[Any], scope: Mapping[str, Any]) -> str | None:
    """The template of the Starlette/FastAPI route `scope` is routed to (`/orders/{id}`), mounts
    included (`/api` + `/items/{id}`), or None when none matches. Matches as Starlette's Router
    does: the first full match, else the first partial one (a wrong method, answered 405)."""
    partial: str | None = None
    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:  # a route type we do not know how to ask: skip it, never fail the request
            continue
        kind = getattr(match, "value", match)  # starlette.routing.Match: NONE 0, PARTIAL 1, FULL 2
        if kind == 0:
            continue
        template = _template_of(route, {**scope, **child})
        if kind == 2:
            return template
        if partial is None:
            partial = template
    return partial


def _template_of(route: Any, child_scope: Mapping[str, Any]) -> str | None:
    path_format = getattr(route, "path_format", None)
    inner_routes = getattr(route, "routes", None)
    if inner_routes is None or not hasattr(route, "app"):  # Route, APIRoute, WebSocketRoute
        return path_format
    # A Mount (path_format "/prefix/{path}") or a Host: the inner router's route under it.
    prefix = path_format.removesuffix("/{path}") if isinstance(path_format, str) else ""
    if not inner_routes:  # a mounted app without routes (StaticFiles): the mount itself
        return path_format
    inner = route_template(inner_routes, child_scope)
    return None if inner is None else prefix + inner


@dataclass(frozen=True)
class CheckResult:
    state: str
    """pass | fail"""
    latency_ms: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"state": self.state, "latency_ms": self.latency_ms}
        if self.error:
            result["error"] = self.error
        return result


async def run_check(check: Check, timeout: float) -> CheckResult:
    """Run one check (a sync one in a thread); fail on an exception, False, or the timeout."""
    started = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(check):
            outcome = await asyncio.wait_for(check(), timeout)
        else:
            outcome = await asyncio.wait_for(asyncio.to_thread(check), timeout)
            if inspect.isawaitable(outcome):
                outcome = await asyncio.wait_for(outcome, timeout)
        error = "returned False" if outcome is False else None
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_TEXT]
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return CheckResult("fail" if error else "pass", latency_ms, error)


def dependency_state(name: str, instances: Iterable[Mapping[str, Any]] | None,
                     services: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """A dependency's state from the registry's instances (GET /api/registry) and the configured
    services (GET /api/services), both of this realm; None: not known (no answer yet).

    up: an instance heartbeats and does not say it is unready (or a configured service's probes
    say up); down: registered instances are all gone, deregistered or unready (or probes say down);
    absent: neither registered nor configured; unknown: no answer, or a configured service not
    probed yet."""
    if instances is None:
        return {"state": "unknown", "reason": "the registry has not answered yet"}
    mine = [instance for instance in instances if instance.get("name") == name]
    if mine:
        live = [instance for instance in mine if instance.get("state") == "up"]
        ready = [instance for instance in live if instance.get("ready") is not False]
        state = "up" if ready else "down"
        result: dict[str, Any] = {"state": state, "source": "registry", "instances": len(mine), "up": len(ready)}
        if live and not ready:
            result["reason"] = "its instances say they are not ready"
        elif not live:
            result["reason"] = "no instance heartbeats"
        return result
    configured = [service for service in services or () if service.get("name") == name and service.get("registered")]
    if configured:
        health = configured[0].get("health") or {}
        state = {"up": "up", "down": "down"}.get(health.get("state"), "unknown")
        return {"state": state, "source": "services", "health": health.get("state")}
    if services is None:
        return {"state": "unknown", "reason": "not registered; the configured services have not answered yet"}
    return {"state": "absent", "reason": "neither registered nor configured"}


def readiness(checks: Mapping[str, CheckResult], dependencies: Mapping[str, Mapping[str, Any]]) -> str:
    """pass | warn | fail: fail when a check fails or a dependency is down or absent; warn when a
    dependency's state is unknown (no inspector, or it is unreachable); else pass."""
    if any(result.state == "fail" for result in checks.values()):
        return "fail"
    states = {dependency["state"] for dependency in dependencies.values()}
    if states & {"down", "absent"}:
        return "fail"
    return "warn" if "unknown" in states else "pass"


# --- the ASGI wrapper ----------------------------------------------------------------------------


class SmartService:
    """ASGI middleware around a whole app (see the module docstring). Arguments left as None are
    read from the environment when the app starts.

    name, version, depends_on: what the registry is told. checks: {name: callable} for /readyz.
    realm, url, inspector_url, token: where it registers (PASSAGEWAY_REALM, PASSAGEWAY_SERVICE_URL,
    PASSAGEWAY_INSPECTOR_URL, PASSAGEWAY_TOKEN). instance: this process's id (hostname-pid).
    interval: seconds between heartbeats (0.5-300). check_timeout: seconds a check may take.
    health_path, ready_path, metrics_path: where its own endpoints are. register=False: read the
    dependencies from the registry but send no heartbeat. trace=False: leave the trace context
    to the app (by default each request runs in its caller's trace, as TraceContextMiddleware
    does; an app that declares that middleware itself keeps its own)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        name: str,
        depends_on: Iterable[str] = (),
        checks: Mapping[str, Check] | None = None,
        version: str | None = None,
        realm: str | None = None,
        url: str | None = None,
        inspector_url: str | None = None,
        token: str | None = None,
        instance: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        check_timeout: float = DEFAULT_CHECK_TIMEOUT,
        health_path: str = "/healthz",
        ready_path: str = "/readyz",
        metrics_path: str = "/metrics",
        register: bool = True,
        trace: bool = True,
    ) -> None:
        if not SERVICE_NAME.fullmatch(name):
            raise ServiceConfigError(f"service name {name!r}: letters, digits, '_', '.' or '-' (at most 63)")
        self.depends_on = tuple(dict.fromkeys(depends_on))
        for dependency in self.depends_on:
            if not SERVICE_NAME.fullmatch(dependency):
                raise ServiceConfigError(f"dependency {dependency!r} is not a service name")
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            raise ServiceConfigError(f"interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds")
        if not check_timeout > 0:
            raise ServiceConfigError("check_timeout must be more than 0 seconds")
        self.checks = dict(checks or {})
        for check_name, check in self.checks.items():
            if not callable(check):
                raise ServiceConfigError(f"check {check_name!r} is not callable")
        self.paths = {
            check_path(health_path, "health_path"): self._healthz,
            check_path(ready_path, "ready_path"): self._readyz,
            check_path(metrics_path, "metrics_path"): self._metrics,
        }
        if len(self.paths) < 3:
            raise ServiceConfigError("health_path, ready_path and metrics_path must differ")
        self.name = name
        self.version = version
        self.realm = realm
        self.url = url
        self.inspector_url = inspector_url
        self.token = token
        self.instance = instance or default_instance_id()
        self.interval = float(interval)
        self.check_timeout = float(check_timeout)
        self.health_path, self.ready_path = health_path, ready_path
        self.register = register
        self.routes = getattr(app, "routes", None)
        declared = getattr(app, "user_middleware", ())
        already_traced = any(getattr(middleware, "cls", None) is TraceContextMiddleware for middleware in declared)
        self.app: ASGIApp = TraceContextMiddleware(app) if trace and not already_traced else app
        self.metrics = RequestMetrics(service=name, version=version, instance=self.instance, realm=realm)
        self._resolved = False
        self._started_at: float | None = None
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._instances: list[dict[str, Any]] | None = None
        self._services: list[dict[str, Any]] | None = None
        self._known_at: float | None = None
        self._inspector_problem: str | None = None
        self.heartbeats_tried = 0
        """Heartbeat rounds finished so far, answered or not (for diagnostics and tests)."""
        self.registered = False
        """True once the inspector has accepted a heartbeat (and until deregistered)."""

    # --- configuration read at startup ---

    def _resolve(self) -> None:
        """Fill what the arguments left open from the environment; ServiceConfigError on a bad value.
        Once: the lifespan resolves before the app starts, start() again when called alone."""
        if self._resolved:
            return
        self.realm = (self.realm if self.realm is not None else os.environ.get(REALM_ENV, "")) or None
        self.metrics.info["realm"] = self.realm or ""
        inspector = self.inspector_url if self.inspector_url is not None else os.environ.get(INSPECTOR_URL_ENV, "")
        self.inspector_url = check_url(inspector, "the inspector URL") if inspector else None
        self.token = self.token if self.token is not None else os.environ.get(TOKEN_ENV) or None
        if self.token is not None and not (self.token.isascii() and self.token.isprintable() and " " not in self.token):
            raise ServiceConfigError(f"the inspector token ({TOKEN_ENV}) must be printable ASCII without spaces")
        if not (self.register and self.inspector_url):
            self._resolved = True
            return
        url = self.url if self.url is not None else os.environ.get(SERVICE_URL_ENV, "")
        if not url:
            raise ServiceConfigError(
                f"service {self.name!r}: no URL to register: pass url= or set {SERVICE_URL_ENV} (e.g. http://127.0.0.1:8000)"
            )
        self.url = check_url(url, "the service URL")
        self._resolved = True

    # --- ASGI ---

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :] or "/"
        own = self.paths.get(path)
        if own is not None:
            await own(scope, send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        original = dict(scope)  # the router writes into `scope` (root_path, path_params): match on the original
        status = 0
        started = time.perf_counter()
        self.metrics.started()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            failed = True
            raise
        finally:
            self.metrics.finished(
                method=metric_method(original.get("method", "")),
                route=self._route_of(original, scope),
                status=status or 500,
                seconds=time.perf_counter() - started,
                failed=failed,
            )

    def _route_of(self, original: Scope, handled: Scope) -> str:
        template = None
        route = handled.get("route")  # Starlette's router notes the route it chose in the scope
        if route is not None and handled.get("root_path", "") == original.get("root_path", ""):
            # No mount on the way (a mount extends root_path): its template is the whole one.
            template = getattr(route, "path_format", None)
            if template is not None and not hasattr(route, "routes"):
                return template
            template = None
        if self.routes is not None:
            try:
                template = route_template(self.routes, original)
            except Exception:  # counting must never fail a request that has been answered
                log.debug("%s: no route template for %s", self.name, original.get("path"), exc_info=True)
        elif route is not None:
            template = getattr(route, "path_format", None)  # a wrapped app: the router's own note
        return template or UNMATCHED_ROUTE

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._resolve()
        except ServiceConfigError as exc:
            # Before the app starts: it then has nothing to clean up when the server exits.
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        startup_received = False
        inner_spoke = False

        async def inner_receive() -> Message:
            nonlocal startup_received
            message = await receive()
            if message["type"] == "lifespan.startup":
                startup_received = True
            elif message["type"] == "lifespan.shutdown":
                await self.stop()  # leave the registry before the app closes what it serves with
            return message

        async def inner_send(message: Message) -> None:
            nonlocal inner_spoke
            inner_spoke = True
            if message["type"] == "lifespan.startup.complete":
                problem = await self._start_or_problem()
                if problem:
                    message = {"type": "lifespan.startup.failed", "message": problem}
            await send(message)

        try:
            await self.app(scope, inner_receive, inner_send)
        except Exception:
            if inner_spoke:
                raise
            # The app does not speak lifespan: run ours alone.
            log.debug("%s: the app has no lifespan; registering without it", self.name)
            await self._own_lifespan(receive, send, startup_received=startup_received)

    async def _own_lifespan(self, receive: Receive, send: Send, *, startup_received: bool) -> None:
        if not startup_received:
            await receive()
        problem = await self._start_or_problem()
        if problem:
            await send({"type": "lifespan.startup.failed", "message": problem})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.stop()
        await send({"type": "lifespan.shutdown.complete"})

    async def _start_or_problem(self) -> str | None:
        try:
            await self.start()
        except ServiceConfigError as exc:
            return str(exc)
        return None

    # --- registration ---

    async def start(self) -> None:
        """Read the environment (ServiceConfigError on a bad value) and start the heartbeat task
        (returns at once)."""
        self._resolve()
        if not self.inspector_url:
            log.info("%s: no inspector (%s unset): not registering; dependencies read as unknown", self.name, INSPECTOR_URL_ENV)
            return
        if not (self.register or self.depends_on):
            return
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        timeout = max(1.0, min(5.0, self.interval))
        # trust_env=False: the registry's own traffic goes straight to the inspector, never
        # through an HTTP_PROXY (which may be the Passageway gateway itself).
        self._client = httpx.AsyncClient(base_url=self.inspector_url, headers=headers, timeout=timeout, trust_env=False)
        self._started_at = time.monotonic()
        self._task = asyncio.create_task(self._beat_forever(), name=f"passageway heartbeat of {self.name}")

    async def stop(self) -> None:
        """Stop the heartbeats and deregister (once; safe to call twice)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self.registered:
                response = await client.delete(
                    f"/api/registry/{quote(self.name, safe='')}/{quote(self.instance, safe='')}",
                    params={"realm": self.realm or ""},
                )
                if response.status_code not in (200, 404):
                    log.warning("%s: the inspector refused to deregister: %s", self.name, _problem_text(response))
                self.registered = False
        except httpx.HTTPError as exc:
            # Info, not a warning: the inspector often stops with it (`passageway up`), and the
            # registry marks an instance gone by itself after its grace period.
            log.info("%s: could not deregister at %s: %s", self.name, self.inspector_url, _error_text(exc))
        finally:
            await client.aclose()

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception:  # a bug here must not end the heartbeats for the process's life
                log.exception("%s: heartbeat failed", self.name)
            self.heartbeats_tried += 1
            await asyncio.sleep(self._next_beat_in())

    def _next_beat_in(self) -> float:
        """The interval; but each second while starting and not yet registered, so a service
        started beside its inspector appears as soon as the inspector answers."""
        if not self.registered and self._starting():
            return min(self.interval, STARTING_RETRY)
        return self.interval

    def _starting(self) -> bool:
        return self._started_at is not None and time.monotonic() - self._started_at < QUIET_START_BEATS * self.interval

    async def beat(self) -> None:
        """One round: refresh the dependencies' states, then send a heartbeat with our readiness."""
        assert self._client is not None
        try:
            await self._refresh_dependencies()
            if not self.register:
                return
            checks = await self._run_checks()
            dependencies = self._dependency_states()
            body = {
                "name": self.name,
                "realm": self.realm,
                "url": self.url,
                "health": self.ready_path,
                "version": self.version,
                "depends_on": list(self.depends_on),
                "instance": self.instance,
                "ready": readiness(checks, dependencies) != "fail",
                "checks": {name: result.to_json() for name, result in checks.items()},
                "interval_s": self.interval,
            }
            response = await self._client.post("/api/registry/heartbeat", json=body)
        except httpx.HTTPStatusError as exc:
            self._inspector_down(f"refused to say who is registered: {_problem_text(exc.response)}")
            return
        except (ValueError, KeyError, TypeError):
            self._inspector_down("answered with something that is not its registry (is it a Passageway inspector?)")
            return
        except httpx.HTTPError as exc:
            self._inspector_down(f"unreachable: {_error_text(exc)}")
            return
        if response.status_code != 200:
            self._inspector_down(f"refused the heartbeat: {_problem_text(response)}")
            return
        if self._inspector_problem:  # the end of an outage is as worth a line as its start
            log.warning("%s: the inspector at %s answers again; registered as instance %s",
                        self.name, self.inspector_url, self.instance)
        elif not self.registered:
            log.info("%s: registered with the inspector at %s as instance %s", self.name, self.inspector_url, self.instance)
        self.registered = True
        self._inspector_problem = None

    def _inspector_down(self, problem: str) -> None:
        """Log once per outage (and again if the problem changes), not on every retry."""
        if self._starting() and not self.registered:
            log.debug("%s: the inspector at %s %s (starting: not yet a warning)", self.name, self.inspector_url, problem)
            return
        if problem != self._inspector_problem:
            log.warning("%s: the inspector at %s %s; retrying every %g s", self.name, self.inspector_url, problem, self.interval)
        self._inspector_problem = problem

    async def _refresh_dependencies(self) -> None:
        if not self.depends_on:
            return
        assert self._client is not None
        realm = {"realm": self.realm or ""}
        response = await self._client.get("/api/registry", params=realm)
        response.raise_for_status()
        instances = response.json()["instances"]
        services = None
        registered = {instance["name"] for instance in instances}
        if any(dependency not in registered for dependency in self.depends_on):
            answer = await self._client.get("/api/services", params={**realm, "history": 1})
            answer.raise_for_status()
            services = answer.json()["services"]
        self._instances, self._services, self._known_at = instances, services or [], time.monotonic()

    def _dependency_states(self) -> dict[str, dict[str, Any]]:
        fresh = self._known_at is not None and time.monotonic() - self._known_at <= STALE_AFTER_BEATS * self.interval
        if self._known_at is not None and not fresh:
            return {name: {"state": "unknown", "reason": "the inspector has not answered lately"} for name in self.depends_on}
        if self.inspector_url is None:
            return {name: {"state": "unknown", "reason": "no inspector configured"} for name in self.depends_on}
        return {name: dependency_state(name, self._instances, self._services) for name in self.depends_on}

    async def _run_checks(self) -> dict[str, CheckResult]:
        results = await asyncio.gather(*(run_check(check, self.check_timeout) for check in self.checks.values()))
        return dict(zip(self.checks, results, strict=True))

    # --- the service's own endpoints ---

    async def _healthz(self, scope: Scope, send: Send) -> None:
        body = {"status": "pass", "service": self.name, "instance": self.instance}
        if self.version:
            body["version"] = self.version
        await _answer(scope, send, 200, body)

    async def _readyz(self, scope: Scope, send: Send) -> None:
        checks = await self._run_checks()
        dependencies = self._dependency_states()
        status = readiness(checks, dependencies)
        body = {
            "status": status,
            "service": self.name,
            "instance": self.instance,
            "checks": {name: result.to_json() for name, result in checks.items()},
            "dependencies": dependencies,
        }
        await _answer(scope, send, 503 if status == "fail" else 200, body)

    async def _metrics(self, scope: Scope, send: Send) -> None:
        await _answer(scope, send, 200, self.metrics.render().encode(), content_type=METRICS_CONTENT_TYPE)


def smart_service(app: ASGIApp, **options: Any) -> SmartService:
    """SmartService(app, **options), for those who prefer a function."""
    return SmartService(app, **options)


async def _answer(scope: Scope, send: Send, status: int, body: Any, *, content_type: str = HEALTH_CONTENT_TYPE) -> None:
    if scope.get("method") not in ("GET", "HEAD"):
        status, body, content_type = 405, {"status": "fail", "error": "GET or HEAD only"}, HEALTH_CONTENT_TYPE
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if status == 405:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else payload})


def _error_text(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__


def _problem_text(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = f"{response.status_code} {detail}" if detail else f"{response.status_code} {response.reason_phrase}"
    return text[:MAX_ERROR_TEXT]


__all__ = [
    "CheckResult",
    "ServiceConfigError",
    "SmartService",
    "dependency_state",
    "readiness",
    "route_template",
    "run_check",
    "smart_service",
]
