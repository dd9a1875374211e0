"""Rulesets: analysts' YAML that turns a model score into a decision with reason codes, without a deploy.

Domain-free: the service supplies the evaluation context and, at load, a sample of it; this package never
imports `services/`. Conditions are ZEN expressions (GoRules' expression language, run in Rust by
zen-engine), all compiled into one list expression evaluated once per event. See README.md beside this
file for the language, the checks and the run-time semantics.

The format::

    service: fraud
    version: "2026.11.1"                 # required text (quote it); every decision carries it
    outcomes: [approve, review, decline] # least to most severe; the most severe hit wins
    default: approve                     # the outcome when no rule hits; one of outcomes
    on_error: review                     # optional: what a rule that cannot be evaluated counts as (else its then)
    queue: [review, decline]             # optional: the outcomes that need a person (the desk's queue)
    explain_from_score: 0.2              # optional: events scored at or above get feature reasons before rules
    bands:                               # risk band of the score: the first from the top whose min_score it reaches
      - {name: high, min_score: 0.7}
      - {name: medium, min_score: 0.3}
      - {name: low, min_score: 0.0}     # the last band starts at 0
    rules:
      - id: very_high_score              # unique, [a-z0-9_]+
        description: Model score is very high          # optional
        when: "score >= 0.9"             # a ZEN expression over the context, true or false
        then: decline                    # one of outcomes
        reason: "Fraud score {score} is at or above 0.9"   # optional; {dotted.path} placeholders

The context of one event: ``{"event": {...}, "features": {...}, "score": float, "band": str,
"measures": {...}, "reasons": [feature names]}``; the service states every field it can have
(`ContextFields`), and a ruleset naming any other is refused at load.

Use::

    ruleset = Ruleset.load(path, sample_context=sample, context_fields=fields)  # InvalidRulesetError if wrong
    verdict = ruleset.evaluate(context)  # Verdict(outcome, band, hits=(RuleHit, ...), errors=(RuleError, ...))
"""

from shared.rules.context import ContextFields
from shared.rules.engine import Band, Rule, RuleError, RuleHit, Ruleset, Verdict

__all__ = ["Band", "ContextFields", "Rule", "RuleError", "RuleHit", "Ruleset", "Verdict"]
