"""Metric children looked up once (shared.metrics.labelled): the same child prometheus_client hands out, so
what the doors count is what /metrics exports."""

from __future__ import annotations

from prometheus_client import REGISTRY

from shared.metrics import HTTP_REQUESTS, labelled


def _exported(status: str) -> float:
    labels = {"service": "test-children", "endpoint": "/v1/score", "status": status}
    return REGISTRY.get_sample_value("risk_http_requests_total", labels) or 0.0


def test_a_cached_child_counts_in_the_exported_metric() -> None:
    """Counting through `labelled` twice and through `labels` once adds three to the one exported sample,
    and another label set is a child of its own."""
    before_ok, before_bad = _exported("200"), _exported("422")
    labelled(HTTP_REQUESTS, "test-children", "/v1/score", "200").inc()
    labelled(HTTP_REQUESTS, "test-children", "/v1/score", "200").inc()
    HTTP_REQUESTS.labels("test-children", "/v1/score", "200").inc()
    labelled(HTTP_REQUESTS, "test-children", "/v1/score", "422").inc()
    assert labelled(HTTP_REQUESTS, "test-children", "/v1/score", "200") is HTTP_REQUESTS.labels(
        "test-children", "/v1/score", "200"
    )
    assert _exported("200") == before_ok + 3
    assert _exported("422") == before_bad + 1
