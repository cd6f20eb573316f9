"""Secret test variables out of results: every value, in every common encoding, becomes `[secret:NAME]`.

A service may echo a secret back URL-encoded, JSON-escaped, in base64 (Basic credentials)...
storage.pure.secret_forms knows those forms and finds them all in one pass; the few values it
does not follow (shorter than MIN_FOLLOWED, or words like `true`) are replaced as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from storage.pure.secret_forms import SecretScrubber, is_followed

__all__ = ["SecretMask", "secret_marker"]

_MARKER = re.compile(r"(\[secret:[A-Za-z0-9_-]+\])")


def secret_marker(name: str) -> str:
    return f"[secret:{name}]"


class SecretMask:
    """Replaces the values of `secrets` (name -> value) by their markers, in text and in JSON-like data."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        by_value = {value: secret_marker(name) for name, value in secrets.items() if value}
        self._scrubber = SecretScrubber(by_value)
        exact = sorted((value for value in by_value if not is_followed(value)), key=len, reverse=True)
        self._by_exact = {value: by_value[value] for value in exact}
        # One pass, longest first: a value inside another is not replaced in part, nor a marker touched.
        self._exact = re.compile("|".join(map(re.escape, exact))) if exact else None

    def __bool__(self) -> bool:
        return bool(self._scrubber) or self._exact is not None

    def text(self, value: str) -> str:
        value = self._scrubber.text(value)
        if self._exact is not None:
            pieces = _MARKER.split(value)  # odd pieces are markers: kept whole
            value = "".join(piece if i % 2 else self._replace_exact(piece) for i, piece in enumerate(pieces))
        return value

    def _replace_exact(self, text: str) -> str:
        assert self._exact is not None
        return self._exact.sub(lambda match: self._by_exact[match.group()], text)

    def data(self, value: object) -> object:
        """`value` (dicts, lists, strings, others kept) with every string masked, keys included."""
        if not self:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(key): self.data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value
