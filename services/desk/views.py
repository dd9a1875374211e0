"""The desk's pages: the queue, a case, its actions (assign, comment, resolve) and the quality figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from services.desk.access import VIEW_CASES, WORK_CASES, may, requires
from services.desk.desk import CaseNotOpenError, Desk
from services.desk.resolutions import RESOLUTIONS, resolution, words_of
from shared.decisions import Search
from shared.decisions.cases import MAX_COUNTED, UNASSIGNED, QueueFilter
from shared.errors import InvalidInputError

blueprint = Blueprint("desk", __name__)
PAGE = 50
TIMELINE = 10
MAX_COMMENT = 4000
MAX_FILTER_TEXT = 128


def desk() -> Desk:
    found: Desk = current_app.extensions["risk_desk"]
    return found


@dataclass
class QueueQuery:
    """The queue's filters as the form sent them, and the problems found in them (by field)."""

    values: dict[str, str]
    problems: dict[str, str] = field(default_factory=dict)
    wanted: QueueFilter = field(default_factory=QueueFilter)


FILTER_FIELDS = ("service", "outcome", "rule", "band", "from", "to", "assignee")


def read_queue_query(args: Mapping[str, str], services: tuple[str, ...], me: str) -> QueueQuery:
    values = {name: args.get(name, "").strip() for name in FILTER_FIELDS}
    query = QueueQuery(values)
    for name, text in values.items():
        if len(text) > MAX_FILTER_TEXT:
            query.problems[name] = f"at most {MAX_FILTER_TEXT} characters"
    if values["service"] and values["service"] not in services:
        query.problems["service"] = f"one of {', '.join(services)}"
    since = _day(values["from"], "from", query.problems)
    until = _day(values["to"], "to", query.problems)
    assignee = {"": None, "me": me, "nobody": UNASSIGNED}.get(values["assignee"], values["assignee"])
    if query.problems:
        return query
    query.wanted = QueueFilter(
        service=values["service"] or None,
        decision=values["outcome"] or None,
        rule_id=values["rule"] or None,
        band=values["band"] or None,
        since=since,
        until=until + timedelta(days=1) if until else None,  # "to" includes its whole day
        assignee=assignee,
        limit=PAGE,
        cursor=args.get("cursor") or None,
    )
    return query


def _day(text: str, name: str, problems: dict[str, str]) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    except ValueError:
        problems[name] = "a date as YYYY-MM-DD"
        return None


@blueprint.get("/")
@requires(VIEW_CASES)
def home() -> Response:
    return redirect(url_for("desk.queue"))


@blueprint.get("/queue")
@requires(VIEW_CASES)
def queue() -> tuple[str, int]:
    the_desk = desk()
    the_desk.sync()
    query = read_queue_query(request.args, the_desk.services, g.identity.name)
    page = None
    if not query.problems:
        try:
            page = the_desk.store.queue(query.wanted)
        except InvalidInputError as error:
            query.problems.update({name: "; ".join(texts) for name, texts in error.fields.items()})
    summary = the_desk.store.queue_summary()
    now = datetime.now(UTC)
    chosen: dict[str, Any] = {name: value for name, value in query.values.items() if value}
    next_link = None
    if page is not None and page.next_cursor:
        next_link = url_for("desk.queue", **chosen, cursor=page.next_cursor)
    html = render_template(
        "queue.html",
        query=query,
        page=page,
        summary=summary,
        oldest_age=now - summary.oldest_scored_at if summary.oldest_scored_at else None,
        services=the_desk.services,
        now=now,
        next_link=next_link,
        first_link=url_for("desk.queue", **chosen),
        paged=bool(query.wanted.cursor),
        max_counted=MAX_COUNTED,
    )
    return html, 400 if query.problems else 200


