"""`passageway openapi diff NAME --since 30d --until 1d`: how a service's inferred API changed
between two moments, breaking changes marked (storage.contracts.changelog,
storage.pure.openapi_diff). Each side is the document inferred from the `--window` (7d) of
traffic before its moment; `--contract` compares the service's contract with the API inferred
over [since, until] instead (the contract of `--realm`'s realm, or of none). `--realm` narrows the
traffic to one realm; without it every realm's is merged, as for `passageway openapi NAME`. Read
from the store like that command.

add_diff_arguments(parser) gives a parser its arguments; run_diff(args, settings) runs it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json

from .commands import fail
from .settings import Settings

__all__ = ["add_diff_arguments", "run_diff"]


def add_diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the service, as captured")
    parser.add_argument("--since", default="30d", metavar="WHEN",
                        help="the older moment: this long ago (30d, the default) or an ISO 8601 time")
    parser.add_argument("--until", default=None, metavar="WHEN",
                        help="the newer moment: this long ago (1d) or an ISO 8601 time (default: now)")
    parser.add_argument("--window", default="7d", metavar="DURATION",
                        help="the traffic each side is inferred from: this long before its moment (default 7d)")
    parser.add_argument("--realm", dest="only_realm", default=None, metavar="REALM",
                        help="only this realm (default: every realm), as for `passageway openapi NAME`")
    parser.add_argument("--contract", action="store_true",
                        help="compare the service's contract with the API inferred over [since, until] instead")
    parser.add_argument("--json", action="store_true", help="print the changelog as JSON (as the API gives it)")
    parser.add_argument("--fail-on-breaking", action="store_true", help="exit 1 when a change is breaking (for CI)")  # fmt: skip


def run_diff(args: argparse.Namespace, settings: Settings) -> int:
    from storage.api_shapes import parse_window, summarise_new
    from storage.contracts import changelog
    from storage.pure.openapi_diff import render_text, summary
    from storage.store import open_store
    from storage.traffic_stats import parse_since

    since, until = parse_window(args.since, args.until)
    try:
        window = dt.timedelta(seconds=parse_since(args.window))
    except ValueError:
        return fail(f"--window: expected a duration such as 7d or 24h, not {args.window!r}")
    assert since is not None
    store = open_store(settings.db)
    try:
        summarise_new(store, rules=settings.redaction_rules())  # what no maintenance summarised yet
        changes = changelog(store, service=args.name, realm=args.only_realm, since=since, until=until, window=window,
                            contract=args.contract)  # fmt: skip
    finally:
        store.close()
    if args.json:
        print(json.dumps(summary(changes), indent=2, ensure_ascii=False))
    else:
        print(render_text(changes))
    return 1 if args.fail_on_breaking and any(change.breaking for change in changes) else 0
