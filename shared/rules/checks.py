"""Load-time checks of a ruleset document: every problem found in one pass, each naming its rule.

Analysts edit rulesets without a deploy, so a mistake must be refused when the file loads, with all of its
problems at once and in words an analyst can act on, never discovered as a silent non-hit in production.
Each check returns a list of problems (empty when fine); nothing here raises for a bad document.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

from shared.jsonlimits import MAX_NESTING
from shared.rules import templates
from shared.rules.conditions import evaluate_once, syntax_problem, zen_message
from shared.rules.conditions import plain as plain_context
from shared.rules.context import ContextFields, condition_problems, placeholder_problems

TOP_KEYS = ("service", "version", "outcomes", "default", "on_error", "queue", "explain_from_score", "bands", "rules")
OPTIONAL_TOP_KEYS = frozenset({"on_error", "queue", "explain_from_score"})
RULE_KEYS = ("id", "description", "when", "then", "reason")
OPTIONAL_RULE_KEYS = frozenset({"description", "reason"})
BAND_KEYS = ("name", "min_score")
RULE_ID = re.compile(r"[a-z0-9_]+")


# ------------------------------------------------------------------ YAML


class _RefusedYAMLError(yaml.MarkedYAMLError):
    """Valid YAML that a ruleset may not use: aliases, anchors, nesting deeper than MAX_NESTING."""


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load, except that:
    - a key given twice in one mapping is an error: plain YAML keeps the last one silently, so a rule with
      two `when:` lines would quietly test only the second;
    - anchors and aliases are refused: a ruleset has no use for them, and a few hundred bytes of aliases
      ("billion laughs") expand into a document of billions of nodes;
    - nesting is bounded (MAX_NESTING): the composer recurses once per level, so a document nested
      50,000 deep would raise RecursionError instead of a problem an analyst can read."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _refused(f"an alias (*{event.anchor}) is not allowed in a ruleset: write the value out", event)
        if getattr(event, "anchor", None) is not None:
            raise _refused(f"an anchor (&{event.anchor}) is not allowed in a ruleset: write the value out", event)
        if self._depth >= MAX_NESTING:
            raise _refused(f"the ruleset nests more than {MAX_NESTING} levels deep", event)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _refused(problem: str, event: yaml.Event) -> _RefusedYAMLError:
    mark = event.start_mark if isinstance(event.start_mark, yaml.error.Mark) else None
    return _RefusedYAMLError(problem=problem, problem_mark=mark)


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    """The SafeLoader mapping constructor, after refusing duplicate keys with the line of the second."""
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: the SafeLoader constructor reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_yaml(text: str) -> tuple[Any, list[str]]:
    """The document and no problem, or None and the YAML error with its line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader), []  # a SafeLoader: no Python objects
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        kind = "refused YAML" if isinstance(error, _RefusedYAMLError) else "not valid YAML"
        return None, [f"{kind}{where}: {problem}"]


# ------------------------------------------------------------------ the whole document


def document_problems(
    document: Any, sample_context: Mapping[str, Any] | None, fields: ContextFields | None = None
) -> list[str]:
    """Every problem of a parsed document. Given the context's fields (else the shape of the sample
    context), also every field a condition or reason names that the context cannot have; given a sample
    context, every condition that does not give true or false on it."""
    if document is None:
        return ["the ruleset is empty"]
    if not isinstance(document, Mapping):
        return ["the ruleset must be a YAML mapping with the keys " + ", ".join(TOP_KEYS)]
    problems = _key_problems("the ruleset", document, TOP_KEYS, OPTIONAL_TOP_KEYS)
    problems += _text_problems(document, ("service", "version"))
    outcomes = document.get("outcomes")
    outcome_problems = _outcome_problems(outcomes)
    problems += outcome_problems
    known_outcomes = tuple(outcomes) if not outcome_problems and isinstance(outcomes, list) else None
    if "default" in document:
        problems += _default_problems("default", document["default"], known_outcomes)
    if document.get("on_error") is not None:
        problems += _default_problems("on_error", document["on_error"], known_outcomes)
    if "queue" in document:
        problems += queue_problems(document["queue"], known_outcomes)
    problems += _explain_problems(document.get("explain_from_score"))
    if "bands" in document:
        problems += band_problems(document["bands"])
    if "rules" in document:
        sample = plain_context(sample_context) if sample_context is not None else None
        if fields is None and sample is not None:
            fields = ContextFields.of_sample(sample)
        problems += rules_problems(document["rules"], known_outcomes, sample, fields)
    return problems


def _key_problems(
    owner: str, mapping: Mapping[Any, Any], allowed: tuple[str, ...], optional: frozenset[str]
) -> list[str]:
    """Unknown keys (with the likely intended key: `whenn` -> `when`) and missing required keys."""
    problems = []
    for key in mapping:
        if key not in allowed:
            guess = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else f" (allowed: {', '.join(allowed)})"
            problems.append(f"{owner}: unknown key {key!r}{hint}")
    problems += [f"{owner}: missing key {key!r}" for key in allowed if key not in optional and key not in mapping]
    return problems


