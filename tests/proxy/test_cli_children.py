"""`passageway up` hands each child only the flags it understands."""

from __future__ import annotations

import pytest

from proxy.cli import PROXY_ONLY_FLAGS, PROXY_ONLY_SWITCHES, UI_ONLY_FLAGS, UI_ONLY_SWITCHES, build_parser, child_argv

UP = ["up", "--db", "sqlite:///x.db", "--spool-dir", "/s", "--spool-max-bytes=1GiB", "--body-cap", "2MiB",
      "--ui", "127.0.0.1:9", "--allow-any-replay-target", "--upstream-insecure", "--demo"]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "drop", "kept", "gone"),
    [
        ("proxy", UI_ONLY_FLAGS | UI_ONLY_SWITCHES, ["--spool-dir", "/s", "--spool-max-bytes=1GiB", "--body-cap"],
         ["--ui", "--allow-any-replay-target", "--demo"]),
        ("ui", PROXY_ONLY_FLAGS | PROXY_ONLY_SWITCHES, ["--ui", "127.0.0.1:9", "--allow-any-replay-target"],
         ["--spool-dir", "/s", "--spool-max-bytes=1GiB", "--body-cap", "2MiB", "--upstream-insecure"]),
    ],
)  # fmt: skip
def test_each_child_gets_its_own_flags(command, drop, kept, gone):
    argv = child_argv(command, UP, drop=drop)
    assert argv[3] == command and all(arg in argv for arg in kept) and not any(arg in argv for arg in gone)
    build_parser().parse_args(argv[3:])  # the child accepts every flag it is given
