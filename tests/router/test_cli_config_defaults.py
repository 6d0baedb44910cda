"""A new user's first commands: the shipped config by default, the same paths however it is named, a typo
named first, and a subcommand's own usage for its unknown flag."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from router.config import DEFAULT_CONFIG_PATH, load_config
from router.errors import ConfigError
from tests.conftest import run_cli


def test_log_commands_read_the_shipped_configs_log_without_config(tmp_path: Path) -> None:
    implicit = run_cli("logs", "stats", cwd=tmp_path)
    named = run_cli("logs", "stats", "--config", str(DEFAULT_CONFIG_PATH), cwd=tmp_path)
    report = run_cli("report", cwd=tmp_path)
    expected = f"no request log at {(tmp_path / 'var' / 'rightsize' / 'requests.db').resolve()}"
    for result in (implicit, named, report):
        assert result.returncode == 1, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr


def test_models_list_works_without_config(tmp_path: Path) -> None:
    result = run_cli("models", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "default" in result.stdout


def test_the_shipped_config_means_the_same_log_path_however_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = Path(os.path.relpath(DEFAULT_CONFIG_PATH, tmp_path))  # as `--config ../../router/...`
    symlink = tmp_path / "router.yaml"
    symlink.symlink_to(DEFAULT_CONFIG_PATH)
    implicit = load_config(environ={}).log
    for named in (DEFAULT_CONFIG_PATH, relative, symlink):
        assert load_config(named, environ={}).log == implicit, named
    assert implicit.url == f"sqlite:///{tmp_path.resolve() / 'var' / 'rightsize' / 'requests.db'}"


def test_a_typo_in_one_key_is_named_first(tmp_path: Path) -> None:
    path = tmp_path / "router.yaml"
    path.write_text("tier:\n  small: {model: a}\n  large: {model: b}\n")
    with pytest.raises(
        ConfigError, match=r"router\.yaml: tier: unknown key; did you mean `tiers`\? \(and 1 more\)"
    ):
        load_config(path, environ={})
    path.write_text("tiers: {small: {model: a}, large: {model: b}}\nrouting: {treshold: 0.3}\n")
    with pytest.raises(ConfigError, match=r"routing\.treshold: unknown key; did you mean `threshold`\?$"):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        (("logs", "stats"), "usage: rightsize logs stats"),
        (("models", "list"), "usage: rightsize models list"),
    ],
)
def test_an_unknown_flag_prints_the_subcommands_usage(command: tuple[str, ...], usage: str) -> None:
    result = run_cli(*command, "--no-such-flag")
    assert result.returncode == 2
    assert result.stderr.startswith(usage) and "unrecognized arguments: --no-such-flag" in result.stderr
