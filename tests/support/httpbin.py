"""A real echoing service: httpbin (the PyPI package) served by werkzeug on loopback, in a thread.

httpbin's /anything returns what it was sent (args, form, files, json, the raw body as a
JSON string in "data", every header, the full URL); /cookies/set, /redirect-to and
/basic-auth send secrets back in Set-Cookie, Location and the body. It is the stranger's
echo service that redaction has to survive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server


@contextmanager
def running_httpbin() -> Iterator[str]:
    """httpbin at http://127.0.0.1:PORT (yielded), stopped on exit."""
    import httpbin  # flask and friends load only for the tests that use it

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, httpbin.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="httpbin", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
