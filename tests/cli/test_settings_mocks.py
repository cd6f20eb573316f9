"""The mocks setting (issue 18 §3): `--mock NAME=FILE`, PASSAGEWAY_MOCKS, `[mocks]` and
`[services.NAME] mock` all give it; a file's paths are relative to the file, the others' to the
working directory; they add up, the later layer winning for a name; every mistake is one line;
`up` passes --mock on to its proxy."""

from pathlib import Path

import pytest

from cli.main import build_parser
from cli.roles import proxy_view
from cli.settings import ConfigError, child_arguments, load_settings


def har(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"log": {"entries": []}}')
    return path


def test_every_way_of_giving_a_mock(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    for name in ("a.har", "b.har", "c.har"):
        har(config_dir / name)
    for name in ("env.har", "flag.har"):
        har(tmp_path / name)
    (config_dir / "passageway.toml").write_text(
        '[mocks]\nbilling = "a.har"\n'
        '[services.orders]\nmock = "b.har"\n'  # a mock only: no route
        '[services.users]\nurl = "http://h:1"\nmock = "c.har"\n'  # routed, and simulated while the mock is on
    )
    settings = load_settings(
        {"config_file": str(config_dir / "passageway.toml"), "mocks": ["cart=flag.har", "billing=flag.har"]},
        environ={"PASSAGEWAY_MOCKS": "pay=env.har,users=env.har"}, cwd=tmp_path,
    )  # fmt: skip
    assert settings.mocks == {
        "billing": tmp_path / "flag.har", "orders": config_dir / "b.har", "users": tmp_path / "env.har",
        "pay": tmp_path / "env.har", "cart": tmp_path / "flag.har",
    }  # fmt: skip
    assert set(settings.services) == {"users"}
    assert proxy_view(settings).mocks == settings.mocks


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({"mocks": ["orders"]}, "NAME=VALUE"),
        ({"mocks": ["orders=missing.har"]}, "no such file"),
        ({"mocks": ["a/b=x.har"]}, "bad service name"),
        ({"mocks": ["orders="]}, "HAR file's path"),
    ],
)
def test_a_bad_mock_is_one_line(tmp_path: Path, flags: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        load_settings(flags, environ={}, cwd=tmp_path)
    assert "\n" not in str(caught.value)


def test_a_bad_mock_in_the_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "passageway.toml").write_text('[services.orders]\nmock = "gone.har"\n')
    with pytest.raises(ConfigError, match=r"passageway.toml: mock 'orders': no such file"):
        load_settings({}, environ={}, cwd=tmp_path)
    (tmp_path / "passageway.toml").write_text('mocks = ["x"]\n')
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        load_settings({}, environ={}, cwd=tmp_path)


def test_up_passes_mock_to_its_proxy(tmp_path: Path) -> None:
    har(tmp_path / "x.har")
    argv = ["up", "--mock", "x=x.har", "--mock=y=x.har"]
    build_parser().parse_args(argv)
    assert child_arguments(argv, ["proxy"]) == ["--mock", "x=x.har", "--mock=y=x.har"]
    assert child_arguments(argv, ["inspector", "maintenance", "monitors"]) == []