@blueprint.get("/cases/<service>/<event_id>")
@requires(VIEW_CASES)
def case(service: str, event_id: str) -> str:
    the_desk = desk()
    found = the_desk.store.case(service, event_id) if service in the_desk.services else None
    decision = the_desk.store.get(service, event_id) if found else None
    if found is None or decision is None:
        abort(404, f"no case {event_id} in {service}")
    ruleset = the_desk.ruleset(service)
    timeline = the_desk.store.search(service, Search(entity_id=decision.entity_id, limit=TIMELINE)).items
    return render_template(
        "case.html",
        case=found,
        decision=decision,
        document=decision.document,
        rules={rule.id: rule.description for rule in ruleset.rules},
        timeline=timeline,
        outcome=the_desk.store.outcome_of(service, event_id),
        comments=the_desk.store.case_comments(service, event_id),
        resolutions=RESOLUTIONS.get(service, ()),
        resolution_words=words_of(service, found.resolution),
        may_work=may(g.identity, WORK_CASES),
        now=datetime.now(UTC),
    )


@blueprint.post("/cases/<service>/<event_id>/assign")
@requires(WORK_CASES)
def assign(service: str, event_id: str) -> Response:
    _known_service(service)
    try:
        desk().assign(service, event_id, g.identity.name)
    except CaseNotOpenError:
        abort(409, f"case {event_id} is not open: it was resolved, or never queued")
    flash("The case is assigned to you.")
    return redirect(url_for("desk.case", service=service, event_id=event_id))


@blueprint.post("/cases/<service>/<event_id>/comments")
@requires(WORK_CASES)
def comment(service: str, event_id: str) -> Response:
    _known_service(service)
    body = request.form.get("comment", "").strip()
    if not body or len(body) > MAX_COMMENT:
        abort(400, f"comment: write between 1 and {MAX_COMMENT} characters")
    if desk().store.case(service, event_id) is None:
        abort(404, f"no case {event_id} in {service}")
    desk().comment(service, event_id, g.identity.name, body)
    flash("Comment added.")
    return redirect(url_for("desk.case", service=service, event_id=event_id) + "#comments")


@blueprint.post("/cases/<service>/<event_id>/resolve")
@requires(WORK_CASES)
def resolve(service: str, event_id: str) -> Response:
    _known_service(service)
    chosen = resolution(service, request.form.get("resolution", ""))
    if chosen is None:
        names = ", ".join(r.value for r in RESOLUTIONS[service])
        abort(400, f"resolution: one of {names}")
    try:
        resolved = desk().resolve(service, event_id, g.identity.name, chosen)
    except CaseNotOpenError:
        abort(409, f"case {event_id} is not open: it was resolved, or never queued")
    learnt = f" The outcome {chosen.outcome} was {resolved.outcome_status.value}." if resolved.outcome_status else ""
    flash(f"Resolved as {chosen.words}.{learnt}")
    return redirect(url_for("desk.queue"))


@blueprint.get("/quality")
@requires(VIEW_CASES)
def quality() -> str:
    the_desk = desk()
    figures = [
        {
            "service": service,
            "decisions": the_desk.store.count(service),
            "outcomes": the_desk.store.count_outcomes(service),
            "report": the_desk.store.latest_snapshot(service),
        }
        for service in the_desk.services
    ]
    return render_template("quality.html", figures=figures, may_work=may(g.identity, WORK_CASES))


@blueprint.post("/quality/<service>")
@requires(WORK_CASES)
def recompute_quality(service: str) -> Response:
    _known_service(service)
    desk().runtime(service).monitor()
    flash(f"The {service} quality figures were computed again.")
    return redirect(url_for("desk.quality") + f"#{service}")


def _known_service(service: str) -> None:
    if service not in desk().services:
        abort(404, f"no service {service}")


@blueprint.app_template_filter("age")
def age(delta: timedelta | None) -> str:
    """A duration in the largest unit that reads well: 3 d 4 h, 2 h 5 min, 40 s."""
    if delta is None:
        return "none"
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


@blueprint.app_template_filter("moment")
def moment(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@blueprint.app_template_filter("plain")
def plain(value: Any) -> str:
    """A JSON value as a reader sees it (None as an empty cell)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
