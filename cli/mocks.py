"""Simulations from the command line (issue 18 §3), on the store like `passageway fault`:

  passageway mock NAME [--from QUERY] [--latency] [--passthrough]   simulate NAME from its traffic
  passageway mock NAME --har FILE [--latency] [--passthrough]       ... from a HAR file's entries
  passageway mock NAME --export FILE [--raw]                        write its recordings as HAR
  passageway mock NAME --off                                        stop simulating NAME
  passageway mock list                                              every simulation

Each works in the realm of the settings (--realm); every proxy of that realm picks a change up
within a few seconds (proxy.mocks). `list` is a word of its own: a service named "list" can be
simulated through the API or the config, not here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .commands import fail
from .settings import ConfigError


def sync_mocks(store, settings) -> None:  # type: ignore[no-untyped-def]
    """The mocks the proxy was given (`--mock NAME=FILE`, `[mocks]`, `[services.NAME] mock`) as its
    realm's config simulations: the given set replaces the config ones before anything is served
    (simulations made through the API or the CLI for other services stay)."""
    from storage.errors import Invalid
    from storage.mocks import SimulationSpec, sync_config_simulations

    realm = settings.realm or ""
    specs = []
    for name, path in settings.mocks.items():
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"mock {name!r}: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
        try:
            specs.append(SimulationSpec(service=name, realm=realm, har=text).checked())
        except Invalid as e:
            raise ConfigError(f"mock {name!r} ({path}): {e}") from None
    sync_config_simulations(store, specs, realms=[realm])


def add_mock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", metavar="NAME|list", help="the service to simulate, or `list` for every simulation")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from", dest="query", metavar="QUERY",
                        help="the recordings: the service's exchanges this search finds (default: all, the newest 1000)")
    source.add_argument("--har", metavar="FILE", help="the recordings: a HAR file's entries")
    source.add_argument("--off", action="store_true", help="stop simulating the service")
    source.add_argument("--export", metavar="FILE", help="write the simulation's recordings as HAR ('-': standard output)")
    parser.add_argument("--latency", action="store_true", help="answer after each recording's own duration")
    parser.add_argument("--passthrough", action="store_true",
                        help="forward a request no recording matches (default: a 404 naming the closest recordings)")
    parser.add_argument("--raw", action="store_true", help="with --export: leave secrets in (default: redacted as shares are)")


def describe(simulation: dict[str, Any]) -> str:
    """One line: `orders (realm staging): 12 HAR entries, latency, passthrough [cli]`."""
    realm = f" (realm {simulation['realm']})" if simulation["realm"] else ""
    if simulation["source"] == "har":
        source = f"{simulation['har_entries']} HAR entr{'y' if simulation['har_entries'] == 1 else 'ies'}"
    else:
        source = f"its exchanges{' matching ' + repr(simulation['query']) if simulation['query'] else ''}"
    options = "".join(f", {name}" for name in ("latency", "passthrough") if simulation[name])
    return f"{simulation['service']}{realm}: from {source}{options} [{simulation['origin']}]"


def run_mock(args: argparse.Namespace, settings: Any) -> int:
    from storage import mocks
    from storage.errors import Invalid
    from storage.exports import catch_up_search_index
    from storage.pure.search import parse_query
    from storage.store import open_store

    if args.service != "list" and args.raw and not args.export:
        return fail("--raw goes with --export")
    if args.service == "list" and (args.query or args.har or args.off or args.export or args.latency or args.passthrough):
        return fail("`passageway mock list` takes no other option")
    har = None
    if args.har is not None:
        try:
            har = Path(args.har).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            return fail(f"--har: cannot read {args.har}: {getattr(e, 'strerror', None) or e}")
    realm = settings.realm or ""
    store = open_store(settings.db)
    try:
        if args.service == "list":
            found = mocks.list_simulations(store)
            for simulation in found:
                print(describe(simulation.to_json()))
            if not found:
                print("no service is simulated")
            return 0
        if args.off:
            if not mocks.delete_simulation(store, service=args.service, realm=realm):
                return fail(f"{args.service!r} is not simulated" + (f" in realm {realm!r}" if realm else ""))
            print(f"stopped simulating {args.service}: the proxies forward its requests again")
            return 0
        if args.export:
            return _export(store, settings, args, realm)
        spec = mocks.SimulationSpec(service=args.service, realm=realm, query=args.query, har=har,
                                    latency=args.latency, passthrough=args.passthrough)  # fmt: skip
        try:
            stored = mocks.put_simulation(store, spec, origin="cli")
        except Invalid as e:
            return fail(f"--har: {e}" if har is not None else f"--from: {e}" if args.query else str(e))
        if args.query and parse_query(args.query).needs_index:
            # Free text and header: terms read the search index: what was just captured is found too.
            catch_up_search_index(store)
        count = len(mocks.load_recordings(store, stored.spec))
        print(f"simulating {describe(stored.to_json())}: {count} recording(s)")
        if not count:
            print("no recording yet: every request gets the no-match answer (404) until the search finds some",
                  file=sys.stderr)  # fmt: skip
    finally:
        store.close()
    return 0


def _export(store, settings: Any, args: argparse.Namespace, realm: str) -> int:  # type: ignore[no-untyped-def]
    from storage import mocks
    from storage.pure.har import har_text

    stored = mocks.get_simulation(store, service=args.service, realm=realm)
    if stored is None:
        return fail(f"{args.service!r} is not simulated" + (f" in realm {realm!r}" if realm else ""))
    rules = None if args.raw else settings.redaction_rules()
    text = har_text(mocks.export_recordings(store, stored, rules=rules, decode_limit=settings.max_decoded_body))
    if args.export == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.export).write_text(text, encoding="utf-8")
    except OSError as e:
        return fail(f"--export: cannot write {args.export}: {e.strerror}")
    entries = len(json.loads(text)["log"]["entries"])
    print(f"wrote {entries} recording(s) of {args.service} to {args.export}" + ("" if args.raw else " (redacted)"))
    return 0
