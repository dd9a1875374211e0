"""Event-time order on the stream against the batch door: a month of simulated fraud payments through
`risk stream fraud` with one worker, then with two in one group, each run's decisions compared with
`risk rescore fraud` on the same events (scores to 1e-9, decisions, rule hits).

Two ways to publish (`--mode`):
- `skewed`: card by card on four partitions, partition after partition (all of partition 0's month, then
  partition 1's...), before the workers start: the broker hands them records far apart in event time;
- `live`: every payment in event-time order at `--rate` a second while the workers run.

One worker orders every partition it holds, so it must agree with the batch door exactly. Two workers each
order only their own partitions: where one runs ahead of the other in event time, terminal windows (which
span cards, so partitions) see the other worker's payments late, and the figures say how much that costs.

    .venv/bin/python -m bench.stream_order [--mode skewed|live] [--workers 1 2] [--customers 400] [--rate 1000]
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import bench_settings, record, workdir
from services.fraud_detection.dataset import simulate
from services.fraud_detection.features import events_from_simulation
from shared.events.broker import EmbeddedBroker, ensure_topics
from shared.events.envelope import encode, make_event
from shared.events.topics import ALL_TOPICS, FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, decision_payloads, publish_by_partition
from tests.fixtures.services import rescored, running_worker

SCORE_TOLERANCE = 1e-9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("skewed", "live"), default="skewed")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rate", type=float, default=1000.0, help="events a second (live mode)")
    args = parser.parse_args()
    work = workdir()
    settings = bench_settings(work)
    events = events_from_simulation(
        simulate(n_customers=args.customers, n_terminals=args.customers, nb_days=args.days, radius=15.0, processes=1)
    )
    batch = rescored("fraud", events, settings, work, environment={"RISK_DECISIONS_URL": "none"})
    runs = [through_workers(events, settings, work, count, args) | {"workers": count} for count in args.workers]
    for run in runs:
        run.update(compare(run.pop("decisions"), batch))
    record(
        f"stream_order_fraud_{args.mode}",
        {
            "mode": args.mode,
            "events": len(events),
            "days": args.days,
            "customers": args.customers,
            "partitions": PAYMENTS_TRANSACTIONS.partitions,
            "rate_per_second": args.rate if args.mode == "live" else None,
            "max_idle_ms": settings.stream_max_idle_ms,
            "runs": runs,
        },
    )


def through_workers(
    events: list[dict[str, Any]], settings: Settings, work: Path, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    """The decisions of `count` workers of one group, each run with its own state and decision store."""
    run_dir = work / f"workers-{count}-{args.mode}"
    run_dir.mkdir()
    settings = replace(
        settings,
        state_url=f"sqlite:///{run_dir / 'state.sqlite3'}",
        decisions_url=f"sqlite:///{run_dir / 'decisions.sqlite3'}",
    )
    cards = sorted({e["customer_id"] for e in events})
    partition_of = {card: n % PAYMENTS_TRANSACTIONS.partitions for n, card in enumerate(cards)}
    with EmbeddedBroker(port=0) as broker:
        ensure_topics(broker.bootstrap_servers, ALL_TOPICS)
        settings = replace(settings, kafka_bootstrap_servers=broker.bootstrap_servers)
        if args.mode == "skewed":
            skewed = sorted(events, key=lambda e: partition_of[e["customer_id"]])
            by_card = partition_of.get
            publish_by_partition(broker.bootstrap_servers, PAYMENTS_TRANSACTIONS, skewed, "customer_id", by_card)
        started = time.perf_counter()
        with ExitStack() as workers:
            for n in range(count):
                workers.enter_context(running_worker("fraud", settings, run_dir / f"worker-{n}.log"))
            if args.mode == "live":
                time.sleep(8.0)  # the group joins (about 3 s each) before the first payment
                started = time.perf_counter()
                publish_at_rate(broker.bootstrap_servers, events, partition_of, args.rate)
            records = collect(broker.bootstrap_servers, FRAUD_DECISIONS, lambda r: len(r) >= len(events), timeout=900)
        elapsed = time.perf_counter() - started
    decisions = {d["event_id"]: d for d in decision_payloads(records)}
    return {"decisions": decisions, "seconds": round(elapsed, 1), "decided": len(decisions)}


def publish_at_rate(bootstrap: str, events: list[dict[str, Any]], partition_of: dict[str, int], rate: float) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    began = time.perf_counter()
    for n, data in enumerate(events):
        ahead = began + n / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        key = str(data["customer_id"])
        value = encode(make_event(PAYMENTS_TRANSACTIONS.event_type, "/bench", data))
        producer.send(PAYMENTS_TRANSACTIONS.name, key=key.encode(), value=value, partition=partition_of[key])
    producer.flush()
    producer.close()


def compare(streamed: dict[str, dict[str, Any]], batch: dict[str, dict[str, Any]]) -> dict[str, Any]:
    both = [key for key in batch if key in streamed]
    scores = [abs(streamed[k]["score"] - batch[k]["score"]) for k in both]
    return {
        "missing": len(batch) - len(both),
        "scores_different": sum(d > SCORE_TOLERANCE for d in scores),
        "largest_score_difference": max(scores, default=0.0),
        "decisions_different": sum(streamed[k]["decision"] != batch[k]["decision"] for k in both),
        "rule_hits_different": sum(streamed[k]["rule_hits"] != batch[k]["rule_hits"] for k in both),
    }


if __name__ == "__main__":
    main()
