"""`passageway openapi NAME [--realm R] [--since 7d] [--until 1d] [-o FILE]`: the OpenAPI 3.1
document inferred from a service's traffic (issue 18 §1), read from the store like `export`.

`openapi` is a group of actions: `show` is the default, so `passageway openapi NAME` means
`passageway openapi show NAME` (implicit_show inserts it); another action (`diff`) is one more
sub-parser plus its name in ACTIONS, and a service named like an action is `openapi show NAME`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from storage.pure.surrogates import json_text

from .commands import fail
from .settings import COMMAND_ROLES, Settings, add_flags

__all__ = ["ACTIONS", "add_openapi_parser", "implicit_show", "run_openapi"]

ACTIONS = ["show", "diff"]
"""Words after `passageway openapi` that name an action rather than a service."""


def implicit_show(argv: Sequence[str]) -> list[str]:
    """`openapi NAME ...` -> `openapi show NAME ...`; any other command line unchanged."""
    argv = list(argv)
    if len(argv) >= 2 and argv[0] == "openapi" and argv[1] not in ACTIONS and argv[1] not in ("-h", "--help"):
        argv.insert(1, "show")
    return argv


def add_openapi_parser(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The `openapi` group and its `show` action; the group's sub-parsers, for more actions."""
    group = commands.add_parser(
        "openapi",
        help="the OpenAPI 3.1 document inferred from a service's traffic",
        description="passageway openapi NAME [--realm R] [--since 7d] [--until 1d] [-o FILE]",
    )
    actions = group.add_subparsers(dest="openapi_command", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="the document of service NAME (the default action: `passageway openapi NAME`)",
        description="Print (or write to -o FILE) the OpenAPI 3.1 document inferred from NAME's captured "
        "exchanges, with redacted examples. Exchanges not summarised yet (no inspector or `maintain` ran "
        "since they were captured) are summarised first.",
    )
    add_flags(show, COMMAND_ROLES["openapi show"])
    show.add_argument("name", metavar="NAME", help="the service, as captured")
    show.add_argument("--realm", dest="only_realm", default=None, help="only this realm (default: every realm)")
    show.add_argument("--since", default=None, metavar="WHEN", help="from this long ago (7d, 12h) or an ISO 8601 time (default: all kept)")
    show.add_argument("--until", default=None, metavar="WHEN", help="up to this long ago (1d) or an ISO 8601 time (default: now)")
    show.add_argument("-o", "--output", default="-", metavar="FILE", help="write the document here (default: standard output)")
    return actions


def run_openapi(args: argparse.Namespace, settings: Settings) -> int:
    from storage.api_shapes import inferred_openapi, parse_window, summarise_new
    from storage.store import open_store

    since, until = parse_window(args.since, args.until)
    store = open_store(settings.db)
    try:
        summarise_new(store, rules=settings.redaction_rules())
        document = inferred_openapi(store, args.name, realm=args.only_realm, since=since, until=until)
    finally:
        store.close()
    # Encoded before the file is opened: an error never leaves it empty.
    data = (json_text(document, indent=2) + "\n").encode("utf-8")
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    try:
        Path(args.output).write_bytes(data)
    except OSError as e:
        return fail(f"-o {args.output}: {e.strerror or e}")
    operations = sum(len(item) for item in document["paths"].values())
    print(f"wrote the inferred OpenAPI of {args.name} to {args.output}: {len(document['paths'])} path(s), {operations} operation(s)")
    return 0
