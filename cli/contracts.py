"""Contracts from the command line and from passageway.toml (issue 18 §2).

`passageway contract set NAME FILE`, `contract show NAME [--document]`, `contract accept NAME`
("accept current as contract": the inferred document frozen), `contract clear NAME`, each of the
settings' realm (`--realm R`, as `fault add`; none by default). They work on the store, like `fault`: no
inspector needed, and the maintenance role checks the next exchanges against the new contract.

`[services.NAME] contract = "openapi.yaml"` (JSON or YAML, relative to the config file) is read
and validated when the settings load (read_contract_file: a one-line ConfigError naming the file
and the problem), and written to the store when an inspector starts (sync_contracts), origin "file".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from .commands import fail
from .settings import ConfigError, Settings

__all__ = ["add_contract_arguments", "read_contract_file", "run_contract", "sync_contracts"]


def read_contract_file(path: Path) -> dict[str, Any]:
    """The OpenAPI document in `path` (JSON or YAML), checked; ConfigError (one line) otherwise."""
    import yaml

    from storage.contracts import InvalidContract, check_document

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"contract {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"contract {path}: cannot read it: {getattr(e, 'strerror', None) or e}") from None
    try:
        document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except ValueError as e:
        raise ConfigError(f"contract {path}: not valid JSON: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or " ".join(str(e).split())[:200]
        raise ConfigError(f"contract {path}: not valid YAML: {problem}{where}") from None
    try:
        return check_document(document)
    except InvalidContract as e:
        raise ConfigError(f"contract {path}: {e}") from None


def sync_contracts(store: Any, settings: Settings) -> None:
    """Each `[services.NAME] contract` into the store (origin "file"), for the settings' realm."""
    from storage.contracts import sync_config_contracts

    sync_config_contracts(store, [
        (name, settings.realm, read_contract_file(service.contract), str(service.contract))
        for name, service in settings.services.items() if service.contract is not None
    ])  # fmt: skip


def add_contract_arguments(
    setting: argparse.ArgumentParser, show: argparse.ArgumentParser, accept: argparse.ArgumentParser,
    clear: argparse.ArgumentParser,
) -> None:  # fmt: skip
    for parser in (setting, show, accept, clear):
        parser.add_argument("name", metavar="NAME", help="the service")
    setting.add_argument("file", metavar="FILE", help="an OpenAPI 3.0 or 3.1 document, JSON or YAML")
    setting.add_argument("--label", metavar="TEXT", help="where it came from, for people (default: FILE)")
    show.add_argument("--document", action="store_true", help="print the OpenAPI document itself (JSON)")
    accept.add_argument("--window", default="7d", metavar="DURATION",
                        help="the traffic the document is inferred from: the last 7d (default), 24h...")  # fmt: skip


def run_contract(args: argparse.Namespace, settings: Settings) -> int:
    from storage import contracts
    from storage.store import open_store
    from storage.traffic_stats import parse_since

    realm = settings.realm  # --realm, as for `fault add`: the realm whose contract
    where = f" in realm {realm}" if realm else ""
    if args.contract_command == "set":
        document = read_contract_file(Path(args.file))
    if args.contract_command == "accept":
        try:
            window = dt.timedelta(seconds=parse_since(args.window))
        except ValueError:
            return fail(f"--window: expected a duration such as 7d or 24h, not {args.window!r}")
    store = open_store(settings.db)
    try:
        if args.contract_command == "set":
            stored = contracts.set_contract(store, service=args.name, realm=realm, document=document, origin="api",
                                            label=args.label or args.file)  # fmt: skip
            print(f"contract of {args.name}{where} set from {args.file}: {_operations(stored)} operation(s)")
        elif args.contract_command == "show":
            stored = contracts.get_contract(store, service=args.name, realm=realm)
            if stored is None:
                return fail(f"{args.name} has no contract{where}")
            if args.document:
                print(json.dumps(stored.document, indent=2, ensure_ascii=False))
                return 0
            shown = stored.to_json(document=False)
            print(f"{args.name}{where}: {shown['origin']} contract {shown['label'] or ''} of {shown['created_at']}, "
                  f"{shown['operations']} operation(s)")  # fmt: skip
            since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
            counts = contracts.violation_counts(store, service=args.name, realm=realm, since=since)
            print(f"violations in the last 24h: {sum(c['count'] for c in counts)}")
            for count in counts:
                print(f"  {count['count']:>6}  {count['rule']:<24} {count['method']} {count['template']}")
        elif args.contract_command == "accept":
            from storage.api_shapes import summarise_new

            summarise_new(store, rules=settings.redaction_rules())  # what no maintenance summarised yet
            stored = contracts.accept_inferred(store, service=args.name, realm=realm, window=window)
            print(f"contract of {args.name}{where} is now the inferred document ({stored.label}): "
                  f"{_operations(stored)} operation(s)")  # fmt: skip
        elif not contracts.delete_contract(store, service=args.name, realm=realm):
            return fail(f"{args.name} has no contract{where}")
        else:
            print(f"contract of {args.name}{where} removed")
    finally:  # storage's errors (an invalid contract, an unknown service) are cli.main's one-line errors
        store.close()
    return 0


def _operations(stored: Any) -> int:
    return stored.to_json(document=False)["operations"]
