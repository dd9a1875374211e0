"""docker-compose.yml stays in step with the code: every service's command is a valid `risk` command
and every topic the stream workers need is created by the topics job."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.cli import _parser

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_commands_parse_as_risk_commands() -> None:
    """Each `command:` of a risk-scoring service is accepted by the `risk` argument parser."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    commands = [s["command"] for s in services.values() if s.get("image") == "risk-scoring:latest" and "command" in s]
    assert len(commands) >= 3
    for command in commands:
        _parser().parse_args(command)


def test_compose_runs_kafka_in_kraft_mode_with_the_topics_job() -> None:
    """Kafka runs as its own controller (no ZooKeeper) and the stream worker waits for the topics job."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert "ensure_topics" in " ".join(services["kafka-topics"]["entrypoint"])
    assert services["fraud-stream"]["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"


def test_every_http_server_is_scraped_and_every_service_records_in_postgres() -> None:
    """Prometheus scrapes each `risk serve` and `risk stream` service of the compose file (the workers on
    their metrics port); the services record decisions in the compose file's PostgreSQL, which has a health
    check they wait for."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    http = {name for name, s in services.items() if s.get("command", [None])[0] in {"serve", "stream"}}
    scrape = yaml.safe_load((COMPOSE.parent / "infra/prometheus/prometheus.yml").read_text())
    targets = {t.split(":")[0] for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert http and targets == http
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    url = services["fraud-http"]["environment"]["RISK_DECISIONS_URL"]
    assert url.startswith("postgresql://") and "@postgres:5432/" in url
    assert services["fraud-http"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_dashboard_reads_only_metrics_the_services_export() -> None:
    """Every metric name in the provisioned Grafana dashboard is one the code defines (counters, histograms,
    or the monitoring report's gauges), so no panel stays empty for a typo."""
    import json
    import re

    from prometheus_client import REGISTRY

    from shared.metrics import render

    report = {
        "service": "fraud",
        "alerts": [],
        "models": {
            "v1": {
                "drift": {"score": 0.1, "features": {"amount": 0.1}},
                "calibration": {"slope": 1.0, "brier": 0.1},
                "outcomes": {"review": {"precision": 0.5, "recall": 0.5}},
                "labelled": 10,
            }
        },
    }
    exported = {m.name for m in REGISTRY.collect()}
    exported |= set(re.findall(r"^# TYPE (\w+) ", render(report)[0].decode(), flags=re.MULTILINE))
    dashboard = json.loads((COMPOSE.parent / "infra/grafana/dashboards/risk-scoring.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(risk_\w+?)(?:_bucket|_total)?\b(?=[\[{(\s)]|$)", target["expr"])
    }
    assert used, "the dashboard reads no metric"
    missing = {name for name in used if name not in exported and name.removesuffix("_total") not in exported}
    assert not missing, missing
