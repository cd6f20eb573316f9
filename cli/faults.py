"""Fault rules from the command line and from passageway.toml (issue 17 §3).

`passageway fault add SERVICE --delay 300ms --rate 20% --for 10m` (or --status, --reset,
--stall; narrowed by --method, --path, --header), `passageway fault list`, `passageway fault
clear [ID|SERVICE]`. They work on the store, like `prune` and `status`: no inspector needed, and
every proxy of the rule's realm picks a change up within about a second.

`[[faults]]` tables of passageway.toml are checked when the settings load (config_faults) and
written to the store when a proxy or an inspector starts (sync_faults), with origin "config".
The checks are storage.pure.faults', shared with the API.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from typing import Any

from storage.pure.faults import InvalidFault, check_rule, parse_delay, parse_for, parse_rate

from .commands import fail

MAX_ID = 2**31 - 1
"""Rule ids are 32-bit integers: a larger number names no rule (and PostgreSQL would refuse it)."""
FAULT_KEYS = {"service", "realm", "method", "path", "header", "delay", "status", "reset", "stall", "rate", "for",
              "expires", "note"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One `[[faults]]` table, checked: check_rule's arguments but `now` (the times are taken at
    sync). `realm` None: the settings' realm."""

    rule: tuple[tuple[str, Any], ...]
    realm: str | None

    def fields(self, realm: str | None, now: dt.datetime):  # type: ignore[no-untyped-def]
        return check_rule(**dict(self.rule), realm=self.realm if self.realm is not None else realm, now=now)


