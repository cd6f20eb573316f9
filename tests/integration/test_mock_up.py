"""`passageway up --mock NAME=FILE` with no real dependency at all (issue 18 §3): HAR files written
by other tools (tests/data/har/real: Insomnia and Chrome DevTools, MIT-licensed, from mitmproxy's
repository; tests/data/har/chrome.har) answer through the gateway, given each way the setting
can be given in one run: the flag, PASSAGEWAY_MOCKS, and `[services.NAME] mock` in
passageway.toml (its path relative to the file). The inspector lists them and finds the answers
with `is:mock`; a bad file stops `up` in one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import free_port, start_process, wait_for

HAR = Path(__file__).resolve().parents[1] / "data" / "har"
PASSAGEWAY = [sys.executable, "-m", "cli"]


def test_up_answers_from_har_files_with_no_dependency(tmp_path: Path) -> None:
    (tmp_path / "mocks").mkdir()
    shutil.copy(HAR / "real" / "insomnia.har", tmp_path / "mocks" / "insomnia.har")
    (tmp_path / "mocks" / "passageway.toml").write_text('[services.mitm]\nmock = "insomnia.har"\n')
    gateway, ui = free_port(), free_port()
    args = [*PASSAGEWAY, "up", "--config", str(tmp_path / "mocks" / "passageway.toml"),
            "--db", f"sqlite:///{tmp_path}/up.db", "--listen", f"127.0.0.1:{gateway}", "--ui", f"127.0.0.1:{ui}",
            "--certs-dir", str(tmp_path / "certs"), "--mock", f"metrics={HAR / 'real' / 'postdata.har'}"]  # fmt: skip
    env = {**os.environ, "PASSAGEWAY_MOCKS": f"cart={HAR / 'chrome.har'}"}
    with start_process(args, port=gateway, name="passageway up", timeout=30, cwd=tmp_path, env=env) as up:
        up.wait_for_port(ui)
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway}", timeout=10) as http:
            page = http.get("/mitm/")
            insomnia = json.loads((HAR / "real" / "insomnia.har").read_text())["log"]["entries"][0]["response"]
            assert page.status_code == 200 and page.text == insomnia["content"]["text"]
            assert page.headers["X-Passageway-Mock"] == "har:entry 0"
            post = json.loads((HAR / "real" / "postdata.har").read_text())["log"]["entries"][0]["request"]
            sent = http.post("/metrics/metrics", content=post["postData"]["text"].encode(),
                             headers={"Content-Type": post["postData"]["mimeType"]})  # fmt: skip
            assert sent.status_code == 200 and sent.headers["X-Passageway-Mock"] == "har:entry 0"
            # Chrome's cart: create then read, query parameters in another order; the host is never compared.
            cart = http.get("/cart/v1/cart?items=3&currency=EUR")
            assert cart.json() == {"items": [{"sku": "A-1", "qty": 3}], "total": "€42"}
            added = http.post("/cart/v1/cart/items", json={"qty": 1, "sku": "B-2"})
            assert added.status_code == 201 and added.json() == {"id": 9} and added.headers["X-Passageway-Mock"] == "har:entry 1"
            miss = http.get("/cart/v2/nothing")
            assert miss.status_code == 404 and miss.json()["error"] == "no_mock_match"

        with httpx.Client(base_url=f"http://127.0.0.1:{ui}", timeout=10) as api:
            listed = {m["service"]: m for m in api.get("/api/mocks").json()["mocks"]}
            assert set(listed) == {"mitm", "metrics", "cart"} and {m["origin"] for m in listed.values()} == {"config"}
            assert listed["cart"]["har_entries"] == 3  # the failed fourth request has no answer to give
            found = wait_for(lambda: (d if len(d := api.get("/api/exchanges", params={"q": "is:mock"}).json()["data"]) >= 5 else None),
                             timeout=15, message=up.describe)  # fmt: skip
            assert {e["mock"] for e in found} == {"har:entry 0", "har:entry 1", "no-match"}
        up.proc.send_signal(signal.SIGINT)
        assert up.wait_exit(timeout=15) == 0


def test_a_bad_mock_file_stops_up_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "not.har").write_text("{}")
    for mock, says in ((f"x={tmp_path / 'missing.har'}", "no such file"), (f"x={tmp_path / 'not.har'}", "not a HAR log")):
        done = subprocess.run(
            [*PASSAGEWAY, "up", "--db", f"sqlite:///{tmp_path}/up.db", "--listen", f"127.0.0.1:{free_port()}",
             "--ui", f"127.0.0.1:{free_port()}", "--certs-dir", str(tmp_path / "certs"), "--mock", mock],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode != 0 and says in done.stderr, done
        assert "Traceback" not in done.stderr
