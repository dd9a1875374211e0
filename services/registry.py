"""The one place that knows every service: its name in the CLI, its class, and the gunicorn app factory.

Services are imported when first asked for, so `risk broker` or `risk --help` never loads a model library.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from flask import Flask

from shared.core.service import Service
from shared.runtime import Runtime
from shared.settings import Settings

SERVICES: dict[str, str] = {
    "fraud": "services.fraud_detection.service:FraudService",
    "claims": "services.claims_risk.service:ClaimsService",
    "disease": "services.disease_risk.service:DiseaseService",
}


def service_names() -> list[str]:
    return sorted(SERVICES)


@cache
def service(name: str) -> Service:
    """The service called `name` (one instance per process)."""
    try:
        module, _, cls = SERVICES[name].partition(":")
    except KeyError:
        raise KeyError(f"no service {name!r} (there are: {', '.join(service_names())})") from None
    made: Service = getattr(import_module(module), cls)()
    return made


def runtime(name: str, settings: Settings | None = None) -> Runtime:
    """The composition root for one process of service `name`."""
    return Runtime(service(name), settings or Settings.from_env())


def http_app(name: str) -> Flask:
    """gunicorn's app factory (`services.registry:http_app('fraud')`), called in each worker after fork."""
    from shared.doors.http import create_app

    return create_app(runtime(name), follow_control=True)


def http_app_spec(name: str) -> str:
    """What gunicorn is told to serve for service `name`."""
    return f"services.registry:http_app({name!r})"
