"""Rulesets: analysts' YAML that turns a model score into a decision, with the rules that hit.

Conditions are ZEN expressions (GoRules' expression language, evaluated in Rust by zen-engine): no
parser of ours. All conditions of a ruleset are compiled into one list expression and evaluated once
per event, which is several times cheaper than one call per rule. See shared/rules/README.md.

    service: fraud
    version: "2026.11.1"
    outcomes: [approve, review, decline]     # least to most severe; the most severe hit wins
    default: approve                         # when no rule hits
    explain_from_score: 0.2                  # optional: events scored at or above get reasons before the rules
    bands:                                   # risk band: the first whose min_score the score reaches
      - {name: high, min_score: 0.6}
      - {name: low, min_score: 0.0}
    rules:
      - id: very_high_score
        description: The model is confident
        when: "score >= 0.9"
        then: decline
        reason: "fraud score {score} is at or above 0.9"
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
import zen

from shared.errors import InvalidRuleset

RULE_ID = re.compile(r"^[a-z0-9_]+$")
TOP_KEYS = {"service", "version", "outcomes", "default", "explain_from_score", "bands", "rules"}
REQUIRED_TOP_KEYS = {"service", "version", "outcomes", "default", "bands", "rules"}
RULE_KEYS = {"id", "description", "when", "then", "reason"}
REQUIRED_RULE_KEYS = {"id", "when", "then"}


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    when: str
    then: str
    reason: str | None


@dataclass(frozen=True)
class Band:
    name: str
    min_score: float


@dataclass(frozen=True)
class RuleHit:
    rule_id: str
    outcome: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    outcome: str
    band: str
    hits: tuple[RuleHit, ...]


@dataclass(frozen=True)
class Ruleset:
    service: str
    version: str
    outcomes: tuple[str, ...]
    default: str
    explain_from_score: float | None
    bands: tuple[Band, ...]
    rules: tuple[Rule, ...]
    digest: str
    _expression: Any  # the compiled list of every condition: one call per event
    _conditions: tuple[Any, ...]  # each condition alone: used only when the list fails on an event

    @classmethod
    def load(cls, path: Path, *, sample_context: Mapping[str, Any] | None = None) -> Ruleset:
        return cls.from_yaml(Path(path).read_text(), source=str(path), sample_context=sample_context)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<string>", sample_context: Mapping[str, Any] | None = None) -> Ruleset:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise InvalidRuleset(source, [f"not valid YAML{where}: {getattr(error, 'problem', error)}"]) from None
        problems = _check_document(document)
        if problems:
            raise InvalidRuleset(source, problems)
        rules = tuple(
            Rule(id=r["id"], description=str(r.get("description", "")), when=r["when"], then=r["then"],
                 reason=r.get("reason"))
            for r in document["rules"]
        )
        problems = [p for rule in rules for p in _check_expression(rule)]
        if problems:
            raise InvalidRuleset(source, problems)
        expression = zen.compile_expression("[" + ", ".join(f"({r.when})" for r in rules) + "]") if rules else None
        conditions = tuple(zen.compile_expression(r.when) for r in rules)
        ruleset = cls(
            service=str(document["service"]),
            version=str(document["version"]),
            outcomes=tuple(document["outcomes"]),
            default=document["default"],
            explain_from_score=(None if document.get("explain_from_score") is None
                                else float(document["explain_from_score"])),
            bands=tuple(Band(str(b["name"]), float(b["min_score"])) for b in document["bands"]),
            rules=rules,
            digest="sha256:" + hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest(),
            _expression=expression,
            _conditions=conditions,
        )
        if sample_context is not None:
            problems = ruleset._check_against(sample_context)
            if problems:
                raise InvalidRuleset(source, problems)
        return ruleset

    def band_for(self, score: float) -> str:
        for band in self.bands:
            if score >= band.min_score:
                return band.name
        return self.bands[-1].name

    def evaluate(self, context: Mapping[str, Any]) -> Verdict:
        results = self._results(dict(context))
        hits = tuple(
            RuleHit(rule.id, rule.then, render_reason(rule, context))
            for rule, hit in zip(self.rules, results, strict=True)
            if hit is True
        )
        outcome = max((h.outcome for h in hits), key=self.outcomes.index, default=self.default)
        band = context.get("band") or self.band_for(float(context.get("score", 0.0)))
        return Verdict(outcome=outcome, band=str(band), hits=hits)

    def _results(self, context: dict[str, Any]) -> list[Any]:
        """Every condition's value. ZEN raises on some operations over null (a field this event lacks):
        then each condition is evaluated alone, and one that fails counts as not hit."""
        if self._expression is None:
            return []
        try:
            return list(self._expression.evaluate(context))
        except Exception:  # zen raises plain Exceptions carrying its VM error
            return [_value_or_none(condition, context) for condition in self._conditions]

    def evaluate_many(self, contexts: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        return [self.evaluate(context) for context in contexts]

    def _check_against(self, context: Mapping[str, Any]) -> list[str]:
        """Every condition must give a boolean and every reason resolve on a context of the real shape:
        a misspelt field makes ZEN return null, which would silently never hit."""
        problems = []
        for rule in self.rules:
            hint = f"is a field name misspelt? (fields: {', '.join(_field_paths(context))})"
            try:
                value = zen.evaluate_expression(rule.when, dict(context))
            except Exception as error:  # zen raises plain exceptions on type errors
                problems.append(f"rule {rule.id}: `{rule.when}` fails on a sample event ({_zen_message(error)}): {hint}")
                continue
            if not isinstance(value, bool):
                problems.append(
                    f"rule {rule.id}: `{rule.when}` gives {json.dumps(value)} instead of true/false on a sample "
                    f"event: {hint}"
                )
            for placeholder in _placeholders(rule.reason):
                if _lookup(context, placeholder) is _MISSING:
                    problems.append(f"rule {rule.id}: reason names {{{placeholder}}}, which is not in the context")
        return problems


def _check_document(document: Any) -> list[str]:
    if not isinstance(document, dict):
        return ["the ruleset must be a YAML mapping with service, version, outcomes, default, bands and rules"]
    problems = [f"unknown key {k!r}" for k in document if k not in TOP_KEYS]
    problems += [f"missing key {k!r}" for k in sorted(REQUIRED_TOP_KEYS - set(document))]
    if problems:
        return problems
    if not isinstance(document["version"], str | int | float) or not str(document["version"]).strip():
        problems.append("version must be a non-empty string")
    outcomes = document["outcomes"]
    if not isinstance(outcomes, list) or not outcomes or not all(isinstance(o, str) for o in outcomes):
        return [*problems, "outcomes must be a non-empty list of names"]
    if len(set(outcomes)) != len(outcomes):
        problems.append("outcomes are listed twice")
    if document["default"] not in outcomes:
        problems.append(f"default {document['default']!r} is not one of the outcomes {outcomes}")
    explain = document.get("explain_from_score")
    if explain is not None and (not isinstance(explain, int | float) or not 0 <= explain <= 1):
        problems.append("explain_from_score must be a number from 0 to 1")
    problems += _check_bands(document["bands"])
    rules = document["rules"]
    if not isinstance(rules, list):
        return [*problems, "rules must be a list"]
    seen: set[str] = set()
    for position, rule in enumerate(rules, start=1):
        if not isinstance(rule, dict):
            problems.append(f"rule #{position} must be a mapping")
            continue
        name = f"rule {rule.get('id', f'#{position}')}"
        problems += [f"{name}: unknown key {k!r}" for k in rule if k not in RULE_KEYS]
        problems += [f"{name}: missing key {k!r}" for k in sorted(REQUIRED_RULE_KEYS - set(rule))]
        rule_id = rule.get("id")
        if rule_id is not None and (not isinstance(rule_id, str) or not RULE_ID.match(rule_id)):
            problems.append(f"{name}: id must match [a-z0-9_]+")
        if rule_id in seen:
            problems.append(f"{name}: the id is used twice")
        seen.add(rule_id)
        if "then" in rule and rule["then"] not in outcomes:
            problems.append(f"{name}: then {rule['then']!r} is not one of the outcomes {outcomes}")
        if "when" in rule and (not isinstance(rule["when"], str) or not rule["when"].strip()):
            problems.append(f"{name}: when must be a non-empty expression")
        if rule.get("reason") is not None and not isinstance(rule["reason"], str):
            problems.append(f"{name}: reason must be text")
        elif rule.get("reason"):
            try:
                _placeholders(rule["reason"])
            except ValueError as error:
                problems.append(f"{name}: reason template: {error}")
    return problems


def _check_bands(bands: Any) -> list[str]:
    if not isinstance(bands, list) or not bands:
        return ["bands must be a non-empty list of {name, min_score}"]
    problems = []
    floors = []
    for band in bands:
        if not isinstance(band, dict) or set(band) != {"name", "min_score"} or not isinstance(band["min_score"], int | float):
            problems.append(f"band {band!r} must be {{name, min_score}} with a number")
            continue
        floors.append(float(band["min_score"]))
    if floors and floors != sorted(floors, reverse=True):
        problems.append("bands must be listed from the highest min_score down")
    if floors and floors[-1] > 0:
        problems.append("the last band must start at min_score 0 so every score has a band")
    return problems


def _check_expression(rule: Rule) -> list[str]:
    outcome = zen.validate_expression(rule.when)
    if outcome is None:
        return []
    message = outcome.get("source", outcome) if isinstance(outcome, dict) else outcome
    return [f"rule {rule.id}: `{rule.when}` is not a valid expression: {message}"]


def _value_or_none(condition: Any, context: dict[str, Any]) -> Any:
    try:
        return condition.evaluate(context)
    except Exception:
        return None


def _zen_message(error: Exception) -> str:
    """ZEN's message without the Rust backtrace it appends."""
    first = str(error).split("\n", 1)[0]
    try:
        return str(json.loads(first).get("source", first))
    except (json.JSONDecodeError, AttributeError):
        return first


# ------------------------------------------------------------------ reason templates

_MISSING = object()


def _placeholders(template: str | None) -> list[str]:
    """Field paths named in a reason template; format specs and conversions are refused."""
    if not template:
        return []
    names = []
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if spec or conversion:
            raise ValueError(f"{{{field}}}: format specs and conversions are not allowed")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", field):
            raise ValueError(f"{{{field}}} is not a field path like features.name")
        names.append(field)
    return names


def _lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _readable(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def render_reason(rule: Rule, context: Mapping[str, Any]) -> str:
    if not rule.reason:
        return rule.description or rule.id
    out = []
    for literal, field, _, _ in string.Formatter().parse(rule.reason):
        out.append(literal)
        if field is not None:
            value = _lookup(context, field)
            out.append("?" if value is _MISSING else _readable(value))
    return "".join(out)


def _field_paths(context: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in context.items():
        path = f"{prefix}{key}"
        paths += _field_paths(value, f"{path}.") if isinstance(value, Mapping) else [path]
    return paths
