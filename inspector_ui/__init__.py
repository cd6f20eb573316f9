"""The inspector: FastAPI app with REST under /api, a live WebSocket stream and the static UI."""

from .app import create_app
from .server import InspectorError, InspectorServer, PortInUseError, serve
from .settings import InspectorSettings

__all__ = ["InspectorError", "InspectorServer", "InspectorSettings", "PortInUseError", "create_app", "serve"]
