"""`passageway test run`: Hurl files as API tests, for CI; `passageway test new`: a Hurl file made
from captured traffic.

`test run`: every file is parsed before anything runs (a parse error: `FILE:LINE:COL: message`, exit 2);
then the tests run in parallel (`--jobs`, threads: the work is waiting on I/O), each test's
steps in order, every request through the proxy so that it is captured and traced. One line per
test, one per failed assert (with the link to its exchange); exit 0 when all pass, 1 when any
fails, 2 for a usage mistake.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from .commands import PROG, fail
from .settings import SECRET_ENV_PREFIX, Settings, client_url

if TYPE_CHECKING:
    from radar.transport import Route

DEFAULT_JOBS = 4
CA_FILE = "mitmproxy-ca-cert.pem"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a .hurl file, or a directory (every *.hurl below it)")
    parser.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON (a list)")
    parser.add_argument(
        "--jobs", type=int, default=DEFAULT_JOBS, metavar="N", help=f"tests run at once (default {DEFAULT_JOBS})"
    )


def add_new_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-exchange", type=int, metavar="ID", help="a one-step test of this exchange")
    parser.add_argument(
        "--from-search", metavar="QUERY", help="a multi-step test of what this search matches, in capture order, chained"
    )
    parser.add_argument(
        "--limit", type=int, default=20, metavar="N", help="with --from-search: its newest N matches (default 20)"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="the .hurl file to write (default: standard output)")


def new_test(args: argparse.Namespace, settings: Settings) -> int:
    """Write the test made from --from-exchange or --from-search, then say on stderr which secrets
    it needs and how to run it."""
    from radar.from_store import exchange_details, suggested_filename, test_from_details
    from storage.exports import catch_up_search_index
    from storage.pure.search import QueryError, parse_query
    from storage.store import open_store

    if (args.from_exchange is None) == (args.from_search is None):
        return fail("give one of --from-exchange ID or --from-search QUERY")
    if args.from_exchange is not None and args.limit != 20:
        return fail("--limit goes with --from-search")
    try:
        needs_index = args.from_search is not None and parse_query(args.from_search).needs_index
    except QueryError as e:
        return fail(f"--from-search: {e}")
    store = open_store(settings.db)
    try:
        # Free text and header: terms read the search index, which only a running inspector keeps
        # current: catch it up first, so what was just captured is found (as `export` does).
        behind = catch_up_search_index(store) if needs_index else 0
        details = exchange_details(store, exchange_id=args.from_exchange, query=args.from_search, limit=args.limit)
        generated = test_from_details(
            store, details, services={name: service.upstream.url for name, service in settings.services.items()},
            rules=settings.redaction_rules(), decode_limit=settings.max_decoded_body,
        )  # fmt: skip
    except (LookupError, ValueError) as e:
        return fail(str(e))
    finally:
        store.close()
    if behind:
        print(f"{PROG}: note: {behind} exchange(s) are not indexed for search yet; --from-search may miss them",
              file=sys.stderr)  # fmt: skip
    if args.output:
        try:
            write_output(args.output, generated.text.encode("utf-8"))
        except OSError as e:
            return fail(f"-o {args.output}: cannot write: {e.strerror or e}")
        file, steps = args.output, len(details)
        print(f"wrote {file} ({steps} step{'' if steps == 1 else 's'})", file=sys.stderr)
    else:
        sys.stdout.write(generated.text)
        sys.stdout.flush()
        file = suggested_filename(details, search=args.from_search is not None)
    secrets = "".join(f" --secret {name}=..." for name in generated.secrets)
    if generated.secrets:
        names = ", ".join(generated.secrets)
        print(f"it needs secret{'s' if len(generated.secrets) > 1 else ''} {names}: pass --secret NAME=VALUE, or set "
              f"[secrets] or {SECRET_ENV_PREFIX}NAME", file=sys.stderr)  # fmt: skip
    saved = "" if args.output else f"save it as {file}, then "
    print(f"run it: {saved}{PROG} test run {file}{secrets}", file=sys.stderr)
    return 0


def hurl_files(paths: Iterable[str]) -> list[Path]:
    """The files named and the `*.hurl` under the directories named (sorted, once each);
    ValueError names a path that does not exist or a directory without tests."""
    found: dict[Path, None] = {}
    for text in paths:
        path = Path(text)
        if path.is_dir():
            below = sorted(item for item in path.rglob("*.hurl") if item.is_file())
            if not below:
                raise ValueError(f"{text}: no .hurl files in this directory")
            found.update(dict.fromkeys(below))
        elif path.is_file():
            found[path] = None
        else:
            raise ValueError(f"{text}: no such file or directory")
    return list(found)


def exchange_link(inspector: str, result: dict, step: dict) -> str:
    """Where the inspector shows a step's exchange: the run's trace searched, the exchange open
    when its id is known."""
    link = f"{inspector}/?q=trace:{result['trace_id']}"
    return f"{link}&id={step['exchange_id']}" if step.get("exchange_id") else link


def trace_link(inspector: str, result: dict) -> str:
    return f"{inspector}/traces/{result['trace_id']}"


def summary_lines(result: dict, inspector: str) -> list[str]:
    """`PASS name (N steps, T ms)` or `FAIL name (...)`, then a line per failed assert or step error."""
    steps = len(result["steps"])
    took = f"{result['duration_ms']:.0f} ms"
    if result["passed"]:
        return [f"PASS {result['test']} ({steps} step{'' if steps == 1 else 's'}, {took})"]
    failed = next((step for step in result["steps"] if step["error"] or not all(a["passed"] for a in step["asserts"])), None)
    where = f"step {failed['index'] + 1} failed" if failed else "did not run"
    lines = [f"FAIL {result['test']} ({where}, {took}) — trace: {trace_link(inspector, result)}"]
    if result["error"] and not any(step["error"] for step in result["steps"]):
        lines.append(f"  {result['file']}: {result['error']}")
    for step in result["steps"]:
        link = exchange_link(inspector, result, step)
        if step["error"]:
            lines.append(f"  {result['file']}:{step['line']}: {step['error']} — {link}")
        for item in step["asserts"]:
            if not item["passed"]:
                note = f" ({item['message']})" if item.get("message") else ""
                lines.append(
                    f"  {result['file']}:{item['line']}: {item['text']} — expected {item['expected']}, "
                    f"actual {item['actual']}{note} — {link}"
                )
    return lines


def run_tests(args: argparse.Namespace, settings: Settings) -> int:
    from radar.hurl import HurlError, parse_hurl
    from radar.junit import junit_xml
    from radar.runner import run_test
    from radar.transport import Connections, TestSession

    if args.jobs < 1:
        return fail(f"--jobs must be at least 1, not {args.jobs}")
    try:
        files = hurl_files(args.paths)
    except ValueError as e:
        return fail(str(e))
    parsed = []
    problems = []
    for path in files:
        try:
            parsed.append(parse_hurl(path.read_text(encoding="utf-8"), str(path)))
        except HurlError as e:
            problems.append(str(e))
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return fail(f"{len(problems)} of {len(files)} file{'s' if len(files) > 1 else ''} cannot run; nothing was run")

    route = route_of(settings)
    inspector = client_url(settings.ui)
    with Connections(route) as connections:

        def sessions(trace_id: str, name: str) -> TestSession:
            return TestSession(route, trace_id, name, connections=connections)

        def run(hurl) -> dict:
            return run_test(
                hurl, name=Path(hurl.filename).stem, sessions=sessions, variables=settings.variables,
                secrets=settings.secrets, realm=settings.realm, source="cli",
            )  # fmt: skip

        results = []
        with ThreadPoolExecutor(max_workers=args.jobs, thread_name_prefix="test") as pool:
            for result in pool.map(run, parsed):  # printed in file order, as soon as each is known
                results.append(result)
                print("\n".join(summary_lines(result, inspector)), flush=True)

    passed = sum(result["passed"] for result in results)
    print(f"{passed} of {len(results)} test{'s' if len(results) > 1 else ''} passed", flush=True)
    try:
        if args.json:
            write_output(args.json, (json.dumps(results, indent=2, ensure_ascii=False) + "\n").encode())
        if args.junit:
            write_output(args.junit, junit_xml(results, link=lambda result, step: exchange_link(inspector, result, step)))
    except OSError as e:
        return fail(f"cannot write {e.filename}: {e.strerror}")
    return 0 if passed == len(results) else 1


def write_output(name: str, data: bytes) -> None:
    """A report file, its directory made if need be (CI's `reports/junit.xml`)."""
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def route_of(settings: Settings) -> Route:
    """Where the tests' requests go: the gateway, and the forward proxy for plain URLs when one runs."""
    from radar.transport import Route

    forward = None
    if settings.forward_port is not None:
        forward = client_url((settings.listen[0], settings.forward_port))
    ca = settings.certs_dir / CA_FILE
    return Route(
        gateway=client_url(settings.listen),
        forward_proxy=forward,
        proxy_ca=ca if ca.is_file() else None,
        timeout=settings.upstream_timeout + 5,  # the proxy's own timeout answer comes first
    )
