"""The `passageway` command: parses arguments and wires the parts together.

`up` runs the proxy and the inspector as two processes that meet only in the
database; `proxy` and `ui` run each alone.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import dataclasses
import ipaddress
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from storage.store import StorageError

from .config import ConfigError, Settings, load_settings
from .routing import format_address

PROG = "passageway"
DEMO_ADDRESS = ("127.0.0.1", 9001)


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="passageway.toml to read (default: ./passageway.toml if present)")
    parser.add_argument("--db", metavar="URL", help="database URL (default: SQLite under ~/.local/share/passageway/)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log connections and requests")


def add_routing_flags(parser: argparse.ArgumentParser) -> None:
    """The proxy's routes and addresses: the proxy serves them, the inspector replays through them."""
    parser.add_argument("--listen", metavar="HOST:PORT", help="gateway address (default 127.0.0.1:8080)")
    parser.add_argument("--realm", metavar="NAME", help="the realm whose services to use ([realms.NAME] in passageway.toml)")
    parser.add_argument(
        "--route", metavar="NAME=URL", action="append", dest="routes",
        help="send /NAME/... to URL (repeatable)",
    )
    parser.add_argument("--forward-port", metavar="PORT", type=int, help="also run a standard forward proxy on PORT")
    parser.add_argument("--certs-dir", metavar="DIR", help="where mitmproxy keeps its CA (default ~/.mitmproxy)")


def add_proxy_flags(parser: argparse.ArgumentParser) -> None:
    add_routing_flags(parser)
    parser.add_argument("--body-cap", metavar="BYTES", help="bytes of each body to store (default 1MiB)")
    parser.add_argument("--upstream-timeout", metavar="SECONDS", help="give up on an upstream after this long (default 30)")
    parser.add_argument("--proxy-name", metavar="NAME", help="name recorded with each exchange (default: host name)")
    parser.add_argument(
        "--tracing", choices=("off", "propagate", "start"),
        help="give traced requests a span per exchange (propagate, the default), also start traces (start), or never touch trace headers (off)",
    )
    parser.add_argument("--upstream-ca", metavar="PEM", help="also trust this CA bundle for HTTPS upstreams")
    parser.add_argument(
        "--upstream-insecure", action="store_const", const=True,
        help="do not verify HTTPS upstreams' certificates",
    )
    parser.add_argument(
        "--spool-dir", metavar="DIR",
        help="where records wait for the database (default ~/.local/state/passageway/spool/PROXY_NAME)",
    )
    parser.add_argument(
        "--spool-max-bytes", metavar="BYTES", help="disk the spool may use (default 1GiB; 0: memory only)"
    )


