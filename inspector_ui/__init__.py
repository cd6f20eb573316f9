"""The inspector: FastAPI app with REST under /api, a live WebSocket stream and the static UI."""
