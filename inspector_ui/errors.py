"""The inspector's errors: why it cannot start (server.py raises them), and what a request can end
with (routes and the replay code raise those; app.py answers each kind with its status, in the
shape inspector_ui.problems gives every error answer, the message as `detail`)."""

from __future__ import annotations

__all__ = [
    "ApiError", "BadRequest", "CannotStart", "Conflict", "InspectorError", "NotConfigured", "NotFound",
    "PortInUseError", "ProxyUnreachable", "Refused", "TimedOut", "Unprocessable",
]  # fmt: skip


class InspectorError(Exception):
    """Base of the inspector's errors."""


class CannotStart(InspectorError):
    """The inspector cannot start (its address, its database); the message says why, in one line."""


class PortInUseError(CannotStart):
    """The inspector's host:port is already taken by another process."""


class ApiError(InspectorError):
    """Base of the errors a request can end with; the message says why, in one line."""


class BadRequest(ApiError):
    """A parameter, field or edit that means nothing valid (a bad method, URL, header or duration)."""


class Refused(ApiError):
    """Not allowed: a replay target outside what the guard approves."""


class NotFound(ApiError):
    """What the request names does not exist."""


class Conflict(ApiError):
    """Not possible as the inspector is set up (a replay to a URL without the proxy's forward port)."""


class Unprocessable(ApiError):
    """Well-formed, but it cannot be done as it stands (a body that cannot be decoded, a request HTTP cannot carry)."""


class ProxyUnreachable(ApiError):
    """The proxy a replay goes through could not be reached, or failed to carry the request."""


class NotConfigured(ApiError):
    """The inspector is not set up for this (replay without the proxy's address)."""


class TimedOut(ApiError):
    """No answer in time: a replay's, or its capture's."""