def add_ui_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ui", metavar="HOST:PORT", help="inspector address (default 127.0.0.1:8081)")
    parser.add_argument(
        "--replay-via", metavar="URL",
        help="the proxy gateway replays are sent through (default: http:// the --listen address)",
    )
    parser.add_argument(
        "--allow-any-replay-target", action="store_const", const=True,
        help="also replay to public addresses that are neither services nor the captured host",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="HTTP traffic-inspecting reverse proxy.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the proxy and the inspector")
    add_common_flags(up)
    add_proxy_flags(up)
    add_ui_flags(up)
    up.add_argument("--demo", action="store_true", help="also run a demo upstream service on 127.0.0.1:9001")

    proxy = commands.add_parser("proxy", help="run the capturing proxy alone")
    add_common_flags(proxy)
    add_proxy_flags(proxy)
    proxy.add_argument(
        "--ui", metavar="HOST:PORT",
        help="the inspector this proxy never forwards to (default 127.0.0.1:8081); "
        "inspectors running on the same database are refused too",
    )

    ui = commands.add_parser("ui", help="run the inspector alone")
    add_common_flags(ui)
    add_routing_flags(ui)
    add_ui_flags(ui)
    ui.add_argument(
        "--upstream-timeout", metavar="SECONDS", help="the proxy's upstream timeout: a replay waits 5 s longer (default 30)"
    )

    replay = commands.add_parser(
        "replay", help="send a captured request again, through the proxy (asks the inspector)",
        description="Replay exchange ID (or every exchange --query matches) through the proxy, as captured or "
        "edited; prints the new exchange's id (or the job's progress and summary).",
    )
    add_common_flags(replay)
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
    replay.add_argument("--ui", metavar="HOST:PORT", help="the inspector to ask (default: from config, 127.0.0.1:8081)")

    export = commands.add_parser("export", help="write exchanges to a HAR file (redacted unless --raw)")
    add_common_flags(export)
    export.add_argument("--query", metavar="SEARCH", default="", help="what to export (default: everything)")
    export.add_argument("--har", metavar="FILE", required=True, help="the HAR file to write ('-': standard output)")
    export.add_argument("--raw", action="store_true", help="leave secrets in (default: redacted like share links)")

    importer = commands.add_parser("import", help="read a HAR file or a mitmproxy flow file into the store")
    add_common_flags(importer)
    importer.add_argument("file", metavar="FILE", help="a .har, or a mitmproxy flow file (mitmdump -w)")

    status = commands.add_parser("status", help="every proxy's writer counters and the search backlog, from the store")
    add_common_flags(status)

    prune = commands.add_parser(
        "prune", help="remove exchanges beyond the retention limits now (the inspector also does it every minute)"
    )
    add_common_flags(prune)
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")

    call = commands.add_parser(
        "call", help="send one request through the gateway, e.g. service://identity/users/42 (the smart client's retries)"
    )
    add_common_flags(call)
    add_routing_flags(call)
    call.add_argument("url", metavar="URL", help="service://NAME/path, or an http(s) URL")
    call.add_argument("-X", "--method", default="GET", metavar="METHOD")
    call.add_argument("-H", "--header", action="append", default=[], metavar="NAME:VALUE", help="(repeatable)")
    call.add_argument("--data", metavar="TEXT|@FILE", help="the body: text, or @FILE for a file's bytes")
    call.add_argument("-i", "--include", action="store_true", help="also print the status line and response headers")
    call.add_argument("--caller", metavar="SERVICE", help="the calling service's name (X-Passageway-Caller)")
    call.add_argument("--attempts", type=int, default=3, metavar="N", help="tries for idempotent methods (default 3)")
    call.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    call.add_argument("--ui", metavar="HOST:PORT", help="the inspector whose trace link to print (default from config)")

    demo = commands.add_parser("demo-upstream", help="run the demo upstream service")
    demo.add_argument("--listen", metavar="HOST:PORT", default=format_address(*DEMO_ADDRESS))
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {
        key: getattr(args, key, None)
        for key in (
            "config", "db", "listen", "ui", "routes", "forward_port", "body_cap", "upstream_timeout",
            "proxy_name", "certs_dir", "upstream_ca", "upstream_insecure", "replay_via", "allow_any_replay_target",
            "spool_dir", "spool_max_bytes", "realm", "tracing",
        )
    }
    return load_settings(flags)


def client_url(address: tuple[str, int]) -> str:
    """http:// URL a local client uses to reach a listen address (a wildcard bind means loopback)."""
    host, port = address
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command != "proxy":  # the proxy logs through mitmproxy's own handler
        logging.basicConfig(
            level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
    try:
        if args.command == "demo-upstream":
            from . import demo

            demo.serve(args.listen)
            return 0
        settings = settings_from(args)
        if args.command == "proxy":
            from .runner import run_proxy

            run_proxy(settings, verbose=args.verbose)
            return 0
        if args.command == "ui":
            return run_ui(settings, verbose=args.verbose)
        if args.command == "replay":
            return run_replay(args, settings)
        if args.command == "export":
            return run_export(args, settings)
        if args.command == "import":
            return run_import(args, settings)
        if args.command == "status":
            return run_status(settings)
        if args.command == "prune":
            return run_prune(args, settings)
        if args.command == "call":
            return run_call(args, settings)
        return run_up(args, argv, settings)
    except (ConfigError, StorageError) as e:
        return fail(str(e))
    except KeyboardInterrupt:
        return 130


def header_pairs(specs: Sequence[str], *, flag: str) -> list[tuple[str, str]]:
    """`NAME:VALUE` flags -> (name, value) pairs; ValueError names a malformed one."""
    pairs = []
    for spec in specs:
        name, sep, value = spec.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"{flag} wants NAME:VALUE, not {spec!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def data_flag(value: str) -> bytes:
    """`--data TEXT` or `--data @FILE` -> the bytes; ValueError when the file cannot be read."""
    if not value.startswith("@"):
        return value.encode()
    try:
        return Path(value[1:]).read_bytes()
    except OSError as e:
        raise ValueError(f"--data {value}: {e.strerror or e}") from None


def call_request(args: argparse.Namespace, settings: Settings) -> tuple[str, list[tuple[str, str]], bytes | None]:
    """(URL, headers, body) of `passageway call`; ValueError names a bad argument."""
    from passageway import ServiceURLError, parse_service_url
    from passageway.service_url import is_service_url

    url = args.url
    if is_service_url(url) or "://" not in url:  # a bare name/path gets parse_service_url's message
        try:
            name = parse_service_url(url).name
        except ServiceURLError as e:
            raise ValueError(str(e)) from None
        if settings.services and name not in settings.services:
            realm = f" in realm {settings.realm!r}" if settings.realm else ""
            raise ValueError(f"unknown service {name!r}{realm}: known are {', '.join(sorted(settings.services))}")
    elif not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"URL must be service://NAME/path or http(s)://..., not {url!r}")
    headers = header_pairs(args.header, flag="--header")
    body = data_flag(args.data) if args.data is not None else None
    if args.attempts < 1:
        raise ValueError(f"--attempts must be at least 1, not {args.attempts}")
    return url, headers, body


