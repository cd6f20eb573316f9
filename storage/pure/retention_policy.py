"""RetentionPolicy: how much of the store to keep. Pure, and apart from storage.retention (the
pruning itself) so that reading the settings does not import the store."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetentionPolicy"]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_age: float | None = None
    """Seconds: exchanges captured longer ago are pruned."""
    max_exchanges: int | None = None
    """Only the newest this many exchanges are kept."""
    max_body_bytes: int | None = None
    """Stored (compressed) bytes of bodies: the oldest exchanges go until the bodies fit."""

    @property
    def enabled(self) -> bool:
        return self.max_age is not None or self.max_exchanges is not None or self.max_body_bytes is not None

    def describe(self) -> str:
        parts = []
        if self.max_age is not None:
            parts.append(f"max age {_duration(self.max_age)}")
        if self.max_exchanges is not None:
            parts.append(f"max {self.max_exchanges} exchanges")
        if self.max_body_bytes is not None:
            parts.append(f"max {self.max_body_bytes} bytes of bodies")
        return ", ".join(parts) or "no limit"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
