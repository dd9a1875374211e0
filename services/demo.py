"""`risk demo`: the whole system on one machine, end to end.

Starts the embedded broker; for fraud, claims and disease, trains a model if the registry has none, starts the
HTTP server (gunicorn, 2 workers) and the stream worker, publishes simulated or real events (and one
malformed record each, to show the dead-letter path), collects the decisions, scores a few more over
HTTP, prints a readable summary, and shuts everything down. Every decision is recorded (a SQLite file in the
run's folder): the demo finds a few again by event id, sends one event again to show it replayed, reports
the fraud outcomes (confirmed fraud or genuine) back, and prints the quality figures the monitor computes.
The analysts' desk runs beside them over the same decisions (its address and a sign-in key are printed);
with `--keep` everything stays up after the summary, until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import requests
from kafka import KafkaConsumer

from services.registry import http_app_spec, runtime
from shared.doors.gunicorn import gunicorn_command, serve_environment
from shared.doors.monitoring import summary_lines
from shared.errors import ModelNotFoundError
from shared.events.broker import EmbeddedBroker, ensure_topics, free_port
from shared.events.envelope import encode, make_event
from shared.events.producer import make_producer
from shared.events.topics import (
    ALL_TOPICS,
    CLAIMS_DECISIONS,
    DISEASE_DECISIONS,
    FRAUD_DECISIONS,
    HEALTH_ASSESSMENTS,
    INSURANCE_CLAIMS,
    INSURANCE_POLICIES,
    PAYMENTS_TRANSACTIONS,
    Topic,
)
from shared.settings import Settings

FRAUD_DAY = pd.Timestamp("2018-08-08")
Held = TypeVar("Held")


@dataclass(frozen=True)
class RunningService:
    name: str
    base_url: str


def run_demo(settings: Settings, events: int = 300, keep: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="risk-demo-"))
    for service in ("fraud", "claims", "disease"):
        _ensure_model(settings, service)
    pseudonym_key = settings.pseudonym_key
    if not pseudonym_key:
        pseudonym_key = secrets.token_hex(16).encode()
        _say("RISK_PSEUDONYM_KEY is not set: card and patient ids are pseudonymised with a key made for this run only")
    with EmbeddedBroker(port=0) as broker:
        ensure_topics(broker.bootstrap_servers, ALL_TOPICS)
        settings = Settings.from_env(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            state_url=f"sqlite:///{workdir / 'state.sqlite3'}",
            decisions_url=f"sqlite:///{workdir / 'decisions.sqlite3'}",
            pseudonym_key=pseudonym_key,
        )
        with ExitStack() as kept:
            kept.enter_context(_desk(settings, workdir))
            held = kept if keep else None
            _fraud_demo(settings, workdir, events, held)
            _claims_demo(settings, workdir, max(50, events // 2), held)
            _disease_demo(settings, workdir, max(50, events // 2), held)
            if keep:
                _say("everything keeps running (the desk, the HTTP servers, the stream workers): Ctrl-C stops it")
                _until_interrupted()
    _say(f"stopped the workers, the servers and the broker; logs kept in {workdir}")
    return 0


# ------------------------------------------------------------------ fraud


def _fraud_demo(settings: Settings, workdir: Path, count: int, kept: ExitStack | None) -> None:
    from services.fraud_detection.dataset import load_or_simulate
    from services.fraud_detection.features import events_from_simulation, frame_from_simulation, record_history
    from services.fraud_detection.train import SIZES

    simulated = load_or_simulate(settings.data_dir, **asdict(SIZES["demo"]))
    times = simulated["tx_datetime"]
    day = simulated[(times >= FRAUD_DAY) & (times < FRAUD_DAY + pd.Timedelta(days=1))]
    frauds = day[day["is_fraud"] == 1].head(count // 5)
    chosen = pd.concat([frauds, day[day["is_fraud"] == 0].sample(count + 5 - len(frauds), random_state=7)])
    stream, http = _split(events_from_simulation(chosen.sort_values("tx_datetime", kind="stable")), count)
    history = simulated[(times < FRAUD_DAY) & (times >= FRAUD_DAY - pd.Timedelta(days=40))]
    _say(f"fraud: warming window state with {len(history):,} simulated transactions before {FRAUD_DAY:%Y-%m-%d}")
    with runtime("fraud", settings) as warming:
        record_history(warming.state, frame_from_simulation(history), warming.entity_key)
    with _lasting(_running("fraud", settings, workdir), kept) as service:
        decisions = _publish_and_collect(settings, PAYMENTS_TRANSACTIONS, stream, "customer_id", FRAUD_DECISIONS)
        http_decisions, refusal = _over_http(service, http, {"amount": -5, "timestamp": "yesterday"})
        _summary("fraud", decisions, http_decisions, refusal, PAYMENTS_TRANSACTIONS)
        _found_again(service, decisions[0]["event_id"], http[0])
        labels = dict(zip(chosen["transaction_id"].astype(str), chosen["is_fraud"].astype(int), strict=True))
        _report_outcomes(service, [*decisions, *http_decisions], labels)
    _monitoring(settings, "fraud")


# ------------------------------------------------------------------ claims


def _claims_demo(settings: Settings, workdir: Path, count: int, kept: ExitStack | None) -> None:
    from services.claims_risk.dataset import load_policies, policy_event

    rng = random.Random(3)
    now = datetime.now(UTC).replace(microsecond=0)
    book = load_policies().sample(count + 5, random_state=11)
    policies, claims = [], []
    for n, row in enumerate(book.itertuples()):
        kind = rng.choice(["quote", "renewal"])
        moment = now + timedelta(seconds=n)
        policies.append(
            policy_event(row, quote_id=f"Q-{n:06d}", policy_id=f"POL-{row.policy_id:06d}", kind=kind, timestamp=moment)
        )
        for k in range(rng.choice([0, 0, 0, 0, 0, 1, 1, 2, 3])):
            claims.append(
                {
                    "claim_id": f"CLM-{row.policy_id}-{k}",
                    "policy_id": f"POL-{row.policy_id:06d}",
                    "timestamp": (now - timedelta(days=rng.randrange(5, 600))).isoformat(),
                    "amount": float(rng.randrange(300, 12000)),
                }
            )
    stream, http = _split(policies, count)
    with _lasting(_running("claims", settings, workdir), kept) as service:
        _publish(settings, INSURANCE_CLAIMS, claims, "policy_id")
        _say(f"claims: published {len(claims)} claim notifications to {INSURANCE_CLAIMS.name}")
        time.sleep(2.0)  # let the worker record the histories before the renewals that read them
        decisions = _publish_and_collect(settings, INSURANCE_POLICIES, stream, "policy_id", CLAIMS_DECISIONS)
        http_decisions, refusal = _over_http(service, http, {"exposure": 0, "vehicle_brand": "B99"})
    _summary("claims", decisions, http_decisions, refusal, INSURANCE_POLICIES)


# ------------------------------------------------------------------ disease


def _disease_demo(settings: Settings, workdir: Path, count: int, kept: ExitStack | None) -> None:
    from services.disease_risk.samples import sample_assessments

    stream, http = _split(sample_assessments(count + 5, seed=5), count)
    with _lasting(_running("disease", settings, workdir), kept) as service:
        decisions = _publish_and_collect(settings, HEALTH_ASSESSMENTS, stream, "patient_id", DISEASE_DECISIONS)
        http_decisions, refusal = _over_http(service, http, {"total_cholesterol": {"value": 5.2}, "age": 15})
    _summary("disease", decisions, http_decisions, refusal, HEALTH_ASSESSMENTS)


# ------------------------------------------------------------------ shared plumbing


def _ensure_model(settings: Settings, service: str) -> None:
    with runtime(service, settings) as parts:
        try:
            version = parts.registry.champion(service)
            _say(f"{service} model {version} from {settings.model_dir}")
            return
        except ModelNotFoundError:
            _say(f"no {service} model yet: training one (first run only)")
        card = parts.service.train(settings.model_dir, settings.data_dir, "demo")
        _say(f"trained {service} model {card['version']}: " + json.dumps(card["metrics"])[:200])


@contextmanager
def _running(service: str, settings: Settings, workdir: Path) -> Iterator[RunningService]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RISK_STATE_URL": settings.state_url,
        "RISK_DECISIONS_URL": settings.decisions_url,
        "RISK_MODEL_DIR": str(settings.model_dir),
        "RISK_LOG_LEVEL": "WARNING",
        "RISK_PSEUDONYM_KEY": settings.pseudonym_key.decode(),
    }
    port = free_port()
    logs = (workdir / f"{service}-server.log").open("w"), (workdir / f"{service}-worker.log").open("w")
    server = subprocess.Popen(
        gunicorn_command(http_app_spec(service)),
        env={**serve_environment("127.0.0.1", port, 2), **env},
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "stream", service], env=env, stdout=logs[1], stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, server)
        _say(f"{service}: HTTP server on {base} (gunicorn, 2 workers) and stream worker started")
        yield RunningService(service, base)
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


def _publish(settings: Settings, topic: Topic, payloads: list[dict[str, Any]], key: str) -> None:
    producer = make_producer(settings.kafka_bootstrap_servers)
    for payload in payloads:
        producer.send(
            topic.name, key=str(payload[key]).encode(), value=encode(make_event(topic.event_type, "/demo", payload))
        )
    producer.flush()
    producer.close()


def _publish_and_collect(
    settings: Settings, topic: Topic, payloads: list[dict[str, Any]], key: str, output: Topic
) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        output.name,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"risk-demo-{output.name}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=10000,
        consumer_timeout_ms=1000,
    )
    started = time.perf_counter()
    _publish(settings, topic, payloads, key)
    producer = make_producer(settings.kafka_bootstrap_servers)
    producer.send(topic.name, key=b"broken", value=b'{"this is": "not a CloudEvent"')
    producer.flush()
    producer.close()
    _say(f"published {len(payloads)} events and 1 malformed record to {topic.name}")
    decisions: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 90
    while len(decisions) < len(payloads) and time.monotonic() < deadline:
        for message in consumer:
            decision = json.loads(message.value)["data"]
            decisions[decision["event_id"]] = decision
    consumer.close()
    _say(f"received {len(decisions)} decisions from {output.name} in {time.perf_counter() - started:.1f} s")
    return list(decisions.values())


def _over_http(
    service: RunningService, payloads: list[dict[str, Any]], breakage: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    decisions = [requests.post(f"{service.base_url}/v1/score", json=p, timeout=10).json() for p in payloads]
    refusal = requests.post(f"{service.base_url}/v1/score", json={**payloads[0], **breakage}, timeout=10)
    return decisions, {"status": refusal.status_code, **refusal.json()}


def _summary(
    service: str, stream: list[dict[str, Any]], http: list[dict[str, Any]], refusal: dict[str, Any], topic: Topic
) -> None:
    counts = Counter(d["decision"] for d in stream)
    print(f"\n=== {service} decisions over Kafka ===")
    for outcome, count in sorted(counts.items(), key=lambda item: -item[1]):
        print(f"  {outcome:<8} {count:>5}")
    flagged = sorted((d for d in stream if d["rule_hits"]), key=lambda d: -d["score"])[:3]
    for decision in flagged:
        measures = ", ".join(f"{k} {v:.3f}" for k, v in decision["measures"].items())
        print(
            f"\n  {decision['event_id']}: {decision['decision'].upper()} (score {decision['score']:.3f}, "
            f"band {decision['risk_band']}{', ' + measures if measures else ''})"
        )
        for hit in decision["rule_hits"]:
            print(f"    rule {hit['rule_id']}: {hit['reason']}")
        for reason in decision["reasons"]:
            print(f"    because {reason['text']}")
        for equation in decision.get("details", {}).get("equations", []):
            result = (
                f"{equation['risk']:.3g}" + (f" ({equation['category']})" if equation["category"] else "")
                if equation["applicable"]
                else equation["reason"]
            )
            print(f"    beside it, {equation['name']} ({equation['variant']}): {result}")
    print(f"\n=== {service} over HTTP (POST /v1/score) ===")
    for decision in http:
        print(f"  {decision['event_id']}: {decision['decision']} (score {decision['score']:.3f})")
    print(f"  a malformed event got HTTP {refusal['status']}: {json.dumps(refusal.get('fields'))}")
    if stream:
        print(
            f"\n  model {stream[0]['model']['version']}, ruleset {stream[0]['ruleset_version']}; "
            f"the malformed Kafka record went to {topic.dead_letter.name}\n"
        )


def _found_again(service: RunningService, streamed_id: str, posted: dict[str, Any]) -> None:
    """Decisions are recorded: found by event id whichever door made them; an event sent again is replayed."""
    print(f"=== {service.name}: recorded decisions ===")
    found = requests.get(f"{service.base_url}/v1/decisions/{streamed_id}", timeout=10).json()
    print(f"  GET /v1/decisions/{streamed_id} (decided over Kafka): {found['decision']}, score {found['score']:.3f}")
    again = requests.post(f"{service.base_url}/v1/score", json=posted, timeout=10).json()
    print(
        f"  the same event posted again: {again['decision']}, score {again['score']:.3f}, replayed "
        f"{str(again['replayed']).lower()} (not scored twice, counted once in every window)"
    )
    page = requests.get(f"{service.base_url}/v1/decisions", params={"decision": "review", "limit": "3"}, timeout=10)
    shown = ", ".join(d["event_id"] for d in page.json()["decisions"]) or "none"
    print(f"  GET /v1/decisions?decision=review&limit=3: {shown}")


def _report_outcomes(service: RunningService, decided: list[dict[str, Any]], labels: dict[str, int]) -> None:
    """Outcomes a week later: the simulation's truth, confirmed fraud or genuine, posted back."""
    outcomes = [
        {
            "transaction_id": d["event_id"],
            "outcome": "fraud" if labels[d["event_id"]] else "genuine",
            "source": "chargeback" if labels[d["event_id"]] else "cardholder",
            "reported_at": (datetime.now(UTC)).isoformat(),
        }
        for d in decided
        if d["event_id"] in labels
    ]
    response = requests.post(f"{service.base_url}/v1/outcomes", json={"outcomes": outcomes}, timeout=30)
    statuses = Counter(o["status"] for o in response.json()["outcomes"])
    frauds = sum(o["outcome"] == "fraud" for o in outcomes)
    print(
        f"  POST /v1/outcomes: {len(outcomes)} outcomes ({frauds} confirmed fraud), "
        + ", ".join(f"{k} {v}" for k, v in statuses.items())
        + "; confirmed frauds now raise their terminals' risk for later payments"
    )