def run_call(args: argparse.Namespace, settings: Settings) -> int:
    """One request through the gateway with the smart client: the body on stdout, the status,
    time and trace link on stderr. Exit 0 for a 1xx-3xx answer, 1 for 4xx/5xx or no answer."""
    import httpx

    from passageway import Client, RetryPolicy, start_trace

    try:
        url, headers, body = call_request(args, settings)
    except ValueError as e:
        return fail(str(e))
    gateway = client_url(settings.listen)
    retry = RetryPolicy(attempts=args.attempts)
    started = time.monotonic()
    try:
        with start_trace() as trace, Client(gateway=gateway, service=args.caller, retry=retry, timeout=args.timeout) as client:
            response = client.request(args.method.upper(), url, headers=headers, content=body)
    except httpx.HTTPError as e:
        return fail(f"no answer from {url} through {gateway}: {e or type(e).__name__}", 1)
    elapsed = (time.monotonic() - started) * 1000
    if args.include:
        print(f"HTTP/1.1 {response.status_code} {response.reason_phrase}")
        for name, value in response.headers.multi_items():
            print(f"{name}: {value}")
        print()
    sys.stdout.flush()
    sys.stdout.buffer.write(response.content)
    sys.stdout.flush()
    trace_link = f"{client_url(settings.ui)}/traces/{trace.trace_id}"
    print(f"{response.status_code} {response.reason_phrase} in {elapsed:.0f} ms; trace: {trace_link}", file=sys.stderr)
    return 0 if response.status_code < 400 else 1


def replay_request(args: argparse.Namespace) -> dict:
    """The replay API's JSON body from the command's flags; ValueError names a bad flag."""
    edits: dict = {}
    if args.to:
        edits["target"] = args.to
    if args.method:
        edits["method"] = args.method
    if args.path:
        edits["path"] = args.path
    headers = header_pairs(args.set_header, flag="--set-header")
    if headers:
        edits["set_headers"] = [list(pair) for pair in headers]
    if args.remove_header:
        edits["remove_headers"] = args.remove_header
    if args.data is not None:
        if args.data.startswith("@"):
            edits["body_base64"] = base64.b64encode(data_flag(args.data)).decode("ascii")
        else:
            edits["body"] = args.data
    return edits


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    if (args.id is None) == (args.query is None):
        return fail("replay wants an exchange ID or --query SEARCH (one of them)")
    try:
        edits = replay_request(args)
    except ValueError as e:
        return fail(str(e))
    ui = client_url(settings.ui)
    if args.query is not None:
        return run_bulk_replay(args, ui, edits, inspector_auth(settings))
    try:
        response = httpx.post(
            f"{ui}/api/exchanges/{args.id}/replay", json=edits, headers=inspector_auth(settings),
            timeout=settings.upstream_timeout + 30,
        )  # fmt: skip
    except httpx.HTTPError as e:
        return fail(f"cannot reach the inspector at {ui} ({e}); is `passageway ui` (or `up`) running?")
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 201:
        return fail(f"replay of #{args.id} failed ({response.status_code}): {answer.get('detail') or response.text[:200]}", 1)
    print(f"#{args.id} replayed as #{answer['id']}: status {answer['status']}  {ui}/?id={answer['id']}")
    return 0


def inspector_auth(settings: Settings) -> dict[str, str]:
    """The inspector's token as a bearer header, when one is configured (ui_token)."""
    return {"Authorization": f"Bearer {settings.ui_token}"} if settings.ui_token else {}


