"""Who may do what in the desk. Every view says which action it is (`@requires(ACTION)`); a view that says
nothing is for admins only, so a page added without thought is closed, not open.

Roles come from RISK_API_KEYS (`name:key:role+role`), read at every request: removing an identity's entry (or
a role) takes effect at its next click, whatever its session says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from flask import abort, current_app, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from shared.settings import ApiIdentity, Settings

OPEN, VIEW_CASES, WORK_CASES, ADMINISTER = "open", "view_cases", "work_cases", "administer"

# The roles each action needs ("open" needs no sign-in: the sign-in page, health, static files).
DESK_ALLOWED: Final[dict[str, frozenset[str]]] = {
    VIEW_CASES: frozenset({"viewer", "analyst", "approver", "admin"}),
    WORK_CASES: frozenset({"analyst", "admin"}),
    ADMINISTER: frozenset({"admin"}),
}
ACTION_WORDS: Final[dict[str, str]] = {
    VIEW_CASES: "read the queue and the cases",
    WORK_CASES: "assign, comment on and resolve cases",
    ADMINISTER: "use a page no role is named for",
}

View = TypeVar("View", bound=Callable[..., Any])


def requires(action: str) -> Callable[[View], View]:
    """Mark a view with the action it is (OPEN, or a key of DESK_ALLOWED)."""
    if action != OPEN and action not in DESK_ALLOWED:
        raise ValueError(f"unknown desk action {action!r}")

    def marked(view: View) -> View:
        view.desk_action = action  # type: ignore[attr-defined]
        return view

    return marked


def identity_named(settings: Settings, name: object) -> ApiIdentity | None:
    return next((i for i in settings.identities if i.name == name), None) if isinstance(name, str) else None


def may(identity: ApiIdentity, action: str) -> bool:
    return bool(identity.roles & DESK_ALLOWED[action])


def check_access() -> Response | None:
    """Before every request: the signed-in identity (g.identity) and its right to the view."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or request.endpoint == "static":
        return None  # a 404 or 405 follows, or a static file
    action = getattr(view, "desk_action", ADMINISTER)
    settings: Settings = current_app.config["RISK_SETTINGS"]
    g.identity = identity_named(settings, session.get("identity"))
    if action == OPEN:
        return None
    if g.identity is None:
        if request.method == "GET":
            return redirect(url_for("auth.sign_in_form", next=request.full_path.rstrip("?")))
        abort(401)
    if not may(g.identity, action):
        needed = " or ".join(sorted(DESK_ALLOWED[action]))
        abort(403, f"{g.identity.name} may not {ACTION_WORDS[action]}: that needs the role {needed}")
    return None
