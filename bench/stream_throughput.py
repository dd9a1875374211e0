"""Stream throughput end to end: transactions published to the embedded broker, scored by one
`risk stream fraud` worker, decisions read back. Events/s from the first publish to the last decision.

    .venv/bin/python -m bench.stream_throughput [--events 20000]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from bench.common import bench_settings, record, simulated_events, workdir
from shared.events.broker import EmbeddedBroker, ensure_topics
from shared.events.topics import ALL_TOPICS, FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from tests.fixtures.kafka_io import collect, publish
from tests.fixtures.services import running_worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    work = workdir()
    settings = bench_settings(work)
    events = simulated_events()[-args.events :]
    with EmbeddedBroker(port=0) as broker:
        ensure_topics(broker.bootstrap_servers, ALL_TOPICS)
        settings = replace(settings, kafka_bootstrap_servers=broker.bootstrap_servers)
        with running_worker("fraud", settings, work / "worker.log"):
            publish(broker.bootstrap_servers, PAYMENTS_TRANSACTIONS, events[:200], "customer_id")  # group join, warm-up
            collect(broker.bootstrap_servers, FRAUD_DECISIONS, lambda r: len(r) >= 200, timeout=120)
            started = time.perf_counter()
            publish(broker.bootstrap_servers, PAYMENTS_TRANSACTIONS, events[200:], "customer_id")
            published = time.perf_counter() - started
            records = collect(broker.bootstrap_servers, FRAUD_DECISIONS, lambda r: len(r) >= len(events), timeout=600)
            elapsed = time.perf_counter() - started
    scored = len(records) - 200
    record("stream_throughput", {
        "events": scored, "partitions": PAYMENTS_TRANSACTIONS.partitions, "workers": 1,
        "batch_size": settings.stream_batch_size, "publish_seconds": round(published, 2),
        "end_to_end_seconds": round(elapsed, 2), "events_per_second": round(scored / elapsed, 1),
        "note": "publisher, broker, worker and reader share the machine's 2 cores",
    })


if __name__ == "__main__":
    main()
