"""Passageway's own HTTP headers: one definition for the smart client, the proxy and the inspector."""

from __future__ import annotations

CALLER_HEADER = "X-Passageway-Caller"
"""The calling service's name, sent by the smart client when it knows it."""
ATTEMPT_HEADER = "X-Passageway-Attempt"
"""Which try of one call a request is (1, 2, ...), sent by the smart client."""
REPLAY_HEADER = "X-Passageway-Replay"
"""`<exchange id>; <nonce>` on a replay the inspector sends; the proxy takes it off and records replay_of."""
TEST_HEADER = "X-Passageway-Test"
"""The API test (radar) a request belongs to; the proxy takes it off and records test_name."""
ERROR_HEADER = "X-Passageway-Error"
"""On an answer the proxy gives itself: why (no_route, refused, timeout...)."""
FAULT_HEADER = "X-Passageway-Fault"
"""On an answer a fault rule made (proxy.faults): the rule's id and effect, e.g. `#3 status 503`."""
MOCK_HEADER = "X-Passageway-Mock"
"""On an answer a simulated service's recordings gave (proxy.mocks): which recording (`#1234`,
`har:entry 7`), or `no-match`."""
