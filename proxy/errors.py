"""The proxy's own error: why it cannot start."""

from __future__ import annotations


class StartError(Exception):
    """The proxy cannot start (a port in use, an unusable spool); the message is one line."""
