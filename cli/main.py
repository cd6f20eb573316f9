"""The `passageway` command line: parses arguments, reads the settings once, runs the command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from proxy.errors import StartError
from proxy.routing import format_address
from storage.errors import StorageError

from .commands import fail
from .settings import COMMAND_ROLES, ConfigError, add_flags, flag_values, load_settings
from .supervisor import DEMO_ADDRESS, DEMO_SHOP_ADDRESS

PROG = "passageway"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="HTTP traffic-inspecting reverse proxy.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **how: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, **how)
        add_flags(sub, COMMAND_ROLES[name])
        return sub

    up = command("up", help="run the proxy and the inspector")
    up.add_argument("--demo", action="store_true", help="also run a demo upstream service on 127.0.0.1:9001")
    proxy = command("proxy", help="run the capturing proxy alone (--workers N: N processes sharing its ports)")
    proxy.add_argument("--worker", type=int, metavar="K", help=argparse.SUPPRESS)  # the supervisor's K-th worker
    command("writer", help="write the records of the proxy's workers (their spools) to the database; run by `proxy`")
    command("ui", help="run the inspector alone (and, unless --no-maintenance, the database's maintenance)")
    command("maintain", help="run the database's maintenance alone: search indexing, statistics, retention")
    command("monitor", help="run the monitors alone (Hurl tests on their schedules, webhooks on a change)")

    replay = command(
        "replay", help="send a captured request again, through the proxy (asks the inspector)",
        description="Replay exchange ID (or every exchange --query matches) through the proxy, as captured or "
        "edited; prints the new exchange's id (or the job's progress and summary).",
    )  # fmt: skip
    replay.add_argument("id", type=int, nargs="?", metavar="ID", help="the exchange to replay")
    replay.add_argument("--query", metavar="SEARCH", help="replay every exchange this search matches now")
    replay.add_argument("--rate", type=float, default=10.0, metavar="PER_SECOND", help="with --query (default 10)")
    replay.add_argument("--concurrency", type=int, default=4, metavar="N", help="with --query (default 4)")
    replay.add_argument("--to", metavar="SERVICE|URL", help="another configured service, or a base URL")
    replay.add_argument("--method", metavar="METHOD")
    replay.add_argument("--path", metavar="PATH", help="path and query, from '/'")
    replay.add_argument(
        "--set-header", metavar="NAME:VALUE", action="append", default=[], help="replace a header (repeatable)"
    )
    replay.add_argument("--remove-header", metavar="NAME", action="append", default=[], help="(repeatable)")
    replay.add_argument("--data", metavar="TEXT|@FILE", help="the body: text, or @FILE for a file's bytes")
    replay.add_argument(
        "--keep-trace", action="store_true", help="join the original's trace (default: a trace of its own)"
    )

    export = command("export", help="write exchanges to a HAR file (redacted unless --raw)")
    export.add_argument("--query", metavar="SEARCH", default="", help="what to export (default: everything)")
    export.add_argument("--har", metavar="FILE", required=True, help="the HAR file to write ('-': standard output)")
    export.add_argument("--raw", action="store_true", help="leave secrets in (default: redacted like share links)")

    importer = command("import", help="read a HAR file or a mitmproxy flow file into the store")
    importer.add_argument("file", metavar="FILE", help="a .har, or a mitmproxy flow file (mitmdump -w)")

    command("status", help="every proxy's writer counters and the search backlog, from the store")
    prune = command("prune", help="remove exchanges beyond the retention limits now (maintenance does it every minute)")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")

    call = command(
        "call", help="send one request through the gateway, e.g. service://identity/users/42 (the smart client's retries)"
    )
    call.add_argument("url", metavar="URL", help="service://NAME/path, or an http(s) URL")
    call.add_argument("-X", "--method", default="GET", metavar="METHOD")
    call.add_argument("-H", "--header", action="append", default=[], metavar="NAME:VALUE", help="(repeatable)")
    call.add_argument("--data", metavar="TEXT|@FILE", help="the body: text, or @FILE for a file's bytes")
    call.add_argument("-i", "--include", action="store_true", help="also print the status line and response headers")
    call.add_argument("--caller", metavar="SERVICE", help="the calling service's name (X-Passageway-Caller)")
    call.add_argument("--attempts", type=int, default=3, metavar="N", help="tries for idempotent methods (default 3)")
    call.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")

    test = commands.add_parser("test", help="API tests in the Hurl format (https://hurl.dev)")
    tests = test.add_subparsers(dest="test_command", required=True, metavar="COMMAND")

    def test_command(name: str, **how: str) -> argparse.ArgumentParser:
        sub = tests.add_parser(name, **how)
        add_flags(sub, COMMAND_ROLES[f"test {name}"])
        return sub

    from .testing import add_new_arguments, add_run_arguments

    add_run_arguments(test_command(
        "run", help="run Hurl files (or every *.hurl in directories) through the proxy; exit 1 when any fails",
        description="Parse every file first (a parse error: exit 2, nothing run), then run the tests in parallel, "
        "each test's steps in order, every request through the proxy (captured and traced).",
    ))  # fmt: skip
    add_new_arguments(test_command(
        "new", help="make a Hurl test from captured traffic: one exchange, or a search's matches chained",
        description="Write a test of --from-exchange ID, or of the newest --limit exchanges --from-search matches in "
        "capture order (values that earlier responses produced, such as ids, are captured and reused), secrets "
        "replaced by {{variables}}; then say which secrets it needs and how to run it.",
    ))  # fmt: skip

    fault = commands.add_parser("fault", help="inject faults on purpose: delays, error statuses, resets, stalls")
    fault_commands = fault.add_subparsers(dest="fault_command", required=True, metavar="COMMAND")

    def fault_command(name: str, **how: str) -> argparse.ArgumentParser:
        sub = fault_commands.add_parser(name, **how)
        add_flags(sub, COMMAND_ROLES[f"fault {name}"])
        return sub

    from .faults import add_fault_arguments

    add_fault_arguments(
        fault_command("add", help="add a fault rule on a service of --realm (it ends by itself: --for, default 10m)"),
        fault_command("list", help="the fault rules active or upcoming (--all: also the expired)"),
        fault_command("clear", help="remove one rule (ID), a service's rules (SERVICE), or every rule"),
    )

    from .mocks import add_mock_arguments

    add_mock_arguments(command(
        "mock", help="answer a service from its recordings instead of forwarding (or --off; `mock list`)",
        description="Simulate NAME: the proxies of the realm answer its requests from recorded exchanges (--from "
        "a search, default all; or --har FILE), exact matches first, then the closest of the same endpoint; "
        "--off stops it; --export FILE writes its recordings as HAR; `passageway mock list` shows every simulation.",
    ))  # fmt: skip

    from .registry import add_forget_arguments, add_list_arguments

    registry = commands.add_parser("registry", help="the services that register themselves (asks the inspector)")
    registries = registry.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")
    for name, add_arguments, how in (
        ("list", add_list_arguments, "every self-registered service with its instances, state and dependencies"),
        ("forget", add_forget_arguments, "remove a service (and its stale proxy registrations), or one instance"),
    ):
        sub = registries.add_parser(name, help=how)
        add_flags(sub, COMMAND_ROLES[f"registry {name}"])
        add_arguments(sub)

    from .openapi import add_openapi_parser

    from .openapi_diff import add_diff_arguments

    diff = add_openapi_parser(commands).add_parser(
        "diff", help="how a service's inferred API changed between two moments, breaking changes marked",
        description="Compare the document inferred from the --window (7d) of traffic before --since (30d ago) with "
        "the one before --until (now); --contract compares the service's contract with the API over [since, until].",
    )  # fmt: skip
    add_flags(diff, COMMAND_ROLES["openapi diff"])
    add_diff_arguments(diff)

    from .contracts import add_contract_arguments

    contract = commands.add_parser("contract", help="a service's OpenAPI contract, which its traffic is checked against")
    contract_commands = contract.add_subparsers(dest="contract_command", required=True, metavar="COMMAND")

    def contract_command(name: str, **how: str) -> argparse.ArgumentParser:
        sub = contract_commands.add_parser(name, **how)
        add_flags(sub, COMMAND_ROLES[f"contract {name}"])
        return sub

    add_contract_arguments(
        contract_command("set", help="make FILE (an OpenAPI 3.0/3.1 document, JSON or YAML) the contract of NAME"),
        contract_command("show", help="the contract of NAME (origin, label, date) and its violations in the last 24h"),
        contract_command("accept", help="accept current as contract: freeze the document inferred from NAME's traffic"),
        contract_command("clear", help="remove the contract of NAME (the violations found stay)"),
    )

    demo = commands.add_parser("demo-upstream", help="run the demo upstream service")
    demo.add_argument("--listen", metavar="HOST:PORT", default=format_address(*DEMO_ADDRESS))
    demo.add_argument("--shop-listen", metavar="HOST:PORT", default=format_address(*DEMO_SHOP_ADDRESS),
                      help="where the demo's second service, shop (depends on demo), listens")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .openapi import implicit_show

    argv = implicit_show(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command != "proxy":  # the proxy logs through mitmproxy's own handler
        logging.basicConfig(
            level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
    try:
        if args.command == "demo-upstream":
            from . import demo

            demo.serve(args.listen, args.shop_listen)
            return 0
        settings = load_settings(flag_values(args))
        if args.command == "proxy":
            if args.worker is not None:
                from .roles import run_proxy_worker

                return run_proxy_worker(settings, worker=args.worker)
            from .proxy_supervisor import run_proxy

            return run_proxy(argv, settings)
        if args.command in ("ui", "maintain", "writer"):
            from . import roles

            return {"ui": roles.run_ui, "maintain": roles.run_maintain, "writer": roles.run_writer}[args.command](settings)
        if args.command == "monitor":
            from .monitoring import run_monitor

            return run_monitor(settings)
        if args.command == "test":
            from . import testing

            return {"run": testing.run_tests, "new": testing.new_test}[args.test_command](args, settings)
        if args.command == "fault":
            from .faults import run_fault

            return run_fault(args, settings)
        if args.command == "mock":
            from .mocks import run_mock

            return run_mock(args, settings)
        if args.command == "registry":
            from . import registry

            return {"list": registry.run_list, "forget": registry.run_forget}[args.registry_command](args, settings)
        if args.command == "openapi":
            if args.openapi_command == "diff":
                from .openapi_diff import run_diff

                return run_diff(args, settings)
            from .openapi import run_openapi

            return run_openapi(args, settings)
        if args.command == "contract":
            from .contracts import run_contract

            return run_contract(args, settings)
        if args.command == "up":
            from .supervisor import run_up

            return run_up(argv, settings, demo=args.demo)
        from . import commands

        return {
            "replay": commands.run_replay,
            "export": commands.run_export,
            "import": commands.run_import,
            "status": commands.run_status,
            "prune": commands.run_prune,
            "call": commands.run_call,
        }[args.command](args, settings)
    except (ConfigError, StorageError, StartError) as e:
        return fail(str(e))
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that exiting flushes nowhere
        return 141  # 128 + SIGPIPE
    except KeyboardInterrupt:
        return 130
