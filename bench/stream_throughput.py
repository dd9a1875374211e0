"""Stream throughput end to end: events published to the embedded broker, scored by one
`risk stream SERVICE` worker, decisions read back. Events/s from the first publish to the last decision.

    .venv/bin/python -m bench.stream_throughput [--service fraud|claims|disease] [--events 20000]
        [--decisions sqlite|postgresql|none]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from bench.common import add_decision_store_option, bench_settings, decision_store_url, record, result_name, workdir
from bench.traffic import traffic
from services.registry import runtime, service_names
from shared.events.broker import EmbeddedBroker, ensure_topics
from shared.events.topics import ALL_TOPICS
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, publish
from tests.fixtures.services import running_worker

WARM_UP = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", choices=service_names(), default="fraud")
    parser.add_argument("--events", type=int, default=20_000)
    add_decision_store_option(parser)
    args = parser.parse_args()
    work = workdir()
    with decision_store_url(work, args.decisions) as decisions_url:
        run(args, work, bench_settings(work, args.service, decisions_url))


def run(args: argparse.Namespace, work: Path, settings: Settings) -> None:
    load = traffic(args.service, settings, args.events + WARM_UP)
    with runtime(args.service, settings) as parts:
        load.warm(parts.state)
    with EmbeddedBroker(port=0) as broker:
        ensure_topics(broker.bootstrap_servers, ALL_TOPICS)
        settings = replace(settings, kafka_bootstrap_servers=broker.bootstrap_servers)
        with running_worker(args.service, settings, work / "worker.log"):
            publish(broker.bootstrap_servers, load.input_topic, load.events[:WARM_UP], load.key)  # group join
            collect(broker.bootstrap_servers, load.output_topic, lambda r: len(r) >= WARM_UP, timeout=120)
            started = time.perf_counter()
            publish(broker.bootstrap_servers, load.input_topic, load.events[WARM_UP:], load.key)
            published = time.perf_counter() - started
            records = collect(
                broker.bootstrap_servers, load.output_topic, lambda r: len(r) >= len(load.events), timeout=900
            )
            elapsed = time.perf_counter() - started
    scored = len(records) - WARM_UP
    record(
        result_name("stream_throughput", args.service, args.decisions),
        {
            "service": args.service,
            "decision_store": args.decisions,
            "events": scored,
            "traffic": load.description,
            "partitions": load.input_topic.partitions,
            "workers": 1,
            "batch_size": settings.stream_batch_size,
            "publish_seconds": round(published, 2),
            "end_to_end_seconds": round(elapsed, 2),
            "events_per_second": round(scored / elapsed, 1),
            "note": "publisher, broker, worker and reader share the machine's 2 cores",
        },
    )


if __name__ == "__main__":
    main()
