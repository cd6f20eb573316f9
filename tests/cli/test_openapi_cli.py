"""`passageway openapi`: NAME alone means the `show` action, and another action can sit beside it."""

from __future__ import annotations

import pytest

from cli import openapi
from cli.main import build_parser


def test_a_service_name_alone_means_show() -> None:
    assert openapi.implicit_show(["openapi", "identity", "--since", "7d"]) == ["openapi", "show", "identity", "--since", "7d"]
    assert openapi.implicit_show(["openapi", "--realm", "dev", "identity"]) == ["openapi", "show", "--realm", "dev", "identity"]
    assert openapi.implicit_show(["openapi", "show", "show"]) == ["openapi", "show", "show"]  # a service named show
    assert openapi.implicit_show(["openapi", "--help"]) == ["openapi", "--help"]
    assert openapi.implicit_show(["export", "identity"]) == ["export", "identity"]
    args = build_parser().parse_args(openapi.implicit_show(["openapi", "identity", "--realm", "dev", "-o", "x.json"]))
    assert (args.command, args.openapi_command, args.name, args.only_realm, args.output) == ("openapi", "show", "identity", "dev", "x.json")
    assert not hasattr(args, "realm")  # the filter is not the settings' realm


def test_another_action_is_one_more_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openapi, "ACTIONS", [*openapi.ACTIONS, "diff"])
    assert openapi.implicit_show(["openapi", "diff", "identity"]) == ["openapi", "diff", "identity"]
    assert openapi.implicit_show(["openapi", "identity"]) == ["openapi", "show", "identity"]
