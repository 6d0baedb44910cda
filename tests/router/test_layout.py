"""The package layout the README's Development section describes: small top level, subpackages with an API."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROUTER = Path(__file__).resolve().parents[2] / "router"
SUBPACKAGES = ["router.config", "router.routing", "router.backends", "router.rpc"]


def test_router_has_at_most_twelve_top_level_modules() -> None:
    modules = sorted(path.name for path in ROUTER.glob("*.py"))
    assert len(modules) <= 12, modules


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_states_its_job_and_exports_what_its_all_names(name: str) -> None:
    package = importlib.import_module(name)
    assert package.__doc__ and package.__doc__.strip().splitlines()[0].endswith(".")
    assert package.__all__ == sorted(package.__all__)
    for exported in package.__all__:
        assert getattr(package, exported) is not None, f"{name}.{exported}"
