"""HTTP single-event throughput and latency under gunicorn on loopback: the fraud service against a bare
Flask + CatBoost endpoint on the same model. Needs `wrk` (Debian package `wrk`).

The traffic is real-looking: the simulated transactions of the test week, replayed in time order, over
window state warmed with the 40 days before (as a service in production has), so cards have their
usual histories and the share of flagged payments, which pay for exact SHAP explanations, is realistic.

    .venv/bin/python -m bench.http_throughput [--seconds 20] [--connections 8] [--decisions sqlite|postgresql|none]

Both endpoints run under the project's gunicorn configuration (2 workers, RISK_HTTP_THREADS threads each). With
a store, the results give its size on disk per million decisions recorded one a request.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import requests

from bench.batch_throughput import store_bytes
from bench.common import add_decision_store_option, bench_settings, decision_store_url, record, result_name, workdir
from bench.traffic import traffic
from services.registry import runtime, service_names
from shared.decisions import DecisionStore
from shared.doors.gunicorn import GUNICORN_CONFIG, gunicorn_command
from shared.settings import Settings
from tests.fixtures.services import RunningServer, running_server

LUA = Path(__file__).with_name("wrk_replay.lua")


def prepare_traffic(service: str, settings: Settings, work: Path) -> tuple[Path, str]:
    """Warm the state as a running service would hold it; write the events as request bodies."""
    load = traffic(service, settings, 20_000)
    with runtime(service, settings) as parts:
        load.warm(parts.state)
    bodies = work / "bodies.jsonl"
    bodies.write_text("".join(json.dumps(event) + "\n" for event in load.events))
    return bodies, load.description


def run_wrk(base_url: str, seconds: int, connections: int, bodies: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(LUA), base_url],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "BODIES": str(bodies)},
    ).stdout
    figures = {"requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for percentile in ("50", "90", "99"):
        value, unit = re.search(rf"\s{percentile}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        figures[f"p{percentile}_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = int(errors.group(1)) if errors else 0
    if figures["non_2xx"]:
        raise SystemExit(f"{figures['non_2xx']} requests failed: the figures would mean nothing")
    return figures


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) used so far by a server's process and its children (gunicorn's workers),
    read from /proc: per request, the figure other work on the same cores disturbs least."""
    tick = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for process in (pid, *map(int, children)):
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime and stime, fields 14 and 15 of stat
    return total


def run_measured(server: RunningServer, seconds: int, connections: int, bodies: Path) -> dict[str, float]:
    """wrk's figures, and the server's CPU microseconds a request over the run."""
    cpu_before = server_cpu_seconds(server.process.pid)
    figures = run_wrk(server.base_url, seconds, connections, bodies)
    cpu = server_cpu_seconds(server.process.pid) - cpu_before
    figures["server_cpu_us_per_request"] = round(cpu / (figures["requests_per_second"] * seconds) * 1e6, 1)
    return figures


def decision_counts(base_url: str) -> dict[str, float]:
    """The service's own count of its decisions by kind, from /metrics."""
    counts: dict[str, float] = {}
    for line in requests.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("risk_decisions_total{"):
            outcome = re.search(r'decision="([^"]+)"', line).group(1)  # type: ignore[union-attr]
            counts[outcome] = counts.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def server_model() -> dict[str, object]:
    """How the project's gunicorn configuration serves both endpoints (RISK_HTTP_THREADS applied)."""
    config = runpy.run_path(str(GUNICORN_CONFIG))
    return {name: config.get(name) for name in ("worker_class", "threads", "keepalive")}


def store_size(service: str, url: str) -> dict[str, float]:
    """What the decisions recorded one a request take on disk (documents, rule hits, indexes), measured once
    the server has stopped; per million decisions by proportion."""
    store = DecisionStore(url)
    try:
        recorded = store.count(service)
    finally:
        store.close()
    size = store_bytes(url)
    return {
        "decisions": recorded,
        "bytes": size,
        "bytes_per_decision": round(size / recorded, 1),
        "gib_per_million_decisions": round(size / recorded * 1e6 / 2**30, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", choices=service_names(), default="fraud")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    add_decision_store_option(parser)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    work = workdir()
    with decision_store_url(work, args.decisions) as decisions_url:
        run(args, work, bench_settings(work, args.service, decisions_url))


def run(args: argparse.Namespace, work: Path, settings: Settings) -> None:
    bodies, description = prepare_traffic(args.service, settings, work)
    results: dict[str, object] = {"service": args.service, "decision_store": args.decisions, "traffic": description}
    load_average = {"start": [round(figure, 2) for figure in os.getloadavg()]}  # others on the cores skew both runs
    with running_server(args.service, settings, work / "service.log", workers=2) as server:
        results["service"] = run_measured(server, args.seconds, args.connections, bodies)
        decisions = decision_counts(server.base_url)
    if args.decisions != "none":
        results["store_size"] = store_size(args.service, settings.decisions_url)
    bare = gunicorn_command(f"bench.bare_app:create_app({args.service!r})")
    with running_server(args.service, settings, work / "bare.log", workers=2, command=bare) as server:
        results["bare_flask_model"] = run_measured(server, args.seconds, args.connections, bodies)
    results["service_decisions"] = decisions
    load_average["end"] = [round(figure, 2) for figure in os.getloadavg()]
    results["load_average"] = load_average
    service, bare_figures = results["service"], results["bare_flask_model"]
    assert isinstance(service, dict) and isinstance(bare_figures, dict)
    results["service_to_bare_ratio"] = round(service["requests_per_second"] / bare_figures["requests_per_second"], 3)
    results["service_to_bare_cpu_ratio"] = round(  # bare CPU a request over the service's: a ratio load skews less
        bare_figures["server_cpu_us_per_request"] / service["server_cpu_us_per_request"], 3
    )
    record(
        result_name("http_throughput", args.service, args.decisions),
        {
            "workers": 2,
            **server_model(),
            "connections": args.connections,
            "seconds": args.seconds,
            "load_generator": "wrk, 1 thread, same machine",
            **results,
        },
    )


if __name__ == "__main__":
    main()
