"""Test support shared by all test folders: real upstream servers, real PostgreSQL databases,
managed subprocesses. Import from here or from the submodules:

    from tests.support import running_upstream, fresh_postgres_database, ManagedProcess, wait_for

Storage helpers load SQLAlchemy and the models, so they are imported from their modules:
tests.support.records (make_record) and tests.support.stores (reset_store: empty a store).
"""

from .certs import TestCerts, generate_test_certs, shared_test_certs
from .postgres import (
    fresh_postgres_database,
    postgres_available,
    postgres_unavailable_reason,
    require_or_skip_postgres,
)
from .processes import ManagedProcess, WaitTimeout, free_port, port_is_open, start_process, wait_for
from .upstream import (
    COMPRESSED_JSON,
    DUP_HEADERS,
    FAULT_MODES,
    WS_GREETING,
    FaultServer,
    ReceivedRequest,
    RequestLog,
    Upstream,
    deterministic_bytes,
    encode_payload,
    running_fault_server,
    running_upstream,
)

__all__ = [
    "COMPRESSED_JSON", "DUP_HEADERS", "FAULT_MODES", "WS_GREETING", "FaultServer", "ManagedProcess",
    "ReceivedRequest", "RequestLog", "TestCerts", "Upstream", "WaitTimeout", "deterministic_bytes",
    "encode_payload", "free_port", "fresh_postgres_database", "generate_test_certs", "port_is_open",
    "postgres_available", "postgres_unavailable_reason", "require_or_skip_postgres", "running_fault_server",
    "running_upstream", "shared_test_certs", "start_process", "wait_for",
]
