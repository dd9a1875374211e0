"""The unit layer: no process, no model training, no real server. Retries (stamina) run in testing mode
here, so a retried call never sleeps; the integration layers keep real back-off against real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stamina


@pytest.fixture(autouse=True)
def _retries_do_not_sleep() -> Iterator[None]:
    with stamina.set_testing(True, attempts=1):
        yield
