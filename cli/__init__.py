"""The `passageway` command: the composition root that reads the settings and runs the roles (proxy, inspector, `up`'s supervisor, the store commands, the demo).

Exports `run`, the command's entry point (`passageway` and `python -m cli`)."""

from __future__ import annotations

import os
import signal


def _interrupted(signum: int, frame: object) -> None:
    os._exit(130)  # 128 + SIGINT, as a shell reports it


def run() -> int:
    """The command, with Ctrl-C ending it quietly (status 130) from its first line.

    Until a role installs its own handler (the inspector's server, the proxy's event loop, `up`'s
    supervisor, `maintain` and `monitor`), SIGINT ends the process at once. Python's default
    would raise KeyboardInterrupt wherever the interpreter happens to be: while the application
    loads (seconds on a busy machine; `up` stops its children with SIGINT, which may land then)
    that can be inside a callback the interpreter runs for itself, such as importlib's weakref
    cleanup, where the exception is printed as "Exception ignored" and lost, and the command goes
    on as if Ctrl-C had not been pressed. A command that handles Ctrl-C itself restores
    signal.default_int_handler around that part (the bulk replay's cancel)."""
    signal.signal(signal.SIGINT, _interrupted)
    from .main import main

    return main()
