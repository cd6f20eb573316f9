"""The `passageway` command: the composition root that reads the settings and runs the roles (proxy, inspector, `up`'s supervisor, the store commands, the demo).

Exports `run`, the command's entry point (`passageway` and `python -m cli`)."""

from __future__ import annotations


def run() -> int:
    """The command, with Ctrl-C ending it quietly (status 130) from its first line.

    cli.main loads the whole application (seconds on a busy machine, and `passageway up`
    stops its children with SIGINT, which may land while they are still loading): an
    interrupt then is caught here, where the import happens, instead of printing a
    KeyboardInterrupt traceback from some library's module."""
    try:
        from .main import main

        return main()
    except KeyboardInterrupt:
        return 130
