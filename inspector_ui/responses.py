"""SafeJSONResponse: the inspector's JSON responses."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from storage.pure.surrogates import json_text


class SafeJSONResponse(JSONResponse):
    """The app's JSON: as Starlette writes it, but a lone surrogate in captured text is a
    \\uXXXX escape (storage.pure.surrogates) instead of an encoding error and a 500."""

    def render(self, content: Any) -> bytes:
        return json_text(content, allow_nan=False, separators=(",", ":")).encode("utf-8")
