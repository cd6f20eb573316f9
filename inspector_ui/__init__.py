"""The inspector: FastAPI app with REST under /api, a live WebSocket stream and the static UI."""

from .app import create_app
from .errors import CannotStart, PortInUseError
from .server import InspectorServer, serve
from .settings import InspectorSettings

__all__ = ["CannotStart", "InspectorServer", "InspectorSettings", "PortInUseError", "create_app", "serve"]