def _monitoring(settings: Settings, service: str) -> None:
    """The monitor over the recorded decisions and their outcomes (`risk monitor SERVICE` does the same)."""
    with runtime(service, settings) as parts:
        report = parts.monitor()
    print(f"\n=== {service}: quality in production (risk monitor {service}) ===")
    print("\n".join(summary_lines(report)))
    print("  (a few hundred decisions of one day: figures for show, not for judging)\n")


@contextmanager
def _lasting(running: AbstractContextManager[Held], kept: ExitStack | None) -> Iterator[Held]:
    """`running` for the block, or, given `kept`, until `kept` closes (`--keep`: until Ctrl-C)."""
    if kept is None:
        with running as held:
            yield held
    else:
        yield kept.enter_context(running)


@contextmanager
def _desk(settings: Settings, workdir: Path) -> Iterator[str]:
    """The analysts' desk over the demo's decisions; without RISK_API_KEYS, one analyst identity made for
    this run (its key printed, to sign in with)."""
    from services.desk.app import APP_SPEC, desk_environment

    keys = ",".join(settings.api_keys)
    if not keys:
        key = secrets.token_urlsafe(18)
        keys = f"demo-analyst:{key}:analyst+approver"
    port = free_port()
    env = {
        **desk_environment(settings, "127.0.0.1", port, 2),
        "RISK_DECISIONS_URL": settings.decisions_url,
        "RISK_STATE_URL": settings.state_url,
        "RISK_MODEL_DIR": str(settings.model_dir),
        "RISK_PSEUDONYM_KEY": settings.pseudonym_key.decode(),
        "RISK_API_KEYS": keys,
        "RISK_LOG_LEVEL": "WARNING",
    }
    log = (workdir / "desk.log").open("w")
    desk = subprocess.Popen(gunicorn_command(APP_SPEC), env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, desk, "/healthz")
        how = f"sign in with the key {key}" if not settings.api_keys else "sign in with a key of RISK_API_KEYS"
        _say(f"the analysts' desk: {base} ({how})")
        yield base
    finally:
        desk.send_signal(signal.SIGTERM)
        try:
            desk.wait(timeout=30)
        except subprocess.TimeoutExpired:
            desk.kill()
        log.close()


def _until_interrupted() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _say("Ctrl-C: stopping")


def _split(items: list[dict[str, Any]], count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return items[:count], items[count:]


def _wait_ready(base: str, server: subprocess.Popen[bytes], path: str = "/readyz") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the HTTP server exited during start-up: see its log")
        try:
            if requests.get(f"{base}{path}", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or busy starting
            pass
        time.sleep(0.3)
    raise RuntimeError("the HTTP server did not become ready within 60 s")


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)
