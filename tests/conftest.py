"""Shared fixtures, and the suite's layers. Real dependencies (broker, Redis, PostgreSQL, gunicorn) are started by the
fixture modules under tests/fixtures/, each on a free loopback port, so the suite needs nothing running
beforehand. Every test is marked by its folder (unit, integration, e2e, contract): `-m unit` is the fast
layer. HOME points into the session's temporary directory before any project module computes its default
paths, so no test reads or writes the developer's home (a ruleset approved there once would otherwise be
the one the suite runs against)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="risk-tests-home-"))
os.environ["HOME"] = str(_HOME)
os.environ["XDG_CACHE_HOME"] = str(_HOME / ".cache")
os.environ["XDG_CONFIG_HOME"] = str(_HOME / ".config")
os.environ["MPLCONFIGDIR"] = str(_HOME / ".matplotlib")

pytest_plugins: list[str] = [
    "tests.fixtures.broker",
    "tests.fixtures.redis",
    "tests.fixtures.services",
    "tests.fixtures.postgres",  # after services, whose free_port it uses
]

LAYERS = ("unit", "integration", "e2e", "contract")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test gets the marker of the folder it lives in."""
    root = Path(__file__).parent
    for item in items:
        layer = Path(item.path).relative_to(root).parts[0]
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
