"""proxy.mitmproxy_fixes: a client connection's HTTP layer forgets upstream connections closed for good."""

from __future__ import annotations

from types import SimpleNamespace

from mitmproxy.connection import ConnectionState, Server
from mitmproxy.proxy.layers import http as http_layers

from proxy import mitmproxy_fixes


def server(state: ConnectionState) -> Server:
    connection = Server(address=("127.0.0.1", 9000))
    connection.state = state
    return connection


def test_closed_upstream_connections_are_forgotten_before_one_is_chosen(monkeypatch) -> None:
    chosen = []

    def original(self, event, *, reuse=True):  # type: ignore[no-untyped-def]
        chosen.append(list(self.connections))
        yield "command"

    monkeypatch.setattr(mitmproxy_fixes, "_original_get_connection", original)
    closed, still_open, current, connecting = (server(ConnectionState.CLOSED), server(ConnectionState.OPEN),
                                                server(ConnectionState.CLOSED), server(ConnectionState.CLOSED))  # fmt: skip
    half_closed = server(ConnectionState.CAN_WRITE)  # may still be finishing a response
    layer = SimpleNamespace(
        connections={closed: "layer", still_open: "layer", current: "layer", connecting: "layer", half_closed: "layer"},
        context=SimpleNamespace(server=current),
        waiting_for_establishment={connecting: []},
    )
    commands = list(mitmproxy_fixes._get_connection_forgetting_closed(layer, "event"))
    assert commands == ["command"]  # the original's commands pass through
    assert chosen == [[still_open, current, connecting, half_closed]]  # only `closed` was forgotten


def test_install_replaces_mitmproxys_method_and_keeps_its_signature() -> None:
    mitmproxy_fixes.install()
    assert http_layers.HttpLayer.get_connection is mitmproxy_fixes._get_connection_forgetting_closed
    mitmproxy_fixes.install()  # idempotent
    assert mitmproxy_fixes._original_get_connection.__name__ == "get_connection"


def test_a_released_body_tap_keeps_nothing_and_still_passes_chunks_through() -> None:
    from proxy.flow_record import BodyTap

    tap = BodyTap(cap=10)
    assert tap(b"abcdef") == b"abcdef"
    tap.release()
    assert tap(b"ghij") == b"ghij" and tap.data() == b"" and tap.size == 10
