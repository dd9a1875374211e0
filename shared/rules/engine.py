"""Rulesets and their evaluation: a model score and its context in, a decision with the rules that hit out.

The YAML format is documented in `shared/rules/__init__.py` and `shared/rules/README.md`. Loading checks
everything (`shared.rules.checks`) and raises `InvalidRulesetError` with every problem; evaluation never raises
for an odd event. A rule that cannot be evaluated on an event is never read as false: it counts as a hit
with the ruleset's `on_error` outcome (else its own), the verdict lists it among its `errors`, and it is
logged and counted (`risk_rule_errors_total`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shared.errors import InvalidRulesetError
from shared.logging import get_logger
from shared.metrics import RULE_ERRORS
from shared.rules import checks, references, templates
from shared.rules.conditions import ConditionFailure, Conditions
from shared.rules.context import ContextFields
from shared.rules.lists import CONTEXT_KEY, NO_LISTS, ListProbe, ListsInForce, named_lists, probes

_log = get_logger("rules")
LOG_EVERY_SECONDS = 60.0
"""A rule failing on every event would otherwise write a line per event: its first failure is logged, then
at most one line a minute with the count since (the counter and each decision still record every one)."""
_last_logged: dict[tuple[str, str], tuple[float, int]] = {}  # (service, rule) -> (when logged, failures since)
_last_logged_lock = threading.Lock()


@dataclass(frozen=True)
class Rule:
    """One analyst rule: when the ZEN condition `when` is true, the event gets at least outcome `then`."""

    id: str
    description: str
    when: str
    then: str
    reason: str | None


@dataclass(frozen=True)
class Band:
    """A risk band: scores at or above `min_score` (and below the band above) belong to it."""

    name: str
    min_score: float


@dataclass(frozen=True)
class RuleHit:
    """A rule that hit one event, with its reason rendered on that event."""

    rule_id: str
    outcome: str
    reason: str


@dataclass(frozen=True)
class RuleError:
    """A rule that could not be evaluated on one event, with ZEN's message (which names no value)."""

    rule_id: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """The decision for one event: the most severe outcome of the hits (or the default), in rule order.
    `errors` names the rules that could not be evaluated; each is also among the hits, with the ruleset's
    `on_error` outcome (else its own `then`)."""

    outcome: str
    band: str
    hits: tuple[RuleHit, ...]
    errors: tuple[RuleError, ...] = ()


