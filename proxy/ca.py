"""mitmproxy's CA in the certs directory: made once, by the supervisor, before a proxy's workers start.

Each worker's mitmproxy makes the CA when it finds none. Workers starting together on a new
certs directory would each make their own, each serve with its own, and the files would hold
only the last one written: a client trusting them would fail on every connection the others
accept. Light on purpose: mitmproxy is imported only to make a CA that is missing.
"""

from __future__ import annotations

from pathlib import Path

CA_BASENAME = "mitmproxy"
"""mitmproxy.options.CONF_BASENAME: the CA's files are `<certs_dir>/mitmproxy-ca.pem` and so on."""
CA_KEY_SIZE = 2048
"""mitmproxy's default `key_size`, which Passageway does not change."""


def ca_file(certs_dir: Path) -> Path:
    return certs_dir / f"{CA_BASENAME}-ca.pem"


def ensure_ca(certs_dir: Path) -> bool:
    """Make the CA in `certs_dir` (and the directory) when it has none; True when it was made.
    OSError when the directory cannot be made or written."""
    if ca_file(certs_dir).exists():
        return False
    from mitmproxy.certs import CertStore

    CertStore.create_store(certs_dir, CA_BASENAME, CA_KEY_SIZE)
    return True