def _text_problems(document: Mapping[str, Any], keys: tuple[str, ...]) -> list[str]:
    """service and version must be written as text: YAML reads `version: 2026.10` as the number 2026.1."""
    problems = []
    for key in keys:
        value = document.get(key)
        if key not in document or (isinstance(value, str) and value.strip()):
            continue
        if _is_number(value):
            problems.append(f'{key} must be text: quote it, as in {key}: "..." (YAML read it as the number {value!r})')
        else:
            problems.append(f"{key} must be a non-empty text")
    return problems


def _outcome_problems(outcomes: Any) -> list[str]:
    """Outcomes are a non-empty list of distinct names, least to most severe."""
    if outcomes is None:
        return []  # reported as a missing key
    if not isinstance(outcomes, list) or not outcomes or not all(isinstance(o, str) and o for o in outcomes):
        return ["outcomes must be a non-empty list of names, least to most severe"]
    repeated = sorted({o for o in outcomes if outcomes.count(o) > 1})
    return [f"outcomes are listed twice: {', '.join(repeated)}"] if repeated else []


def _default_problems(key: str, outcome: Any, outcomes: tuple[str, ...] | None) -> list[str]:
    """default and on_error must be outcomes (checked only when the outcomes themselves are valid)."""
    if outcomes is not None and outcome not in outcomes:
        return [f"{key} {outcome!r} is not one of the outcomes ({', '.join(outcomes)})"]
    return []


def queue_problems(queue: Any, outcomes: tuple[str, ...] | None) -> list[str]:
    """The outcomes that put a decision in the analysts' queue: a list of distinct outcomes (may be empty)."""
    if not isinstance(queue, list) or not all(isinstance(o, str) and o for o in queue):
        return ["queue must be a list of outcomes that need a person, e.g. queue: [review, decline]"]
    problems = [f"queue names {o!r} twice" for o in sorted({o for o in queue if queue.count(o) > 1})]
    if outcomes is not None:
        problems += [
            f"queue names {o!r}, which is not one of the outcomes ({', '.join(outcomes)})"
            for o in queue
            if o not in outcomes
        ]
    return problems


def _explain_problems(threshold: Any) -> list[str]:
    """explain_from_score, when given, is a score: a finite number at or above 0."""
    if threshold is None or (_is_number(threshold) and threshold >= 0):
        return []
    return [f"explain_from_score must be a number at or above 0, not {threshold!r}"]


