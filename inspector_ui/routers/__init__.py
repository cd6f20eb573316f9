"""One router per resource: exchanges, the live stream, health."""
