"""`risk demo`: the whole system on one machine, end to end.

Starts the embedded broker, the fraud HTTP server (gunicorn, 2 workers) and the fraud stream worker;
warms the window-feature state with the simulated history; publishes a few hundred simulated
transactions (and one malformed record, to show the dead-letter path); collects the decisions; scores
a few more over HTTP; prints a readable summary; shuts everything down.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from kafka import KafkaConsumer

from services.cli import SERVICES, gunicorn_command, serve_environment
from services.fraud_detection.features import events_from_simulation, frame_from_simulation, record_history
from services.fraud_detection.train import SIZES
from shared.errors import ModelNotFound
from shared.events.broker import EmbeddedBroker, ensure_topics
from shared.events.envelope import encode, make_event
from shared.events.producer import make_producer
from shared.events.topics import ALL_TOPICS, FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.features.state import open_state_store
from shared.modeling.registry import ModelRegistry
from shared.settings import Settings

DEMO_DAY = pd.Timestamp("2018-08-08")


def run_demo(settings: Settings, events: int = 300) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="risk-demo-"))
    _ensure_model(settings)
    with EmbeddedBroker(port=0) as broker:
        ensure_topics(broker.bootstrap_servers, ALL_TOPICS)
        settings = Settings.from_env(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            state_url=f"sqlite:///{workdir / 'state.sqlite3'}",
        )
        transactions, stream_events, http_events = _demo_events(settings, events)
        _say(f"warming window state with {len(transactions):,} simulated transactions before {DEMO_DAY:%Y-%m-%d}")
        store = open_state_store(settings.state_url)
        record_history(store, transactions)
        store.close()

        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
               "RISK_STATE_URL": settings.state_url, "RISK_MODEL_DIR": str(settings.model_dir),
               "RISK_LOG_LEVEL": "WARNING"}
        port = _free_port()
        logs = (workdir / "server.log").open("w"), (workdir / "worker.log").open("w")
        server = subprocess.Popen(gunicorn_command("fraud"), env={**serve_environment(settings, "127.0.0.1", port, 2), **env},
                                  stdout=logs[0], stderr=subprocess.STDOUT)
        worker = subprocess.Popen([sys.executable, "-m", "services.cli", "stream", "fraud"], env=env,
                                  stdout=logs[1], stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base, server)
            _say(f"fraud HTTP server on {base} (gunicorn, 2 workers); stream worker consuming {PAYMENTS_TRANSACTIONS.name}")
            decisions = _publish_and_collect(settings, stream_events)
            http_decisions, refusal = _score_over_http(base, http_events)
            _summary(decisions, http_decisions, refusal, workdir)
        finally:
            for process in (worker, server):
                process.send_signal(signal.SIGTERM)
            for process in (worker, server):
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            for log in logs:
                log.close()
    _say(f"stopped the worker, the server and the broker; logs kept in {workdir}")
    return 0


def _ensure_model(settings: Settings) -> None:
    try:
        version = ModelRegistry(settings.model_dir).champion("fraud")
        _say(f"fraud model {version} from {settings.model_dir}")
    except ModelNotFound:
        _say("no fraud model yet: simulating the demo data set and training one (first run only, about a minute)")
        card = SERVICES["fraud"].train(settings, "demo")
        metrics = card["metrics"]["catboost"]
        _say(f"trained fraud model {card['version']}: ROC AUC {metrics['roc_auc']:.3f}, "
             f"AP {metrics['average_precision']:.3f}, CP@100 {metrics['card_precision_at_100']:.3f}")


def _demo_events(settings: Settings, count: int) -> tuple[pd.DataFrame, list[dict[str, Any]], list[dict[str, Any]]]:
    """(history to warm the state with, events to stream, events to send over HTTP) from the demo data."""
    from services.fraud_detection.dataset import load_or_simulate

    from dataclasses import asdict

    simulated = load_or_simulate(settings.data_dir, **asdict(SIZES["demo"]))
    day = simulated[(simulated["tx_datetime"] >= DEMO_DAY) & (simulated["tx_datetime"] < DEMO_DAY + pd.Timedelta(days=1))]
    frauds = day[day["is_fraud"] == 1].head(count // 5)
    chosen = pd.concat([frauds, day[day["is_fraud"] == 0].sample(count + 5 - len(frauds), random_state=7)])
    chosen = chosen.sort_values("tx_datetime", kind="stable")
    history = simulated[(simulated["tx_datetime"] < DEMO_DAY) & (simulated["tx_datetime"] >= DEMO_DAY - pd.Timedelta(days=40))]
    events = events_from_simulation(chosen)
    return frame_from_simulation(history), events[:count], events[count:]


def _publish_and_collect(settings: Settings, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        FRAUD_DECISIONS.name, bootstrap_servers=settings.kafka_bootstrap_servers, group_id="risk-demo-reader",
        auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000,
        max_poll_interval_ms=10000, consumer_timeout_ms=1000,
    )
    producer = make_producer(settings.kafka_bootstrap_servers)
    started = time.perf_counter()
    for event in events:
        envelope = make_event(PAYMENTS_TRANSACTIONS.event_type, "/demo/card-processor", event)
        producer.send(PAYMENTS_TRANSACTIONS.name, key=event["customer_id"].encode(), value=encode(envelope))
    producer.send(PAYMENTS_TRANSACTIONS.name, key=b"broken", value=b'{"this is": "not a CloudEvent"')
    producer.flush()
    _say(f"published {len(events)} transactions and 1 malformed record to {PAYMENTS_TRANSACTIONS.name}")
    decisions: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 90
    while len(decisions) < len(events) and time.monotonic() < deadline:
        for message in consumer:
            decision = json.loads(message.value)["data"]
            decisions[decision["event_id"]] = decision
    elapsed = time.perf_counter() - started
    consumer.close()
    producer.close()
    _say(f"received {len(decisions)} decisions from {FRAUD_DECISIONS.name} in {elapsed:.1f} s")
    return list(decisions.values())


def _score_over_http(base: str, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    decisions = [requests.post(f"{base}/v1/score", json=event, timeout=10).json() for event in events]
    broken = {**events[0], "amount": -5, "timestamp": "yesterday"}
    refusal = requests.post(f"{base}/v1/score", json=broken, timeout=10)
    return decisions, {"status": refusal.status_code, **refusal.json()}


def _summary(stream: list[dict[str, Any]], http: list[dict[str, Any]], refusal: dict[str, Any], workdir: Path) -> None:
    counts = Counter(d["decision"] for d in stream)
    print("\n=== fraud decisions over Kafka ===")
    for outcome in ("approve", "review", "decline"):
        print(f"  {outcome:<8} {counts.get(outcome, 0):>5}")
    latencies = sorted(d["latency_ms"] for d in stream)
    if latencies:
        print(f"  scoring latency per micro-batch: median {latencies[len(latencies) // 2]:.1f} ms")
    flagged = sorted((d for d in stream if d["decision"] != "approve"), key=lambda d: -d["score"])[:3]
    for decision in flagged:
        print(f"\n  transaction {decision['event_id']}: {decision['decision'].upper()} "
              f"(score {decision['score']:.3f}, band {decision['risk_band']})")
        for hit in decision["rule_hits"]:
            print(f"    rule {hit['rule_id']}: {hit['reason']}")
        for reason in decision["reasons"]:
            print(f"    because {reason['text']}")
    print("\n=== over HTTP (POST /v1/score) ===")
    for decision in http:
        print(f"  transaction {decision['event_id']}: {decision['decision']} (score {decision['score']:.3f})")
    print(f"  a malformed transaction got HTTP {refusal['status']}: {json.dumps(refusal.get('fields'))}")
    print(f"\nmodel {stream[0]['model']['version'] if stream else '?'}, ruleset {stream[0]['ruleset_version'] if stream else '?'}; "
          f"the malformed Kafka record went to {PAYMENTS_TRANSACTIONS.dead_letter.name}\n")


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the HTTP server exited during start-up: see its log")
        try:
            if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or busy starting
            pass
        time.sleep(0.3)
    raise RuntimeError("the HTTP server did not become ready within 60 s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)
