"""Capture and routing: the mitmproxy addons, the writer wiring and the `passageway` CLI."""
