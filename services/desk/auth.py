"""Signing in with an identity that already exists (`name:key` in RISK_API_KEYS): a form takes the key, the
server compares it with every configured key in constant time, and the session (server side) remembers the
identity's name; its roles are read from the settings at every request."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from services.desk import sessions
from services.desk.access import OPEN, requires
from shared.logging import get_logger
from shared.settings import Settings

blueprint = Blueprint("auth", __name__)
_log = get_logger("desk.auth")
MAX_KEY = 512


@blueprint.get("/signin")
@requires(OPEN)
def sign_in_form() -> str:
    return render_template("signin.html", next=_safe_next(request.args.get("next")), problem=None)


@blueprint.post("/signin")
@requires(OPEN)
def sign_in() -> Response | tuple[str, int]:
    settings: Settings = current_app.config["RISK_SETTINGS"]
    presented = request.form.get("key", "")
    target = _safe_next(request.form.get("next"))
    identity = settings.caller(presented) if 0 < len(presented) <= MAX_KEY else None
    if identity is None:
        _log.info("desk_sign_in_refused")
        problem = (
            "That key is not one of this desk's identities."
            if settings.identities
            else ("No identities are configured: set RISK_API_KEYS (name:key:role+role) where the desk runs.")
        )
        return render_template("signin.html", next=target, problem=problem), 401
    sessions.rotate()
    session["identity"] = identity.name
    _log.info("desk_signed_in", identity=identity.name, roles=sorted(identity.roles))
    flash(f"Signed in as {identity.name}.")
    return redirect(target or url_for("desk.queue"))


@blueprint.post("/signout")
@requires(OPEN)
def sign_out() -> Response:
    if g.identity is not None:
        _log.info("desk_signed_out", identity=g.identity.name)
    sessions.end()
    return redirect(url_for("auth.sign_in_form"))


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (never //host or a scheme): signing in must not send anyone elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None
