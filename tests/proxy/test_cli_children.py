"""`passageway up` hands each child only the flags it understands, and the proxy its inspector."""

from __future__ import annotations

import argparse

import pytest

from proxy.cli import PROXY_ONLY_FLAGS, PROXY_ONLY_SWITCHES, UI_ONLY_FLAGS, UI_ONLY_SWITCHES, build_parser, child_argv

UP = ["up", "--db", "sqlite:///x.db", "--spool-dir", "/s", "--spool-max-bytes=1GiB", "--body-cap", "2MiB",
      "--ui", "127.0.0.1:9", "--allow-any-replay-target", "--upstream-insecure", "--demo", "--upstream-timeout", "7"]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "drop", "kept", "gone"),
    [
        ("proxy", UI_ONLY_FLAGS | UI_ONLY_SWITCHES,
         ["--spool-dir", "/s", "--spool-max-bytes=1GiB", "--body-cap", "--ui", "127.0.0.1:9", "--upstream-timeout"],
         ["--allow-any-replay-target", "--demo"]),
        ("ui", PROXY_ONLY_FLAGS | PROXY_ONLY_SWITCHES,
         ["--ui", "127.0.0.1:9", "--allow-any-replay-target", "--upstream-timeout", "7"],
         ["--spool-dir", "/s", "--spool-max-bytes=1GiB", "--body-cap", "2MiB", "--upstream-insecure"]),
    ],
)  # fmt: skip
def test_each_child_gets_its_own_flags(command, drop, kept, gone):
    argv = child_argv(command, UP, drop=drop)
    assert argv[3] == command and all(arg in argv for arg in kept) and not any(arg in argv for arg in gone)
    build_parser().parse_args(argv[3:])  # the child accepts every flag it is given


def every_up_flag() -> list[str]:
    """`up` with each of its options given once (a value where it takes one)."""
    parser = build_parser()
    up = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["up"]
    argv = ["up"]
    for action in up._actions:
        flag = max(action.option_strings, key=len, default=None)
        if flag is None or flag in ("--help",):
            continue
        if action.nargs == 0:
            argv.append(flag)
        else:
            argv += [flag, action.choices[0] if action.choices else "1"]
    return argv


@pytest.mark.parametrize(
    ("command", "drop"),
    [("proxy", UI_ONLY_FLAGS | UI_ONLY_SWITCHES), ("ui", PROXY_ONLY_FLAGS | PROXY_ONLY_SWITCHES)],
)
def test_every_flag_of_up_is_understood_by_the_child_it_reaches(command, drop):
    argv = child_argv(command, every_up_flag(), drop=drop)
    build_parser().parse_args(argv[3:])


def test_the_proxy_child_is_told_the_inspectors_address_however_it_is_written():
    for written in (["--ui", "127.0.0.1:9"], ["--ui=127.0.0.1:9"]):
        argv = child_argv("proxy", ["up", *written], drop=UI_ONLY_FLAGS | UI_ONLY_SWITCHES)
        assert build_parser().parse_args(argv[3:]).ui == "127.0.0.1:9"
