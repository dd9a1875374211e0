"""Server-side sessions in the decision store: the cookie carries only a random token (HttpOnly, SameSite=Lax,
Secure over TLS or when `RISK_DESK_SECURE_COOKIES` says so); the session's values live in the database under
the token's SHA-256, so a cookie cannot be forged or read, and signing out ends the session for good."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from flask import Flask, Request, Response, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from shared.decisions import DecisionStore

COOKIE = "risk_desk_session"
LIFETIME = timedelta(hours=8)  # a working day: then the desk asks for the key again
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


class DeskSession(CallbackDict[str, Any], SessionMixin):
    """A session's values, marked modified on any change; `rotate` asks for a new token (after sign-in) and
    `end` for the session to be forgotten (sign-out)."""

    def __init__(self, values: dict[str, Any] | None = None, token: str | None = None) -> None:
        def changed(_: Any) -> None:
            self.modified = True

        super().__init__(values or {}, changed)
        self.token = token
        self.new = token is None
        self.modified = False
        self.rotating = False
        self.ending = False


class DatabaseSessions(SessionInterface):
    def __init__(self, store: DecisionStore, always_secure: bool) -> None:
        self.store = store
        self.always_secure = always_secure

    def open_session(self, app: Flask, request: Request) -> DeskSession:
        token = request.cookies.get(COOKIE, "")
        if _TOKEN.fullmatch(token):
            values = self.store.load_desk_session(_hashed(token), datetime.now(UTC))
            if values is not None:
                return DeskSession(values, token)
        return DeskSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        desk_session = cast(DeskSession, session)
        now = datetime.now(UTC)
        if desk_session.ending or (desk_session.rotating and desk_session.token is not None):
            if desk_session.token is not None:
                self.store.drop_desk_session(_hashed(desk_session.token), now)
            desk_session.token = None
        if desk_session.ending:
            response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax")
            return
        if not desk_session.modified and desk_session.token is not None:
            return
        if not desk_session.modified and not desk_session:
            return  # nothing worth keeping: no row, no cookie
        token = desk_session.token or secrets.token_urlsafe(32)
        self.store.save_desk_session(_hashed(token), dict(desk_session), now, now + LIFETIME)
        secure = self.always_secure or _request_is_secure()
        response.set_cookie(COOKIE, token, path="/", httponly=True, samesite="Lax", secure=secure)
        response.vary.add("Cookie")


def rotate() -> None:
    """Give the session a new token when the response is sent (a token seen before sign-in never signs in)."""
    cast(DeskSession, session._get_current_object()).rotating = True  # type: ignore[attr-defined]


def end() -> None:
    """Forget the session (its row and its cookie) when the response is sent."""
    desk_session = cast(DeskSession, session._get_current_object())  # type: ignore[attr-defined]
    desk_session.clear()
    desk_session.ending = True


def _request_is_secure() -> bool:
    from flask import request

    return request.is_secure


def _hashed(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
