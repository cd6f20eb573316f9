"""Router: sends each request to its service's upstream, or answers 404 itself.

On the gateway, a configured service wins; a name no configured service has is looked up in the
registry's routes (proxy.registry_routes), which pick one of its instances. Where a request may
not go (an inspector) is proxy.inspector_guard's business; it runs after this."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from mitmproxy import http
from mitmproxy.net.http.url import hostport

from passageway.wire import ERROR_HEADER

from .flow_record import META_ERROR_KIND, META_ERROR_MESSAGE, META_INSTANCE, META_SERVICE, META_UNROUTED, url_text
from .registry_routes import META_ENDPOINT, RegistryRoutes
from .routing import Service, Upstream, format_address, route_by_prefix, split_prefix


def gateway_mode(listen: tuple[str, int]) -> str:
    """mitmproxy mode spec for the path-prefix gateway.

    Reverse mode needs some upstream; with connection_strategy=lazy nothing is
    ever opened to it, because the Router sets every request's destination
    (or answers it) in `requestheaders`.
    """
    address = format_address(*listen)
    return f"reverse:http://{address}@{address}"


def service_mode(service: Service) -> str:
    assert service.listen is not None
    upstream = service.upstream
    return f"reverse:{upstream.scheme}://{format_address(upstream.host, upstream.port)}@{format_address(*service.listen)}"


def forward_mode(host: str, port: int) -> str:
    return f"regular@{format_address(host, port)}"


def no_route_response(path: str, services: Iterable[str]) -> http.Response:
    """The gateway's 404; `services` are the names it routes (configured and registered)."""
    body = {
        "error": "no_route",
        "message": f"no service matches {path!r}; the first path segment must name a service",
        "services": sorted(set(services)),
    }
    return http.Response.make(
        404,
        json.dumps(body, indent=2).encode() + b"\n",
        {"Content-Type": "application/json", ERROR_HEADER: "no_route"},
    )


def point_at(request: http.Request, upstream: Upstream, authority: str, path: str) -> None:
    """Send the request to `upstream`. Sets mitmproxy's fields directly: the
    property setters recompute the Host header on each of host and port."""
    data = request.data
    data.scheme = upstream.scheme.encode()
    data.host = upstream.host
    data.port = upstream.port
    data.path = path.encode("utf-8", "surrogateescape")
    request.host_header = authority


class Router:
    def __init__(
        self,
        *,
        services: dict[str, Service],
        gateway: str,
        registered: RegistryRoutes | None = None,
        simulated: Callable[[str], bool] | None = None,
    ) -> None:
        self.services = services
        self.gateway = gateway
        self.registered = registered
        self.simulated = simulated
        """proxy.mocks.Mocks.simulates: a simulated name routes on the gateway even with no upstream."""
        self.by_mode = {service_mode(s): s for s in services.values() if s.listen is not None}
        self.authorities = {
            name: hostport(s.upstream.scheme, s.upstream.host, s.upstream.port) for name, s in services.items()
        }

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        mode = flow.client_conn.proxy_mode.full_spec
        request = flow.request
        if mode == self.gateway:
            if request.method == "PRI":
                return  # an HTTP/2 preface without TLS: mitmproxy answers that itself
            path = url_text(request.data.path)
            target = route_by_prefix(self.services, path)
            if target is not None:
                flow.metadata[META_SERVICE] = target.service
                point_at(request, target.upstream, self.authorities[target.service], target.path)
            elif not self.route_registered(flow, path) and not self.route_simulated(flow, path):
                flow.metadata[META_ERROR_KIND] = "no_route"
                flow.metadata[META_ERROR_MESSAGE] = f"no service named by {request.path!r}"
                registered = self.registered.table.pools if self.registered is not None else ()
                flow.response = no_route_response(request.path, [*self.services, *registered])
        elif (service := self.by_mode.get(mode)) is not None:
            flow.metadata[META_SERVICE] = service.name
            if service.upstream.base_path:
                request.path = service.upstream.base_path + request.path
        else:
            # Forward proxy: the service is the host the client asked for.
            flow.metadata[META_SERVICE] = request.pretty_host

    def route_simulated(self, flow: http.HTTPFlow, path: str) -> bool:
        """A simulated service no upstream serves: named, its prefix taken off, and left for
        proxy.mocks to answer (nothing is ever sent: its destination stays unset)."""
        if self.simulated is None or (split := split_prefix(path)) is None or not self.simulated(split[0]):
            return False
        flow.metadata[META_SERVICE] = split[0]
        flow.metadata[META_UNROUTED] = True
        flow.request.data.path = split[1].encode("utf-8", "surrogateescape")
        return True

    def route_registered(self, flow: http.HTTPFlow, path: str) -> bool:
        """Send the request to an instance of the registered service its path names; False if none."""
        if self.registered is None or (split := split_prefix(path)) is None:
            return False
        name, rest = split
        endpoint = self.registered.route(name)
        if endpoint is None:
            return False
        metadata = flow.metadata
        metadata[META_SERVICE] = name
        metadata[META_INSTANCE] = endpoint.instance
        metadata[META_ENDPOINT] = endpoint
        point_at(flow.request, endpoint.upstream, endpoint.authority, endpoint.upstream.base_path + rest)
        return True
