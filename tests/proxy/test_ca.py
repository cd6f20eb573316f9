"""proxy.ca: the CA made once, before a proxy's workers start."""

from __future__ import annotations

from mitmproxy.certs import CertStore

from proxy.ca import CA_BASENAME, CA_KEY_SIZE, ca_file, ensure_ca


def test_a_missing_ca_is_made_once_and_then_kept(tmp_path):
    certs = tmp_path / "new" / "certs"
    assert ensure_ca(certs) is True
    made = ca_file(certs).read_bytes()
    assert (certs / "mitmproxy-ca-cert.pem").exists()
    assert ensure_ca(certs) is False
    assert ca_file(certs).read_bytes() == made  # what mitmproxy loads is the one made here
    store = CertStore.from_store(certs, CA_BASENAME, CA_KEY_SIZE)
    assert store.default_ca.cn == CA_BASENAME
