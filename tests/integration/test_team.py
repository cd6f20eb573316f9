"""A team's deployment: several proxies feed one PostgreSQL store; two inspectors each stream
all of it live, every exchange says which proxy captured it, and `passageway status` lists
every proxy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import websockets

from tests.support import free_port, fresh_postgres_database, require_or_skip_postgres, running_upstream, start_process

PASSAGEWAY = [sys.executable, "-m", "cli"]
PROXIES = ("edge-a", "edge-b", "edge-c")
PER_PROXY = 30


async def watch(uri: str, want: int, seen: list[dict]) -> None:
    async with websockets.connect(uri, compression=None, ping_interval=None) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        seen.append({})  # connected
        while len(seen) - 1 < want:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            seen.append(message["data"])


async def traffic(gateways: dict[str, str]) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(client.get(f"{gateway}/up/echo?via={name}&n={n}") for name, gateway in gateways.items()
              for n in range(PER_PROXY))  # fmt: skip
        )
    return [r.status_code for r in responses]


def test_three_proxies_one_store_two_inspectors_see_everything_live(tmp_path) -> None:
    require_or_skip_postgres()
    with fresh_postgres_database("passageway_team") as url, running_upstream() as upstream:
        ports = {name: free_port() for name in PROXIES}
        ui_ports = (free_port(), free_port())
        proxies = [
            start_process([*PASSAGEWAY, "proxy", "--db", url, "--listen", f"127.0.0.1:{ports[name]}",
                           "--route", f"up={upstream.url}", "--proxy-name", name,
                           "--certs-dir", str(tmp_path / name)],
                          port=ports[name], name=f"proxy {name}", timeout=30)  # fmt: skip
            for name in PROXIES
        ]
        inspectors = [
            start_process([*PASSAGEWAY, "ui", "--db", url, "--ui", f"127.0.0.1:{port}",
                           "--certs-dir", str(tmp_path / "ui")], port=port, name="passageway ui", timeout=30)  # fmt: skip
            for port in ui_ports
        ]
        try:
            want = len(PROXIES) * PER_PROXY
            seen: list[list[dict]] = [[], []]

            async def scenario() -> list[int]:
                watchers = [asyncio.create_task(watch(f"ws://127.0.0.1:{port}/api/stream", want, into))
                            for port, into in zip(ui_ports, seen, strict=True)]  # fmt: skip
                while not all(into for into in seen):
                    await asyncio.sleep(0.05)
                statuses = await traffic({name: f"http://127.0.0.1:{port}" for name, port in ports.items()})
                await asyncio.wait_for(asyncio.gather(*watchers), timeout=60)
                return statuses

            statuses = asyncio.run(scenario())
            for proxy in proxies:
                proxy.stop()
            status = subprocess.run([*PASSAGEWAY, "status", "--db", url], capture_output=True, text=True, timeout=30)
        finally:
            for process in [*inspectors, *proxies]:
                process.stop()
    assert statuses == [200] * want
    for into in seen:
        exchanges = into[1:]
        assert len({e["id"] for e in exchanges}) == want
        by_proxy = {name: sorted(e["query"] for e in exchanges if e["proxy"] == name) for name in PROXIES}
        assert by_proxy == {name: sorted(f"via={name}&n={n}" for n in range(PER_PROXY)) for name in PROXIES}
    assert status.returncode == 0, status.stderr
    for name in PROXIES:
        assert f"proxy {name}: stopped at" in status.stdout and f"captured {PER_PROXY}, written {PER_PROXY}, dropped 0, lost 0" in status.stdout
