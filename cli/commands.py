"""The commands that work on the store or talk to running processes: call, replay, export,
import, status, prune. Each takes its parsed arguments and the Settings, prints what it did,
and returns the exit status (a mistake: one line on stderr, 2)."""

from __future__ import annotations

import argparse
import base64
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .settings import Settings, client_url

PROG = "passageway"


def fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


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
    if getattr(args, "keep_trace", False):
        edits["keep_trace"] = True
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
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C cancels the job (cli.run)
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
    from storage.pure.har import har_text
    from storage.pure.search import QueryError, parse_query
    from storage.store import open_store

    try:
        query = parse_query(args.query) if args.query.strip() else None
    except QueryError as e:
        return fail(f"--query: {e}")
    rules = None if args.raw else settings.redaction_rules()
    store = open_store(settings.db)
    try:
        # Free text and header: terms read the search index, which only a running inspector keeps
        # current: catch it up first, so what was just captured or imported is found.
        behind = catch_up_search_index(store) if query is not None and query.needs_index else 0
        log = har_of(store, search_ids(store, query), rules=rules, decode_limit=settings.max_decoded_body)
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
    store = open_store(settings.db)
    try:
        if settings.redact_at_capture:  # "before anything is written" holds for imports too
            from storage.pure.redaction import redact_record
            from storage.shares import redaction_key

            rules, key = settings.redaction_rules(), redaction_key(store)
            records = [redact_record(record, rules, key, decode_limit=settings.max_decoded_body) for record in records]
        new = len(import_records(store, records))
    finally:
        store.close()
    already = f", {len(records) - new} already stored" if new < len(records) else ""
    print(f"imported {new} exchange(s) from {args.file}{already}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    for message in skipped[:20]:
        print(f"  skipped {message}", file=sys.stderr)
    return 0


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    """What /api/metrics shows, for a terminal: one line per proxy that ever wrote to this store,
    and one per service (configured or self-registered) with its health and its live instances."""
    from storage.queries import index_backlog, proxy_stats
    from storage.registry import instances, merge_overview
    from storage.spool_handoff import worker_of_row
    from storage.services import service_overview
    from storage.store import open_store

    store = open_store(settings.db)
    try:
        proxies, backlog = proxy_stats(store), index_backlog(store)
        services = merge_overview(service_overview(store, history=1), instances(store))
    finally:
        store.close()
    print(f"store: {store.display_url}")
    if not proxies:
        print("no proxy has reported to this store yet")
    workers: dict[str, list[tuple[int, dict]]] = {}
    for p in proxies:
        proxy, worker = worker_of_row(p["proxy"])
        if worker is not None:
            workers.setdefault(proxy, []).append((worker, p))
    for p in proxies:
        if worker_of_row(p["proxy"])[1] is not None:
            continue
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
        for worker, w in sorted(workers.get(p["proxy"], [])):
            print(f"  worker {worker}: captured {w['submitted']}, written {w['written']}, dropped {w['dropped']}, "
                  f"lost {w['lost']}, queue {w['queue_depth']}, spooled {w['spooled']} ({w['spool_bytes']} bytes)")
    for service in services:
        health = service["health"]
        realm = f" ({service['realm']})" if service["realm"] else ""
        detail = f", {health['latency_ms']:.0f} ms" if health["latency_ms"] is not None else ""
        if health["error"] and health["state"] == "down":
            detail += f": {health['error']}"
        since = f" since {health['since']}" if health["since"] else ""
        alive = [i for i in service["instances"] if i["state"] == "up"]
        if alive:
            detail += f"; {len(alive)} registered instance(s): " + ", ".join(f"{i['instance']} {i['url']}" for i in alive)
        if service["conflict"]:
            detail += f"; conflict: {service['conflict']}"
        print(f"service {service['name']}{realm}: {health['state']}{since}{detail}")
    print(f"search index backlog: {backlog} exchange(s)")
    return 0


def run_prune(args: argparse.Namespace, settings: Settings) -> int:
    """One retention pass now, with the limits from the configuration; one line of what went."""
    from storage.errors import StorageError
    from storage.retention import prune
    from storage.store import open_store

    policy = settings.retention_policy()
    if not policy.enabled:
        print("no retention limit is set (retention_max_age, retention_max_exchanges, retention_max_body_bytes): "
              "everything is kept")  # fmt: skip
        return 0
    store = open_store(settings.db)
    try:
        pruned = prune(store, policy, dry_run=args.dry_run)
    except StorageError as e:
        return fail(f"pruning {store.display_url} failed: {e}")
    finally:
        store.close()
    print(f"{pruned.summary(dry_run=args.dry_run)} [{policy.describe()}]")
    return 0
