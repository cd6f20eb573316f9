"""`passageway registry list` and `passageway registry forget`: the services that register themselves.

Both talk to the running inspector (`--ui`, with its token when one is set), as `replay` does:
`list` reads GET /api/services (each self-registered service with its instances, source,
declared dependencies and any conflict with a configured service); `forget` posts to
POST /api/registry/forget, which removes one instance, or a whole service and its stale proxy
registrations. A mistake or a refusal is one line on stderr and a non-zero exit: 2 for a usage
mistake, 1 when the inspector refuses or the name is unknown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from .commands import fail, inspector_auth
from .settings import Settings, client_url

TIMEOUT = 30.0


class InspectorError(Exception):
    """The inspector could not be reached or refused; the message is one line, `code` the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the services as JSON (the API's fields)")


def add_forget_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the service")
    parser.add_argument("instance", nargs="?", metavar="INSTANCE", help="only this instance (default: every one)")


def _call(settings: Settings, method: str, path: str, **how: Any) -> Any:
    """One request to the inspector; its JSON answer, or InspectorError with the server's detail."""
    import httpx

    ui = client_url(settings.ui)
    try:
        response = httpx.request(method, f"{ui}{path}", headers=inspector_auth(settings), timeout=TIMEOUT, **how)
    except httpx.HTTPError as e:
        raise InspectorError(f"cannot reach the inspector at {ui} ({e}); is `passageway ui` (or `up`) running?", 2) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.is_success and answer is not None:
        return answer
    detail = answer.get("detail") if isinstance(answer, dict) else None
    if isinstance(detail, list):  # a validation error: [{loc, msg}, ...]
        detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
    text = " ".join(str(detail or response.text[:200] or response.reason_phrase).split())
    raise InspectorError(f"{text} (HTTP {response.status_code})", 1 if response.status_code in (401, 403, 404) else 2)


def _age(iso: str | None, now: dt.datetime) -> str:
    if not iso:
        return "never"
    seconds = max(0.0, (now - dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago" if seconds < 172800 else f"{seconds / 86400:.0f} d ago"


def _ready(instance: dict[str, Any]) -> str:
    return {True: "ready", False: "not ready", None: "-"}[instance["ready"]]


def registry_lines(services: list[dict[str, Any]], now: dt.datetime) -> list[str]:
    """The services that registered themselves, for a terminal: one line per service, one per instance."""
    lines = []
    for service in services:
        realm = f" ({service['realm']})" if service["realm"] else ""
        needs = f"; depends on {', '.join(service['depends_on'])}" if service["depends_on"] else ""
        source = "configured and registered" if service["source"] == "both" else "registered"
        lines.append(f"{service['name']}{realm}: {service['health']['state']}, {source}{needs}")
        for instance in service["instances"]:
            version = f" v{instance['version']}" if instance["version"] else ""
            lines.append(f"  {instance['instance']}  {instance['state']}, {_ready(instance)}{version}  {instance['url']}"
                         f"  heartbeat {_age(instance['heartbeat_at'], now)}")  # fmt: skip
        if service["conflict"]:
            lines.append(f"  conflict: {service['conflict']}")
    return lines


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    params = {"realm": settings.realm} if settings.realm is not None else {}
    try:
        answer = _call(settings, "GET", "/api/services", params=params)
    except InspectorError as e:
        return fail(str(e), e.code)
    registered = [service for service in answer["services"] if service.get("instances")]
    if args.json:
        fields = ("name", "realm", "source", "health", "depends_on", "conflict", "instances")
        json.dump({"services": [{key: s[key] for key in fields} for s in registered]}, sys.stdout, indent=2)
        print()
        return 0
    if not registered:
        where = f" in realm {settings.realm!r}" if settings.realm else ""
        print(f"no service has registered itself{where}")
        return 0
    print("\n".join(registry_lines(registered, dt.datetime.now(dt.UTC))))
    return 0


def run_forget(args: argparse.Namespace, settings: Settings) -> int:
    what: dict[str, Any] = {"name": args.name}
    if args.instance is not None:
        what["instance"] = args.instance
    if settings.realm is not None:
        what["realm"] = settings.realm
    try:
        answer = _call(settings, "POST", "/api/registry/forget", json=what)
    except InspectorError as e:
        return fail(str(e), e.code)
    where = f" in realm {settings.realm!r}" if settings.realm else ""
    if args.instance is not None:
        print(f"forgot instance {args.instance!r} of {args.name!r}{where}")
    else:
        stale = answer["stale_proxy_registrations"]
        proxies = f" and {stale} stale proxy registration(s)" if stale else ""
        print(f"forgot {args.name!r}{where}: {answer['forgotten']} instance(s){proxies}")
    return 0
