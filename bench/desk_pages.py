"""The desk's pages at 100,000 open cases: the queue (first page, filtered, deep in the pages) and a case page,
served by `risk desk` under gunicorn (2 workers) over a decision store holding those cases and as many
decisions that did not queue. Median and 95th percentile of sequential requests, signed in.

    python -m bench.desk_pages [--open-cases 100000] [--requests 60] [--decisions sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.common import add_decision_store_option, decision_store_url, record, workdir
from services.desk.app import APP_SPEC, desk_environment
from shared.decisions import DecisionStore, NewDecision
from shared.doors.gunicorn import gunicorn_command
from shared.events.broker import free_port
from shared.settings import Settings

KEY = "bench-desk-key-0123456789"
QUEUES = {"fraud": ("review", "decline"), "claims": ("refer",), "disease": ("follow_up", "urgent")}
DEFAULTS = {"fraud": "approve", "claims": "accept", "disease": "routine"}


def decision(n: int, service: str, outcome: str, at: datetime) -> NewDecision:
    """A decision of the size the services record (a document with reasons and hits, the event, features)."""
    event_id = f"{service[:2]}{n:08d}"
    score = (n * 7919 % 10_000) / 10_000
    hits = [{"rule_id": f"rule_{n % 5}", "outcome": outcome, "reason": f"a reason for {event_id} in words"}]
    document = {
        "event_id": event_id,
        "decision_id": f"00000000-0000-5000-8000-{n:012d}",
        "entity_id": f"entity{n % 20_000}",
        "service": service,
        "score": score,
        "risk_band": ("low", "medium", "high")[n % 3],
        "decision": outcome,
        "reasons": [
            {"feature": f"feature_{k}", "value": k * 1.5, "contribution": 0.1 * k, "text": f"feature {k} is high"}
            for k in range(3)
        ],
        "rule_hits": hits,
        "model": {"name": f"{service}-model", "version": "20261101T000000000000-aaaaaaaa"},
        "feature_set": {"name": service, "version": "1"},
        "ruleset_version": "2026.11.1",
        "input_fingerprint": f"sha256:{n:064x}",
        "scored_at": at.isoformat(),
        "latency_ms": 2.5,
    }
    return NewDecision(
        service=service,
        event_id=event_id,
        decision_id=document["decision_id"],
        entity_id=document["entity_id"],
        decision=outcome,
        score=score,
        risk_band=document["risk_band"],
        model_version="20261101T000000000000-aaaaaaaa",
        ruleset_version="2026.11.1",
        input_fingerprint=document["input_fingerprint"],
        event_time=at - timedelta(seconds=1),
        scored_at=at,
        rule_ids=tuple(hit["rule_id"] for hit in hits),
        document=document,
        event={"id": event_id, "amount": n % 500 + 0.5, "entity": document["entity_id"], "note": "x" * 40},
        features={f"feature_{k}": k * 1.5 for k in range(16)},
        door="stream",
    )


def fill(store: DecisionStore, open_cases: int) -> None:
    """`open_cases` queued decisions over the last 30 days, the same number that did not queue."""
    now = datetime.now(UTC)
    services = list(QUEUES)
    batch: list[NewDecision] = []
    for n in range(2 * open_cases):
        service = services[n % 3]
        queued = n % 2 == 0
        outcome = QUEUES[service][n % len(QUEUES[service])] if queued else DEFAULTS[service]
        batch.append(decision(n, service, outcome, now - timedelta(seconds=30 * 86_400 * (1 - n / (2 * open_cases)))))
        if len(batch) == 2000:
            store.record(batch)
            batch = []
    store.record(batch)


@contextmanager
def serve(settings: Settings, folder: Path) -> Iterator[str]:
    """`risk desk` under gunicorn (2 workers) on a free port, for the block; its address."""
    port = free_port()
    env = {
        **desk_environment(settings, "127.0.0.1", port, 2),
        "RISK_DECISIONS_URL": settings.decisions_url,
        "RISK_STATE_URL": settings.state_url,
        "RISK_CONTROL_DIR": str(settings.control_dir),
        "RISK_MODEL_DIR": str(settings.model_dir),
        "RISK_API_KEYS": f"bench:{KEY}:analyst",
        "RISK_LOG_LEVEL": "INFO",
    }
    with (folder / "desk.log").open("w") as log:
        server = subprocess.Popen(gunicorn_command(APP_SPEC), env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"{base}/healthz", timeout=5).ok:
                        break
                except requests.RequestException:
                    time.sleep(0.3)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


def signed_in(base: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{base}/signin").text
    token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    session.post(f"{base}/signin", data={"key": KEY, "csrf_token": token}).raise_for_status()
    return session


def timed(get: Callable[[], requests.Response], count: int) -> dict[str, float]:
    """Median and 95th percentile in milliseconds of `count` sequential requests (after two warm-ups)."""
    for _ in range(2):
        get().raise_for_status()
    took = []
    for _ in range(count):
        started = time.perf_counter()
        get().raise_for_status()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return {
        "median_ms": round(statistics.median(took), 1),
        "p95_ms": round(took[int(0.95 * (len(took) - 1))], 1),
        "requests": count,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-cases", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    add_decision_store_option(parser)
    args = parser.parse_args()
    folder = workdir()
    with decision_store_url(folder, args.decisions) as url:
        settings = Settings.from_env(
            {},
            decisions_url=url,
            state_url=f"sqlite:///{folder / 'state.sqlite3'}",
            control_dir=folder / "control",
            model_dir=folder / "models",
        )
        store = DecisionStore(url)
        started = time.perf_counter()
        fill(store, args.open_cases)
        filled_s = time.perf_counter() - started
        started = time.perf_counter()
        now = datetime.now(UTC)
        opened = sum(store.sync_cases(s, {o: i + 1 for i, o in enumerate(q)}, now) for s, q in QUEUES.items())
        first_sync_s = time.perf_counter() - started
        store.close()
        with serve(settings, folder) as base:
            session = signed_in(base)
            first = session.get(f"{base}/queue").text
            deep_cursor = _cursor_after(session, base, pages_deep=20)
            case_id = first.split('href="/cases/', 1)[1].split('"', 1)[0]
            figures: dict[str, Any] = {
                "queue_first_page": timed(lambda: session.get(f"{base}/queue"), args.requests),
                "queue_filtered_claims_refer": timed(
                    lambda: session.get(f"{base}/queue", params={"service": "claims", "outcome": "refer"}),
                    args.requests,
                ),
                "queue_filtered_by_rule_and_band": timed(
                    lambda: session.get(f"{base}/queue", params={"rule": "rule_3", "band": "high"}), args.requests
                ),
                "queue_page_21": timed(
                    lambda: session.get(f"{base}/queue", params={"cursor": deep_cursor}), args.requests
                ),
                "case_page": timed(lambda: session.get(f"{base}/cases/{case_id}"), args.requests),
            }
    record(
        f"desk_pages{'' if args.decisions == 'sqlite' else '_' + args.decisions}",
        {
            "decision_store": args.decisions,
            "open_cases": opened,
            "decisions": 2 * args.open_cases,
            "fill_seconds": round(filled_s, 1),
            "first_sync_seconds": round(first_sync_s, 2),
            "server": "risk desk under gunicorn, 2 sync workers, loopback, one client, sequential requests",
            # The machine is shared: its load while the pages were measured says how far to trust the figures.
            "load_average_1m_after": round(os.getloadavg()[0], 1),
            "targets_ms": {"queue_median": 300, "case_median": 200},
            "pages": figures,
        },
    )
    return 0


def _cursor_after(session: requests.Session, base: str, pages_deep: int) -> str:
    """The cursor of page `pages_deep` + 1, followed link by link as a reader would."""
    path = "/queue"
    for _ in range(pages_deep):
        html = session.get(f"{base}{path}").text
        path = html.split('rel="next"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    return path.split("cursor=", 1)[1]


if __name__ == "__main__":
    sys.exit(main())
