"""gunicorn settings for `risk serve SERVICE` and the desk; bind and workers come from the CLI's flags or the
environment (RISK_HTTP_BIND, RISK_HTTP_WORKERS), threads per worker from RISK_HTTP_THREADS."""

import os

from prometheus_client import multiprocess

bind = os.environ.get("RISK_HTTP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("RISK_HTTP_WORKERS", "2"))
# Threaded workers: a request waiting on a store (PostgreSQL answers a commit once its WAL is flushed) leaves
# the worker's CPU to its other requests, and the commits of concurrent requests share a flush; a client's
# connection is kept open between its requests (a sync worker closes it after each one).
worker_class = "gthread"
threads = int(os.environ.get("RISK_HTTP_THREADS", "4"))
# A listening socket per worker (SO_REUSEPORT), among which the kernel spreads new connections: on one shared
# socket, the worker that wakes first accepts a burst of them and keeps them alive, so a client's 8
# connections could all land on one worker and leave the other idle. A worker that dies drops the
# connections still queued on its socket (the others' are unaffected).
reuse_port = True
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
