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
