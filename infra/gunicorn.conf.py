"""gunicorn settings for `risk serve SERVICE` and the desk; bind and workers come from the CLI's flags or the
environment (RISK_HTTP_BIND, RISK_HTTP_WORKERS), threads per worker from RISK_HTTP_THREADS."""

import os

from prometheus_client import multiprocess

bind = os.environ.get("RISK_HTTP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("RISK_HTTP_WORKERS", "2"))
# Sync workers by default: on a quiet 2-core machine, threaded workers (4 a worker, keep-alive) served the
# fraud door without a store at 1,643 req/s against 1,858 for sync ones, and the bare endpoint at 4,662
# against 3,766; with PostgreSQL 957 against 835 (bench/results/decision_store_cost.md, 2026-12-04).
# RISK_HTTP_THREADS above 1 runs threaded workers: a request waiting on a store leaves the CPU to the
# worker's other requests, concurrent PostgreSQL commits share a WAL flush, connections are kept alive.
threads = int(os.environ.get("RISK_HTTP_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
# Threaded workers keep connections alive: on one shared socket the worker that wakes first accepts a burst of
# them (a client's 8 connections all landed on one worker, the other idle), so each worker listens on a
# socket of its own (SO_REUSEPORT) and the kernel spreads new connections over them. A worker that dies drops
# the connections still queued on its socket.
reuse_port = threads > 1
# The app and its runtime (Kafka clients, state store, control listener) are built in each worker after
# fork, never in the master: no preloading.
preload_app = False
timeout = 30
graceful_timeout = 20
keepalive = 5
# The app logs one structured line per request; gunicorn's access log would be a second, unmasked one.
accesslog = None
errorlog = "-"
loglevel = "warning"


def child_exit(server, worker):
    """Let the Prometheus multiprocess collector forget a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
