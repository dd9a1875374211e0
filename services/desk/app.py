"""The desk's app factory: `create_app()` is what gunicorn serves (`risk desk`), and tests build a fresh one.

Another page joins the desk as a blueprint: add it to BLUEPRINTS (its views marked with `@requires`) and its
link to NAV (endpoint, words); the base template draws the navigation from NAV.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, Response, current_app, g, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from services.desk import auth, lists, views
from services.desk.access import OPEN, check_access, may, requires
from services.desk.desk import Desk
from services.desk.sessions import DatabaseSessions
from shared.doors.gunicorn import serve_environment
from shared.errors import NotReadyError
from shared.logging import configure_logging
from shared.settings import Settings

APP_SPEC = "services.desk.app:create_app()"  # what gunicorn serves for `risk desk`
BLUEPRINTS = (auth.blueprint, views.blueprint, lists.blueprint)
NAV: tuple[tuple[str, str, str], ...] = (  # (endpoint, words, the action it needs)
    ("desk.queue", "Queue", "view_cases"),
    ("desk.quality", "Quality", "view_cases"),
    ("lists.lists_page", "Lists", "view_cases"),
)
MAX_FORM_BYTES = 64 * 1024
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.pseudonym_key)
    desk = Desk(settings)
    app = Flask(__name__, static_folder=str(Path(__file__).with_name("static")))
    app.config.update(
        RISK_SETTINGS=settings,
        # Signs the CSRF tokens only (sessions are server side); all workers of one desk share it.
        SECRET_KEY=settings.desk_secret_key or secrets.token_bytes(32),
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session
        WTF_CSRF_SSL_STRICT=True,
        MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions["risk_desk"] = desk
    app.session_interface = DatabaseSessions(desk.store, settings.desk_secure_cookies)
    CSRFProtect(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.before_request(check_access)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.register_error_handler(HTTPException, _error_page)
    app.register_error_handler(NotReadyError, _not_ready)

    @app.context_processor
    def navigation() -> dict[str, object]:
        identity = g.get("identity")
        links = [(endpoint, words) for endpoint, words, action in NAV if identity is not None and may(identity, action)]
        return {"nav": links, "identity": identity}

    return app


def desk_environment(settings: Settings, host: str, port: int, workers: int) -> dict[str, str]:
    """gunicorn's environment for the desk; without RISK_DESK_SECRET_KEY, one made now, which all the workers
    share (a restart then asks open forms to be reloaded; sessions themselves survive it)."""
    env = serve_environment(host, port, workers)
    if not settings.desk_secret_key:
        env["RISK_DESK_SECRET_KEY"] = secrets.token_urlsafe(32)
    return env


@requires(OPEN)
def healthz() -> dict[str, str]:
    """Alive, and the decision store answers (a 503 from the error handler otherwise)."""
    desk: Desk = current_app.extensions["risk_desk"]
    desk.store.ping()
    return {"status": "ok"}


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"  # case pages hold what only the signed-in may see
    return response


def _csrf_refused(error: CSRFError) -> tuple[str, int]:
    message = "This form did not come from the desk, or it has expired: go back, reload the page and try again."
    return render_template("error.html", status=400, message=message), 400


def _not_ready(error: NotReadyError) -> tuple[str, int]:
    return render_template("error.html", status=503, message=str(error)), 503


def _error_page(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    return render_template("error.html", status=status, message=error.description or error.name), status