def _is_number(value: Any) -> bool:
    """A finite int or float; YAML booleans are not numbers here."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------ bands


def band_problems(bands: Any) -> list[str]:
    """Bands are {name, min_score} from the highest threshold down to one at 0, so every score has one."""
    if not isinstance(bands, list) or not bands:
        return ["bands must be a non-empty list of {name, min_score}, highest min_score first"]
    problems: list[str] = []
    floors: list[float] = []
    names: list[str] = []
    for position, band in enumerate(bands, start=1):
        if not isinstance(band, Mapping):
            problems.append(f"band #{position} must be a mapping {{name, min_score}}")
            continue
        label = f"band {band.get('name', f'#{position}')}"
        problems += _key_problems(label, band, BAND_KEYS, frozenset())
        if "name" in band:
            if isinstance(band["name"], str) and band["name"]:
                names.append(band["name"])
            else:
                problems.append(f"{label}: name must be a non-empty text")
        if "min_score" in band:
            if _is_number(band["min_score"]):
                floors.append(float(band["min_score"]))
            else:
                problems.append(f"{label}: min_score must be a number, not {band['min_score']!r}")
    problems += [f"band {name}: the name is used twice" for name in sorted({n for n in names if names.count(n) > 1})]
    if len(floors) == len(bands):
        problems += _floor_problems(floors)
    return problems


def _floor_problems(floors: list[float]) -> list[str]:
    """Strictly descending thresholds (an equal one would make a band unreachable), the last at most 0."""
    problems = []
    if any(lower >= higher for higher, lower in itertools.pairwise(floors)):
        problems.append("bands must be listed from the highest min_score down, each lower than the one above")
    if floors[-1] > 0:
        problems.append("the last band must start at min_score 0, so that every score has a band")
    return problems


# ------------------------------------------------------------------ rules


def rules_problems(
    rules: Any,
    outcomes: tuple[str, ...] | None,
    sample: Mapping[str, Any] | None,
    fields: ContextFields | None = None,
) -> list[str]:
    """Every rule's problems, each prefixed with the rule's id (or its position when it has no usable id)."""
    if not isinstance(rules, list):
        return ["rules must be a list of rules"]
    problems: list[str] = []
    first_position: dict[str, int] = {}
    for position, rule in enumerate(rules, start=1):
        if not isinstance(rule, Mapping):
            problems.append(f"rule #{position} must be a mapping with the keys {', '.join(RULE_KEYS)}")
            continue
        rule_id = rule.get("id")
        name = f"rule {rule_id}" if isinstance(rule_id, str) and rule_id else f"rule #{position}"
        if isinstance(rule_id, str) and rule_id in first_position:
            problems.append(f"{name}: the id is used twice (rules #{first_position[rule_id]} and #{position})")
        elif isinstance(rule_id, str):
            first_position[rule_id] = position
        problems += rule_problems(name, rule, outcomes, sample, fields)
    return problems


def rule_problems(
    name: str,
    rule: Mapping[str, Any],
    outcomes: tuple[str, ...] | None,
    sample: Mapping[str, Any] | None,
    fields: ContextFields | None = None,
) -> list[str]:
    """One rule: its keys, id, outcome, description, condition and reason."""
    problems = _key_problems(name, rule, RULE_KEYS, OPTIONAL_RULE_KEYS)
    if "id" in rule and (not isinstance(rule["id"], str) or not RULE_ID.fullmatch(rule["id"])):
        problems.append(f"{name}: id must match [a-z0-9_]+ (lower-case letters, digits, underscores)")
    if "then" in rule and outcomes is not None and rule["then"] not in outcomes:
        problems.append(f"{name}: then {rule['then']!r} is not one of the outcomes ({', '.join(outcomes)})")
    if rule.get("description") is not None and not isinstance(rule["description"], str):
        problems.append(f"{name}: description must be text")
    if "when" in rule:
        problems += when_problems(name, rule["when"], sample, fields)
    if rule.get("reason") is not None:
        problems += reason_problems(name, rule["reason"], sample, fields)
    return problems


def when_problems(
    name: str, when: Any, sample: Mapping[str, Any] | None, fields: ContextFields | None = None
) -> list[str]:
    """The condition compiles in ZEN, names only fields the context has (wherever they stand: behind
    `and`, in a function's arguments, in a branch) and, given a sample context, gives true or false on it."""
    if not isinstance(when, str) or not when.strip():
        return [f"{name}: when must be a non-empty ZEN expression in quotes"]
    syntax = syntax_problem(when)
    if syntax is not None:
        return [f"{name}: `{when}` is not a valid expression: {syntax}"]
    if fields is not None:
        unknown = list(dict.fromkeys(condition_problems(name, when, fields)))
        if unknown:
            return unknown  # the sample would only fail on the same misspelt fields, less precisely
    if sample is None:
        return []
    return _sample_problems(name, when, sample)


def _sample_problems(name: str, when: str, sample: Mapping[str, Any]) -> list[str]:
    """A condition that fails or gives a non-boolean on a context of the real shape would never hit:
    usually a misspelt field, which ZEN reads as null."""
    fields = ", ".join(field_paths(sample))
    try:
        value = evaluate_once(when, sample)
    except Exception as error:  # zen raises RuntimeError for VM errors
        return [
            f"{name}: `{when}` fails on the sample context ({zen_message(error)}), so it could never hit: "
            f"is a field name misspelt? (the context has: {fields})"
        ]
    if isinstance(value, bool):
        return []
    if value is None:
        return [
            f"{name}: `{when}` gives null instead of true or false on the sample context, so it could never "
            f"hit: is a field name misspelt? (the context has: {fields})"
        ]
    return [
        f"{name}: `{when}` gives {value!r} instead of true or false on the sample context: a condition "
        f"must be a comparison or a test, such as `score >= 0.9`"
    ]


def reason_problems(
    name: str, reason: Any, sample: Mapping[str, Any] | None, fields: ContextFields | None = None
) -> list[str]:
    """The reason is a valid template and, given the context's fields or a sample, names only fields the
    context has."""
    if not isinstance(reason, str):
        return [f"{name}: reason must be text"]
    try:
        paths = templates.placeholders(reason)
    except templates.TemplateError as error:
        return [f"{name}: reason template: {error}"]
    if fields is not None:
        return list(dict.fromkeys(placeholder_problems(name, paths, fields)))
    if sample is None:
        return []
    known = field_paths(sample, include_branches=True)
    problems = []
    for path in paths:
        if templates.lookup(sample, path) is templates.MISSING:
            guess = difflib.get_close_matches(path, known, n=1)
            hint = f" (did you mean {{{guess[0]}}}?)" if guess else ""
            problems.append(f"{name}: reason names {{{path}}}, which is not in the context{hint}")
    return problems


def field_paths(context: Mapping[str, Any], prefix: str = "", *, include_branches: bool = False) -> list[str]:
    """Dotted paths of a context's values, for messages that show analysts what they can refer to."""
    paths = []
    for key, value in context.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            paths += [path] if include_branches else []
            paths += field_paths(value, f"{path}.", include_branches=include_branches)
        else:
            paths.append(path)
    return paths
