"""HTTP single-event throughput and latency under gunicorn on loopback: the fraud service against a bare
Flask + CatBoost endpoint on the same model. Needs `wrk` (Debian package `wrk`).

    .venv/bin/python -m bench.http_throughput [--seconds 20] [--connections 8]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import bench_settings, record, workdir
from services.cli import gunicorn_command
from tests.fixtures.services import running_server

LUA = Path(__file__).with_name("wrk_post.lua")


def run_wrk(base_url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(LUA), base_url],
        check=True, capture_output=True, text=True,
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    work = workdir()
    settings = bench_settings(work)
    results = {}
    with running_server("fraud", settings, work / "service.log", workers=2) as server:
        run_wrk(server.base_url, 3, args.connections)  # warm-up
        results["service"] = run_wrk(server.base_url, args.seconds, args.connections)
    bare = gunicorn_command("fraud")[:-1] + ["bench.bare_app:create_app()"]
    with running_server("fraud", settings, work / "bare.log", workers=2, command=bare) as server:
        run_wrk(server.base_url, 3, args.connections)
        results["bare_flask_catboost"] = run_wrk(server.base_url, args.seconds, args.connections)
    results["service_to_bare_ratio"] = round(
        results["service"]["requests_per_second"] / results["bare_flask_catboost"]["requests_per_second"], 3
    )
    record("http_throughput", {"workers": 2, "connections": args.connections, "seconds": args.seconds,
                               "load_generator": "wrk, 1 thread, same machine", **results})


if __name__ == "__main__":
    main()