def _rule_arguments(*, delay: str | None, rate: str | None, lasts: str | None, expires: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if delay is not None:
        arguments["delay_ms"], arguments["delay_max_ms"] = parse_delay(str(delay))
    if rate is not None:
        arguments["rate_percent"] = parse_rate(str(rate))
    if lasts is not None:
        arguments["lasts"] = parse_for(str(lasts))
    if expires is not None:
        arguments["expires_at"] = _time(expires, "expires")
    return arguments


def _time(value: Any, field: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidFault(field, f"{value!r} is not a time such as 2026-12-05T09:00:00Z") from None


def config_faults(value: Any, *, what: str) -> tuple[FaultSpec, ...]:
    """`[[faults]]` -> FaultSpecs, each checked now; ValueError (one line, naming the entry and
    the field) for a bad one. The settings turn it into a ConfigError."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what} must be an array of tables: [[faults]]")
    specs = []
    for index, table in enumerate(value, 1):
        where = f"{what} #{index}"
        if isinstance(table, FaultSpec):
            specs.append(table)
            continue
        if not isinstance(table, dict) or "service" not in table:
            raise ValueError(f"{where} needs service = \"NAME\"")
        unknown = sorted(set(table) - FAULT_KEYS)
        if unknown:
            raise ValueError(f"{where} has unknown key {unknown[0]!r}")
        try:
            rule = {"service": table["service"], "method": table.get("method"), "path": table.get("path"),
                    "header": table.get("header"), "status": table.get("status"), "reset": table.get("reset", False),
                    "stall": table.get("stall", False), "note": table.get("note")}  # fmt: skip
            if not all(isinstance(rule[flag], bool) for flag in ("reset", "stall")):
                raise InvalidFault("reset" if not isinstance(rule["reset"], bool) else "stall", "true or false")
            rule |= _rule_arguments(delay=table.get("delay"), rate=table.get("rate"), lasts=table.get("for"),
                                    expires=table.get("expires"))  # fmt: skip
            realm = table.get("realm")
            check_rule(**rule, realm=realm, now=dt.datetime.now(dt.UTC))  # checked now, timed at sync
        except InvalidFault as e:
            raise ValueError(f"{where}: {e}") from None
        specs.append(FaultSpec(rule=tuple(rule.items()), realm=None if realm is None else str(realm)))
    return tuple(specs)


def sync_faults(store, settings) -> None:  # type: ignore[no-untyped-def]
    """Write the `[[faults]]` of passageway.toml as the config rules of their realms."""
    from storage.faults import sync_config_rules

    from .settings import ConfigError

    now = dt.datetime.now(dt.UTC)
    try:
        rules = [spec.fields(settings.realm, now) for spec in settings.faults]
    except InvalidFault as e:  # an expiry that has passed since the file was written
        raise ConfigError(f"faults: {e}") from None
    realms = {settings.realm or ""} | {rule.realm for rule in rules}
    sync_config_rules(store, rules, realms=sorted(realms), now=now)


# --- the commands ---------------------------------------------------------------------------


def add_fault_arguments(add: argparse.ArgumentParser, listing: argparse.ArgumentParser, clear: argparse.ArgumentParser) -> None:
    add.add_argument("service", metavar="SERVICE", help="the service whose requests the rule touches")
    add.add_argument("--delay", metavar="DURATION", help="added latency: 300ms, 2s, or a range 100ms-2s")
    add.add_argument("--status", type=int, metavar="CODE", help="answer with this status instead of forwarding")
    add.add_argument("--reset", action="store_true", help="close the client's connection without an answer")
    add.add_argument("--stall", action="store_true", help="send the headers, then no body (closed after 30 s at most)")
    add.add_argument("--rate", metavar="PERCENT", help="share of the matching requests touched (default 100%%)")
    add.add_argument("--for", dest="lasts", metavar="DURATION", help="how long it lasts: 90s, 10m, 2h, 1d (default 10m)")
    add.add_argument("--until", metavar="TIME", help="when it ends instead: 2026-12-05T09:00:00Z (at most 7 days ahead)")
    add.add_argument("--method", metavar="METHOD", help="only requests of this method")
    add.add_argument("--path", metavar="PATH", help="only paths matching this template or glob: /orders/{id}, /orders/*")
    add.add_argument("--header", metavar="NAME=VALUE", help="only requests carrying this header value")
    add.add_argument("--note", metavar="TEXT", help="why (shown with the rule)")
    listing.add_argument("--all", action="store_true", help="also the expired rules")
    clear.add_argument("target", nargs="?", metavar="ID|SERVICE", help="one rule (#3 or 3), or a service's rules; default every rule")


def describe(rule: dict[str, Any]) -> str:
    """One line for a rule as the API gives it: `#3 billing [staging] GET /pay: delay 300 ms at 20%`."""
    scope = " ".join(part for part in (rule["method"], rule["path"], rule["header"] and f"[{rule['header']}]") if part)
    effects = []
    if rule["delay_ms"]:
        effects.append(f"delay {rule['delay_ms']:g}" + (f"-{rule['delay_max_ms']:g}" if rule["delay_max_ms"] else "") + " ms")
    if rule["status"] is not None:
        effects.append(f"status {rule['status']}")
    effects += [name for name in ("reset", "stall") if rule[name]]
    realm = f" (realm {rule['realm']})" if rule["realm"] else ""
    return f"#{rule['id']} {rule['service']}{realm}{' ' + scope if scope else ''}: {', '.join(effects)} at {rule['rate']:g}%"


def run_fault(args: argparse.Namespace, settings: Any) -> int:
    from storage import faults
    from storage.store import open_store

    now = dt.datetime.now(dt.UTC)
    if args.fault_command == "add":
        try:
            arguments = _rule_arguments(delay=args.delay, rate=args.rate, lasts=args.lasts, expires=args.until)
            rule = check_rule(service=args.service, realm=settings.realm, method=args.method, path=args.path,
                              header=args.header, status=args.status, reset=args.reset, stall=args.stall,
                              note=args.note, now=now, **arguments)  # fmt: skip
        except InvalidFault as e:
            return fail(_as_flags(e))
    store = open_store(settings.db)
    try:
        if args.fault_command == "add":
            stored = faults.create_rule(store, rule, now=now).to_json(now)
            print(f"added {describe(stored)}, until {_second(stored['expires_at'])}")
        elif args.fault_command == "list":
            rules = [rule.to_json(now) for rule in faults.list_rules(store)]
            shown = [rule for rule in rules if args.all or rule["state"] != "expired"]
            for rule in shown:
                when = f"until {_second(rule['expires_at'])}" if rule["state"] == "active" else (
                    f"from {_second(rule['starts_at'])}" if rule["state"] == "upcoming"
                    else f"ended {_second(rule['expires_at'])}")
                print(f"{describe(rule)}  {rule['state']} {when}{'  ' + rule['note'] if rule['note'] else ''}")
            if not shown:
                print("no fault rules" + ("" if args.all else " active or upcoming"))
        else:
            return _clear(store, args.target)
    finally:
        store.close()
    return 0


_FLAGS = {"delay_ms": "--delay", "delay_max_ms": "--delay", "expires_at": "--until", "expires": "--until", "service": "SERVICE"}


def _as_flags(error: InvalidFault) -> str:
    """A rule's error in the command's words: the flag at fault, not the API's field."""
    if error.field == "effect":
        return "no effect: give --delay, --status, --reset or --stall"
    return f"{_FLAGS.get(error.field, '--' + error.field)}: {error.message}"


def _second(iso: str) -> str:
    return iso[:19] + "Z"


def _clear(store, target: str | None) -> int:  # type: ignore[no-untyped-def]
    from storage import faults

    if target is None:
        print(f"removed {faults.clear_rules(store)} fault rule(s)")
        return 0
    number = target.removeprefix("#")
    if number.isdigit():
        if int(number) > MAX_ID or not faults.delete_rule(store, int(number)):
            return fail(f"no fault rule #{number}")
        print(f"removed fault rule #{number}")
        return 0
    removed = faults.clear_rules(store, service=target)
    if not removed:
        return fail(f"no fault rule on {target!r}")
    print(f"removed {removed} fault rule(s) on {target}")
    return 0
