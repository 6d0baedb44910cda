"""Editing a threshold in place: exact expected text for each layout, and the atomic write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from router.config.edit import format_threshold, set_threshold, write_atomically
from router.errors import ConfigError

BLOCK = """\
# Router config
server:
  address: "127.0.0.1:50051"   # where

routing:
  fallback: true              # keep
  overrides:
    - metadata: { tenant: acme }   # acme
      threshold: 0.8
    - metadata: {task: extraction}
      tier: small

# trailing comment
models:
  active: default
"""


@pytest.mark.parametrize(
    ("value", "text"), [(0.61, "0.61"), (0.6123456, "0.612346"), (1.0, "1.0"), (0.0, "0.0")]
)
def test_format_threshold(value: float, text: str) -> None:
    assert format_threshold(value) == text


def test_a_missing_global_threshold_is_added_as_the_last_routing_key() -> None:
    edit = set_threshold(BLOCK, 0.61)
    assert edit.text == BLOCK.replace("      tier: small\n", "      tier: small\n  threshold: 0.61\n")
    assert edit.change == "routing.threshold: (unset) -> 0.61"
    again = set_threshold(edit.text, 0.7)
    assert again.text == edit.text.replace("threshold: 0.61", "threshold: 0.7")
    assert again.change == "routing.threshold: 0.61 -> 0.7"


def test_a_tenant_rule_is_updated_where_it_is_or_appended() -> None:
    assert set_threshold(BLOCK, 0.7, tenant="acme").text == BLOCK.replace("threshold: 0.8", "threshold: 0.7")
    edit = set_threshold(BLOCK, 0.7, tenant="new co")
    rule = '    - metadata: {tenant: "new co"}\n      threshold: 0.7\n'
    assert edit.text == BLOCK.replace("      tier: small\n", "      tier: small\n" + rule)
    assert edit.change == "routing.overrides[2] (new): tenant=new co threshold=0.7"


def test_a_tenant_rule_that_forces_a_tier_is_not_overwritten() -> None:
    text = BLOCK.replace("{task: extraction}", "{tenant: beta}")
    with pytest.raises(ConfigError, match=r"routing.overrides\[1\] forces a tier for tenant beta"):
        set_threshold(text, 0.7, tenant="beta")


@pytest.mark.parametrize(
    ("text", "tenant", "expected"),
    [
        ("routing: {fallback: true}  # c\n", None, "routing: {fallback: true, threshold: 0.5}  # c\n"),
        (
            "routing: {threshold: 0.1, overrides: []}\n",
            "a",
            'routing: {threshold: 0.1, overrides: [{metadata: {tenant: "a"}, threshold: 0.5}]}\n',
        ),
        (
            "routing: {overrides: [{metadata: {tenant: b}, tier: small}]}\n",
            "a",
            "routing: {overrides: [{metadata: {tenant: b}, tier: small}, "
            '{metadata: {tenant: "a"}, threshold: 0.5}]}\n',
        ),
        ("tiers:\n  small: {model: x}\n", None, "tiers:\n  small: {model: x}\nrouting:\n  threshold: 0.5\n"),
        (
            "tiers:\n  small: {model: x}",
            "a",
            "tiers:\n  small: {model: x}\nrouting:\n  overrides:\n"
            '    - metadata: {tenant: "a"}\n      threshold: 0.5\n',
        ),
        (
            "routing:\n    threshold: 0.3   # x\n    fallback: true\n",
            "a",
            "routing:\n    threshold: 0.3   # x\n    fallback: true\n    overrides:\n"
            '      - metadata: {tenant: "a"}\n        threshold: 0.5\n',
        ),
    ],
)
def test_other_layouts_are_edited_in_their_own_style(text: str, tenant: str | None, expected: str) -> None:
    assert set_threshold(text, 0.5, tenant=tenant).text == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routing: [unclosed\n", "not valid YAML"),
        ("- a list\n", "expected a mapping at the top level"),
        ("routing:\n  target_large_fraction: 0.3\n", "routing.target_large_fraction is set"),
        ("routing:\n  threshold: [1]\n", "routing.threshold is not a number"),
    ],
)
def test_files_that_cannot_take_the_edit_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        set_threshold(text, 0.5)


def test_write_atomically_keeps_the_mode_and_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "router.yaml"
    link.symlink_to(real)
    write_atomically(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.yaml", "router.yaml"]