@dataclass(frozen=True)
class Ruleset:
    """A loaded, checked ruleset. Immutable: a change is a new file, a new load, a new digest.

    Build one with `from_yaml` or `load`, which check the document; the constructor itself only computes
    the digest and compiles the conditions and reason templates, once.
    """

    service: str
    version: str
    outcomes: tuple[str, ...]
    default: str
    explain_from_score: float | None
    bands: tuple[Band, ...]
    rules: tuple[Rule, ...]
    on_error: str | None = None  # the outcome of a rule that cannot be evaluated; None: the rule's own `then`
    queue: tuple[str, ...] = ()  # the outcomes that need a person: their decisions go to the desk's queue
    # The allow/deny/watch lists in force, which the control plane changes apart from the ruleset: not part
    # of its content or digest (`with_lists` gives the same ruleset over other lists).
    lists: ListsInForce = field(default=NO_LISTS, repr=False, compare=False)
    digest: str = field(init=False)
    _conditions: Conditions = field(init=False, repr=False, compare=False)
    _reasons: tuple[templates.Template | None, ...] = field(init=False, repr=False, compare=False)
    _list_probes: tuple[ListProbe, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", _digest(self))
        object.__setattr__(self, "_conditions", Conditions(tuple(rule.when for rule in self.rules)))
        object.__setattr__(
            self, "_reasons", tuple(templates.Template(rule.reason) if rule.reason else None for rule in self.rules)
        )
        object.__setattr__(self, "_list_probes", probes(self.lists_named(), self.lists))

    def with_lists(self, lists: ListsInForce) -> Ruleset:
        """The same ruleset (version, digest, rules) looking events up in `lists`."""
        return replace(self, lists=lists)

    def lists_named(self) -> frozenset[str]:
        """The lists this ruleset's conditions and reasons read (only these are looked up per event)."""
        paths = [reference.path for rule in self.rules for reference in references.references(rule.when)]
        reasons = [rule.reason for rule in self.rules if rule.reason]
        paths += [tuple(path.split(".")) for reason in reasons for path in templates.placeholders(reason)]
        return named_lists(paths, self.lists.lists)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle and deep-copy by content (compiled ZEN expressions cannot be pickled): the copy recompiles,
        so a ruleset can be sent to worker processes."""
        return (
            type(self),
            (
                self.service,
                self.version,
                self.outcomes,
                self.default,
                self.explain_from_score,
                self.bands,
                self.rules,
                self.on_error,
                self.queue,
                self.lists,
            ),
        )

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_yaml(
        cls,
        text: str,
        *,
        source: str = "<string>",
        sample_context: Mapping[str, Any] | None = None,
        context_fields: ContextFields | None = None,
    ) -> Ruleset:
        """A checked ruleset from YAML text, or InvalidRulesetError(source, problems) listing every problem.
        Pass `context_fields` (every field the context can have) to refuse conditions and reasons naming
        any other field, wherever it stands; without it, the shape of `sample_context` is used. Pass
        `sample_context` (a context of the real shape) to also catch conditions that do not give true or
        false on it (`score * 2`)."""
        document, problems = checks.parse_yaml(text)
        if not problems:
            problems = checks.document_problems(document, sample_context, context_fields)
        if problems:
            raise InvalidRulesetError(source, problems)
        return cls._from_document(document)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        sample_context: Mapping[str, Any] | None = None,
        context_fields: ContextFields | None = None,
    ) -> Ruleset:
        """`from_yaml` on a file, naming the file in every problem; an unreadable file is a problem too."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidRulesetError(str(path), [f"cannot be read: {error}"]) from None
        return cls.from_yaml(text, source=str(path), sample_context=sample_context, context_fields=context_fields)

    @classmethod
    def _from_document(cls, document: Mapping[str, Any]) -> Ruleset:
        """The ruleset of a document that passed the checks (so every key and type is known good)."""
        explain = document.get("explain_from_score")
        return cls(
            service=document["service"],
            version=document["version"],
            outcomes=tuple(document["outcomes"]),
            default=document["default"],
            explain_from_score=None if explain is None else float(explain),
            bands=tuple(Band(band["name"], float(band["min_score"])) for band in document["bands"]),
            rules=tuple(
                Rule(
                    id=rule["id"],
                    description=rule.get("description") or "",
                    when=rule["when"],
                    then=rule["then"],
                    reason=rule.get("reason"),
                )
                for rule in document["rules"]
            ),
            on_error=document.get("on_error"),
            queue=tuple(document.get("queue") or ()),
        )

    # ------------------------------------------------------------------ evaluation

    def band_for(self, score: float) -> str:
        """The first band from the top whose min_score the score reaches; the lowest band for anything
        below every threshold (or NaN), so every score has a band."""
        for band in self.bands:
            if score >= band.min_score:
                return band.name
        return self.bands[-1].name

    def evaluate(self, context: Mapping[str, Any]) -> Verdict:
        """The verdict for one event's context: one ZEN call for all conditions. A condition giving true
        hits, false does not; one that fails or gives anything else (null, a number) could not be
        evaluated: it hits with the `on_error` outcome (else its own), is listed in the verdict's errors,
        logged and counted. Never raises for the event. The lists the rules name are looked up first, by
        set membership, and reach ZEN as one boolean each (`lists.deny_cards`)."""
        context = self._with_lists(context)
        return self._verdict(context, self._conditions.values(context))

    def verdict_of(self, context: Mapping[str, Any], values: Sequence[Any]) -> Verdict:
        """The verdict `evaluate` gives a context whose conditions' values (in rule order) were found
        elsewhere: the batch engine evaluates the conditions of many events in one ZEN call."""
        return self._verdict(self._with_lists(context), values)

    def _with_lists(self, context: Mapping[str, Any]) -> Mapping[str, Any]:
        if not self._list_probes:
            return context
        event = context.get("event") or {}
        return {**context, CONTEXT_KEY: {probe.name: probe.flag(event) for probe in self._list_probes}}

    def _verdict(self, context: Mapping[str, Any], values: Sequence[Any]) -> Verdict:
        hits: list[RuleHit] = []
        errors: list[RuleError] = []
        for rule, reason, value in zip(self.rules, self._reasons, values, strict=True):
            if value is True:
                hits.append(RuleHit(rule.id, rule.then, _reason(rule, reason, context)))
            elif value is not False:
                error = RuleError(rule.id, _failure_text(value))
                outcome = self.on_error or rule.then
                errors.append(error)
                text = f"could not be evaluated ({error.message}), so counts as {outcome}"
                hits.append(RuleHit(rule.id, outcome, text))
        if errors:
            self._report(errors)
        found = tuple(hits)
        return Verdict(outcome=self._most_severe(found), band=self._band_of(context), hits=found, errors=tuple(errors))

    def _report(self, errors: Sequence[RuleError]) -> None:
        """Count every failure by rule; log a rule's failure when it has not been logged for a minute,
        with how many went unlogged since. ZEN's messages name operations and types, never values, so
        nothing personal is logged."""
        now = time.monotonic()
        for error in errors:
            RULE_ERRORS.labels(self.service, error.rule_id).inc()
            key = (self.service, error.rule_id)
            with _last_logged_lock:
                logged_at, since = _last_logged.get(key, (-math.inf, 0))
                due = now - logged_at >= LOG_EVERY_SECONDS
                _last_logged[key] = (now, 0) if due else (logged_at, since + 1)
            if due:
                _log.warning(
                    "rule_not_evaluated",
                    service=self.service,
                    ruleset_version=self.version,
                    rule=error.rule_id,
                    error=error.message,
                    outcome=self.on_error or self._then(error.rule_id),
                    unlogged_since_last=since,
                )

    def _then(self, rule_id: str) -> str:
        return next(rule.then for rule in self.rules if rule.id == rule_id)

    def evaluate_many(self, contexts: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        """One verdict per context, in order. A plain loop: one ZEN call over the whole batch costs the
        same per event (handing the contexts to Rust dominates) and would need the conditions rewritten."""
        return [self.evaluate(context) for context in contexts]

    def _most_severe(self, hits: tuple[RuleHit, ...]) -> str:
        """The outcome latest in `outcomes` among the hits, whatever the rule order; the default if none."""
        return max((hit.outcome for hit in hits), key=self.outcomes.index, default=self.default)

    def _band_of(self, context: Mapping[str, Any]) -> str:
        """The band the caller put in the context, else the band of its score, else the lowest band."""
        band = context.get("band")
        if isinstance(band, str):
            return band
        score = context.get("score")
        if isinstance(score, int | float) and not isinstance(score, bool):
            return self.band_for(float(score))
        return self.bands[-1].name


def _failure_text(value: Any) -> str:
    """What went wrong with a condition that gave no boolean: ZEN's error, or the value it gave instead."""
    if isinstance(value, ConditionFailure):
        return value.message
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a text", list: "a list", dict: "a record"}
    kind = "null" if value is None else kinds.get(type(value), type(value).__name__)
    return f"gave {kind} instead of true or false"


def _reason(rule: Rule, template: templates.Template | None, context: Mapping[str, Any]) -> str:
    """The rule's reason rendered on this event, else its description, else its id."""
    if template is not None:
        return template.render(context)
    return rule.description or rule.id


def _digest(ruleset: Ruleset) -> str:
    """sha256 of the canonical content (sorted-key JSON of the normalised values), for audit: comments,
    layout, key order and `0` versus `0.0` do not change it; any change of meaning does."""
    content = {
        "service": ruleset.service,
        "version": ruleset.version,
        "outcomes": list(ruleset.outcomes),
        "default": ruleset.default,
        "explain_from_score": ruleset.explain_from_score,
        "bands": [{"name": band.name, "min_score": band.min_score} for band in ruleset.bands],
        "rules": [
            {"id": r.id, "description": r.description, "when": r.when, "then": r.then, "reason": r.reason}
            for r in ruleset.rules
        ],
    }
    if ruleset.on_error is not None:  # absent from the content otherwise: earlier digests stay the same
        content["on_error"] = ruleset.on_error
    if ruleset.queue:  # likewise
        content["queue"] = list(ruleset.queue)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
