"""POST /v1/score in-process (Flask's test client, no sockets, no gunicorn): the cost of one request
through the service's own code, the same traffic as the HTTP benchmark over warmed window state. Less noisy
than a load test on a shared 2-core machine, so it is the one to compare two versions of the code by; the
request's CPU time (the serving thread's) is steadier still when others share the machine.

    .venv/bin/python -m bench.http_inprocess [--service fraud|claims|disease] [--requests 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench.common import add_decision_store_option, bench_settings, decision_store_url, record, result_name, workdir
from bench.traffic import traffic
from services.registry import runtime, service_names
from shared.doors.http import create_app
from shared.settings import Settings

WARM_UP = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", choices=service_names(), default="fraud")
    parser.add_argument("--requests", type=int, default=3000)
    add_decision_store_option(parser)
    args = parser.parse_args()
    work = workdir()
    with decision_store_url(work, args.decisions) as decisions_url:
        run(args, work, bench_settings(work, args.service, decisions_url))


def run(args: argparse.Namespace, work: Path, settings: Settings) -> None:
    load = traffic(args.service, settings, args.requests + WARM_UP)
    parts = runtime(args.service, settings)
    load.warm(parts.state)
    client = create_app(parts).test_client()
    headers = {"X-API-Key": settings.api_keys[0]}
    bodies = [json.dumps(event) for event in load.events]
    for body in bodies[:WARM_UP]:
        client.post("/v1/score", data=body, content_type="application/json", headers=headers)
    seconds, cpu_seconds = [], []
    for body in bodies[WARM_UP:]:
        started, cpu_started = time.perf_counter(), time.thread_time()
        response = client.post("/v1/score", data=body, content_type="application/json", headers=headers)
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.thread_time() - cpu_started)
        if response.status_code != 200:
            raise SystemExit(f"request failed: {response.status_code} {response.text[:200]}")
    parts.close()
    record(
        result_name("http_inprocess", args.service, args.decisions),
        {
            "service": args.service,
            "decision_store": args.decisions,
            "requests": len(seconds),
            "traffic": load.description,
            "median_us": round(statistics.median(seconds) * 1e6),
            "mean_us": round(statistics.mean(seconds) * 1e6),
            "p99_us": round(sorted(seconds)[int(len(seconds) * 0.99)] * 1e6),
            # the request's own CPU time: what other work on a shared machine disturbs least
            "cpu_median_us": round(statistics.median(cpu_seconds) * 1e6),
            "cpu_p99_us": round(sorted(cpu_seconds)[int(len(cpu_seconds) * 0.99)] * 1e6),
            "load_average": [round(figure, 2) for figure in os.getloadavg()],
        },
    )


if __name__ == "__main__":
    main()