def run_bulk_replay(args: argparse.Namespace, ui: str, edits: dict, auth: dict[str, str]) -> int:
    """Start a replay job on the inspector, print its progress until it ends; Ctrl-C cancels it."""
    import httpx

    job = {"q": args.query, "rate": args.rate, "concurrency": args.concurrency, **edits}
    with httpx.Client(base_url=ui, timeout=30, headers=auth) as client:
        try:
            response = client.post("/api/replays", json=job)
        except httpx.HTTPError as e:
            return fail(f"cannot reach the inspector at {ui} ({e}); is `passageway ui` (or `up`) running?")
        answer = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 202:
            detail = answer.get("detail") or response.text[:200]
            return fail(f"bulk replay refused ({response.status_code}): {detail}", 1)
        job_id = answer["id"]
        print(f"replaying {answer['total']} exchange(s) matching {args.query!r} at {args.rate:g}/s (job {job_id})")
        try:
            while answer["state"] == "running":
                time.sleep(0.5)
                answer = client.get(f"/api/replays/{job_id}").json()
                print(f"  {answer['sent'] + answer['failed']}/{answer['total']} done, {answer['failed']} failed", flush=True)
        except KeyboardInterrupt:
            answer = client.delete(f"/api/replays/{job_id}").json()
            print(f"cancelled: sent {answer['sent']}, failed {answer['failed']}, {answer['differ']} differ")
            return 130
        except httpx.HTTPError as e:
            return fail(f"lost the inspector at {ui} while job {job_id} ran ({e})", 1)
    print(
        f"{answer['state']}: sent {answer['sent']}, failed {answer['failed']}, {answer['differ']} response(s) differ "
        f"from their originals, in {answer['elapsed']:.1f} s"
    )
    return 0 if answer["failed"] == 0 else 1


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from storage.exports import catch_up_search_index, har_of, search_ids
    from storage.har import har_text
    from storage.redaction import rules_from_config
    from storage.search import QueryError, parse_query
    from storage.store import open_store

    try:
        query = parse_query(args.query) if args.query.strip() else None
    except QueryError as e:
        return fail(f"--query: {e}")
    rules = None if args.raw else rules_from_config(settings.redact_add, settings.redact_remove)
    store = open_store(settings.db_url)
    try:
        # Free text and header: terms read the search index, which only a running inspector keeps
        # current: catch it up first, so what was just captured or imported is found.
        behind = catch_up_search_index(store) if query is not None and query.needs_index else 0
        log = har_of(store, search_ids(store, query), rules=rules)
    finally:
        store.close()
    if behind:
        note = f"{behind} exchange(s) are not indexed for search yet; --query may miss them"
        print(f"{PROG}: note: {note}", file=sys.stderr)
    data = har_text(log).encode("utf-8")  # encoded before the file is opened: an error never leaves it empty
    count = len(log["log"]["entries"])
    if args.har == "-":
        sys.stdout.buffer.write(data + b"\n")
        sys.stdout.flush()
    else:
        try:
            Path(args.har).write_bytes(data)
        except OSError as e:
            return fail(f"--har {args.har}: {e.strerror or e}")
        print(f"exported {count} exchange(s) to {args.har} ({'raw: secrets included' if args.raw else 'redacted'})")
    return 0


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from storage.exports import import_records
    from storage.store import open_store

    from .importing import UnreadableFile, read_records

    try:
        records, skipped = read_records(Path(args.file), proxy_name=settings.proxy_name, body_cap=settings.body_cap)
    except UnreadableFile as e:
        return fail(str(e))
    if not records and skipped:
        return fail(f"{args.file}: nothing to import ({skipped[0]}{'; ...' if len(skipped) > 1 else ''})")
    store = open_store(settings.db_url)
    try:
        if settings.redact_at_capture:  # "before anything is written" holds for imports too
            from storage.redaction import redact_record, rules_from_config
            from storage.shares import redaction_key

            rules, key = rules_from_config(settings.redact_add, settings.redact_remove), redaction_key(store)
            records = [redact_record(record, rules, key) for record in records]
        new = len(import_records(store, records))
    finally:
        store.close()
    already = f", {len(records) - new} already stored" if new < len(records) else ""
    print(f"imported {new} exchange(s) from {args.file}{already}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    for message in skipped[:20]:
        print(f"  skipped {message}", file=sys.stderr)
    return 0


def run_status(settings: Settings) -> int:
    """What /api/metrics shows, for a terminal: one line per proxy that ever wrote to this store,
    and one per registered service with its health."""
    from storage.queries import index_backlog, proxy_stats
    from storage.services import service_overview
    from storage.store import open_store

    store = open_store(settings.db_url)
    try:
        proxies, backlog = proxy_stats(store), index_backlog(store)
        services = service_overview(store, history=1)
    finally:
        store.close()
    print(f"store: {store.display_url}")
    if not proxies:
        print("no proxy has reported to this store yet")
    for p in proxies:
        if p["stopped_at"]:
            state = f"stopped at {p['stopped_at']}"
        else:
            state = "up" if p["age_seconds"] < 30 else f"silent for {p['age_seconds']:.0f} s"
        mean = p["write_seconds"] / p["write_batches"] * 1000 if p["write_batches"] else 0.0
        print(
            f"proxy {p['proxy']}: {state}; captured {p['submitted']}, written {p['written']}, "
            f"dropped {p['dropped']}, lost {p['lost']}, queue {p['queue_depth']}, "
            f"spooled {p['spooled']} ({p['spool_bytes']} bytes), "
            f"database errors {p['failed_batches']}, mean batch write {mean:.1f} ms"
            + (f"; last error: {p['last_error']}" if p["last_error"] else "")
        )
    for service in services:
        health = service["health"]
        realm = f" ({service['realm']})" if service["realm"] else ""
        detail = f", {health['latency_ms']:.0f} ms" if health["latency_ms"] is not None else ""
        if health["error"] and health["state"] == "down":
            detail += f": {health['error']}"
        since = f" since {health['since']}" if health["since"] else ""
        print(f"service {service['name']}{realm}: {health['state']}{since}{detail}")
    print(f"search index backlog: {backlog} exchange(s)")
    return 0


def run_prune(args: argparse.Namespace, settings: Settings) -> int:
    """One retention pass now, with the limits from the configuration; one line of what went."""
    from sqlalchemy.exc import SQLAlchemyError

    from storage.retention import RetentionPolicy, prune
    from storage.store import one_line, open_store

    policy = RetentionPolicy(
        max_age=settings.retention_max_age,
        max_exchanges=settings.retention_max_exchanges,
        max_body_bytes=settings.retention_max_body_bytes,
    )
    if not policy.enabled:
        print("no retention limit is set (retention_max_age, retention_max_exchanges, retention_max_body_bytes): "
              "everything is kept")  # fmt: skip
        return 0
    store = open_store(settings.db_url)
    try:
        pruned = prune(store, policy, dry_run=args.dry_run)
    except SQLAlchemyError as e:
        return fail(f"pruning {store.display_url} failed: {one_line(e)}")
    finally:
        store.close()
    print(f"{pruned.summary(dry_run=args.dry_run)} [{policy.describe()}]")
    return 0


def run_ui(settings: Settings, *, verbose: bool) -> int:
    from inspector_ui.server import InspectorError, serve
    from inspector_ui.settings import InspectorSettings

    host, port = settings.ui
    token = inspector_token(settings)
    if token and not settings.ui_token:
        print(f"inspector token (made now): open http://{format_address(shown_host(host), port)}/?token={token}", flush=True)
    inspector = InspectorSettings(
        db_url=settings.db_url,
        host=host,
        port=port,
        log_level="info" if verbose else "warning",
        replay_gateway=settings.replay_via or client_url(settings.listen),
        replay_forward_proxy=client_url((settings.listen[0], settings.forward_port)) if settings.forward_port else None,
        replay_services={name: service.upstream.url for name, service in settings.services.items()},
        replay_ca=str(ca) if (ca := settings.certs_dir / "mitmproxy-ca-cert.pem").is_file() else None,
        allow_any_replay_target=settings.allow_any_replay_target,
        replay_timeout=settings.upstream_timeout + 5,
        redact_add=settings.redact_add,
        redact_remove=settings.redact_remove,
        token=token,
        retention_max_age=settings.retention_max_age,
        retention_max_exchanges=settings.retention_max_exchanges,
        retention_max_body_bytes=settings.retention_max_body_bytes,
    )
    try:
        serve(inspector)
    except InspectorError as e:
        return fail(f"inspector: {e}")
    return 0


# What `up` keeps from each child. Both get --ui: the proxy must know the inspector it never
# forwards to. Both get --upstream-timeout: the inspector's replays wait for the proxy's answer.
PROXY_ONLY_FLAGS = {"--body-cap", "--proxy-name", "--upstream-ca", "--spool-dir", "--spool-max-bytes", "--tracing"}
PROXY_ONLY_SWITCHES = {"--upstream-insecure"}
UI_ONLY_FLAGS = {"--replay-via"}
UI_ONLY_SWITCHES = {"--allow-any-replay-target"}


def child_argv(command: str, argv: list[str], *, drop: set[str]) -> list[str]:
    """The `up` arguments re-used for one child: `up`, `--demo` and the other side's flags removed."""
    out: list[str] = [sys.executable, "-m", "proxy", command]
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in drop:
            skip = "=" not in arg and name not in PROXY_ONLY_SWITCHES | UI_ONLY_SWITCHES
            continue
        if arg not in ("up", "--demo"):
            out.append(arg)
    return out


def inspector_token(settings: Settings) -> str | None:
    """The configured token, or a new one when the inspector listens beyond loopback."""
    if settings.ui_token or not listens_beyond_loopback(settings.ui[0]):
        return settings.ui_token
    return secrets.token_urlsafe(32)


def shown_host(host: str) -> str:
    """The host to print for a listen address: this machine's name for a wildcard bind."""
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host


def listens_beyond_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a child of `up` that only `up` stops.

    Its own process group keeps a terminal's Ctrl-C from reaching it twice
    (directly and forwarded); on Linux it also dies when `up` is killed outright.
    """
    if not sys.platform.startswith("linux"):
        return subprocess.Popen(args, process_group=0, env=env)

    def die_with_parent() -> None:
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)

    return subprocess.Popen(args, process_group=0, preexec_fn=die_with_parent, env=env)


def run_up(args: argparse.Namespace, argv: list[str], settings: Settings) -> int:
    """Start the proxy and the inspector; stop both when either stops or on Ctrl-C."""
    # Fail here, in one line, on what a child would otherwise fail on.
    from storage.store import open_store

    from .runner import check_bindable, listen_addresses

    addresses = [*listen_addresses(settings), ("inspector", settings.ui)]
    if args.demo:
        addresses.append(("demo upstream", DEMO_ADDRESS))
    for what, address in addresses:
        check_bindable(what, address)
    store = open_store(settings.db_url)
    database = store.display_url  # password masked
    store.close()

    children: dict[str, subprocess.Popen] = {}
    if args.demo:
        children["demo upstream"] = spawn(
            [sys.executable, "-m", "proxy", "demo-upstream", "--listen", format_address(*DEMO_ADDRESS)]
        )
    children["proxy"] = spawn(child_argv("proxy", argv, drop=UI_ONLY_FLAGS | UI_ONLY_SWITCHES))
    token = inspector_token(settings)
    children["inspector"] = spawn(
        child_argv("ui", argv, drop=PROXY_ONLY_FLAGS | PROXY_ONLY_SWITCHES),
        env={**os.environ, "PASSAGEWAY_UI_TOKEN": token} if token else None,
    )
    settings = dataclasses.replace(settings, ui_token=token)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    waiting_for = [settings.listen, settings.ui]
    exit_code = 0
    while not stopping:
        if waiting_for and accepts_connections(waiting_for[0]):
            waiting_for.pop(0)
            if not waiting_for:
                print_banner(settings, database=database, demo=args.demo)
        for name, child in children.items():
            if child.poll() is not None:
                if child.returncode != 0:
                    print(f"{PROG}: {name} exited with status {child.returncode}; stopping", file=sys.stderr)
                    exit_code = 1
                stopping = True
        time.sleep(0.1)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return exit_code


def accepts_connections(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=0.2).close()
    except OSError:
        return False
    return True


def print_banner(settings: Settings, *, database: str, demo: bool) -> None:
    gateway = format_address(*settings.listen)
    lines = [
        f"Passageway is up. Database: {database}",
        f"  inspector:  http://{format_address(shown_host(settings.ui[0]), settings.ui[1])}/"
        + (f"?token={settings.ui_token}  (the token is needed from beyond this machine)" if settings.ui_token else ""),
        f"  gateway:    http://{gateway}/SERVICE/path",
    ]
    for service in settings.services.values():
        where = f"http://{gateway}/{service.name}/"
        if service.listen:
            where += f"  and  http://{format_address(*service.listen)}/"
        lines.append(f"    {service.name:<12} {where}  ->  {service.upstream.url}")
    if settings.forward_port:
        lines.append(f"  forward proxy: http://{format_address(settings.listen[0], settings.forward_port)}")
    if demo:
        lines.append(f"Try:  curl http://{gateway}/demo/users/42")
    lines.append("Ctrl-C stops both.")
    print("\n".join(lines), flush=True)
