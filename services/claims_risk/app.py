"""The claims HTTP app; gunicorn calls `create_app()` in each worker."""

from __future__ import annotations

from flask import Flask

from services.claims_risk.service import DEFINITION
from shared.doors.http import create_scoring_app
from shared.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    return create_scoring_app(DEFINITION, settings)
