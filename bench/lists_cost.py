"""What allow / deny / watch lists cost the online door: POST /v1/score in-process (Flask's test client), the
same traffic through three apps, each with its own window state warmed alike, in interleaved rounds:

    without   the packaged ruleset with its list rule taken out (published and approved: no list looked up)
    empty     the packaged ruleset as shipped: its list rule over an empty list
    listed    the packaged ruleset over a list of `--values` values (default 100,000), added and approved
              through the control plane like any list change (pseudonymised where the field is personal)

The listed values are none of the traffic's identifiers, so the three give the same decisions and the
difference is the look-up alone. Decisions are not recorded (`--decisions none` by default), so the
denominator is the scoring path itself and the share is the most a list can cost. Also measured: proposing,
approving and reloading the list as an instance does after an announcement. The machine's load average
is recorded before and after: these 2 cores are shared.

    .venv/bin/python -m bench.lists_cost [--service fraud|claims|disease] [--requests 3000] [--values 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import add_decision_store_option, bench_settings, decision_store_url, record, workdir
from bench.traffic import traffic
from services.registry import runtime, service_names
from shared.control.lists import entered_values
from shared.core.rulesets import parse_ruleset, service_lists
from shared.doors.http import create_app
from shared.runtime import Runtime
from shared.settings import Settings

WARM_UP = 200
ROUNDS = 6
LIST_RULE = {  # the packaged example rule of each service, and the list it reads
    "fraud": ("denied_card", "deny_cards"),
    "claims": ("denied_policy", "deny_policies"),
    "disease": ("watched_patient", "watch_patients"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", choices=service_names(), default="fraud")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--values", type=int, default=100_000)
    add_decision_store_option(parser)
    parser.set_defaults(decisions="none")
    args = parser.parse_args()
    work = workdir()
    with decision_store_url(work, args.decisions) as decisions_url:
        run(args, work, bench_settings(work, args.service, decisions_url))


def run(args: argparse.Namespace, work: Path, settings: Settings) -> None:
    load_before = os.getloadavg()
    rule_id, list_name = LIST_RULE[args.service]
    load = traffic(args.service, settings, args.requests + WARM_UP)
    variants: dict[str, Runtime] = {}
    for variant in ("without", "empty", "listed"):
        variant_settings = _own_state(settings, work / variant)
        variants[variant] = runtime(args.service, variant_settings)
        load.warm(variants[variant].state)
    _publish_without(variants["without"], rule_id)
    timings = _fill_list(variants["listed"], list_name, args.values)
    apps = {name: create_app(parts).test_client() for name, parts in variants.items()}
    for name, parts in variants.items():
        print(f"{name}: ruleset {parts.core.ruleset.version}, lists read {sorted(parts.core.ruleset.lists_named())}")
    headers = {"X-API-Key": settings.api_keys[0]}
    bodies = [json.dumps(event) for event in load.events]
    seconds: dict[str, list[float]] = {name: [] for name in apps}
    outcomes: dict[str, list[str]] = {name: [] for name in apps}
    for client in apps.values():
        for body in bodies[:WARM_UP]:
            _post(client, body, headers)
    measured = bodies[WARM_UP:]
    size = -(-len(measured) // ROUNDS)
    for start in range(0, len(measured), size):
        for name, client in apps.items():  # interleaved, so a busy spell of the machine hits all three alike
            for body in measured[start : start + size]:
                started = time.perf_counter()
                answer = _post(client, body, headers)
                seconds[name].append(time.perf_counter() - started)
                outcomes[name].append(answer["decision"])
    for parts in variants.values():
        parts.close()
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    rates = {name: 1.0 / median for name, median in medians.items()}
    record(
        f"lists_cost_{args.service}" if args.service != "fraud" else "lists_cost",
        {
            "service": args.service,
            "decision_store": args.decisions,
            "requests_per_variant": len(measured),
            "traffic": load.description,
            "list": list_name,
            "list_values": args.values,
            "same_decisions": outcomes["without"] == outcomes["empty"] == outcomes["listed"],
            "median_us": {name: round(median * 1e6) for name, median in medians.items()},
            "p99_us": {name: round(sorted(values)[int(len(values) * 0.99)] * 1e6) for name, values in seconds.items()},
            "rate_per_s_at_median": {name: round(rate) for name, rate in rates.items()},
            "rate_lost_by_listed_vs_without_pct": round(100 * (1 - rates["listed"] / rates["without"]), 2),
            "rate_lost_by_listed_vs_empty_pct": round(100 * (1 - rates["listed"] / rates["empty"]), 2),
            **timings,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    )


def _own_state(settings: Settings, folder: Path) -> Settings:
    """The variant's own window state and control store."""
    folder.mkdir(parents=True, exist_ok=True)
    return replace(settings, state_url=f"sqlite:///{folder / 'state.sqlite3'}", control_dir=folder / "control")


def _publish_without(parts: Runtime, rule_id: str) -> None:
    """Publish and approve the packaged ruleset without its list rule (a new version), as analysts would."""
    service = parts.service
    text = service.ruleset_path.read_text()
    text = re.sub(rf"  - id: {rule_id}\n(    .*\n)+", "", text)
    text = re.sub(r'^version: "([^"]+)"', r'version: "\1-no-lists"', text, flags=re.MULTILINE)
    ruleset = parse_ruleset(service, text, "bench")
    assert not ruleset.lists_named(), "the list rule is still there"
    proposal = parts.control.propose_ruleset(service.name, ruleset, text, "bench-maker")
    parts.control.approve(service.name, proposal.id, "bench-checker")


def _fill_list(parts: Runtime, list_name: str, count: int) -> dict[str, Any]:
    """`count` values on the list, added and approved by two identities; how long each step took."""
    spec = next(spec for spec in service_lists(parts.service) if spec.name == list_name)
    started = time.perf_counter()
    values = entered_values(spec, [f"BENCH-{n:07d}" for n in range(count)], parts.settings.pseudonym_key)
    entered = time.perf_counter()
    proposal = parts.control.propose_list_change(parts.service.name, spec, "add", values, "bench-maker")
    proposed = time.perf_counter()
    parts.control.approve(parts.service.name, proposal.id, "bench-checker")
    approved = time.perf_counter()
    in_force = parts.lists_in_force()
    loaded = time.perf_counter()
    assert len(in_force.lists[list_name].values) == count
    return {
        "pseudonymised": spec.personal,
        "enter_values_ms": round((entered - started) * 1000, 1),
        "propose_ms": round((proposed - entered) * 1000, 1),
        "approve_ms": round((approved - proposed) * 1000, 1),
        "reload_list_ms": round((loaded - approved) * 1000, 1),
    }


def _post(client: Any, body: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post("/v1/score", data=body, content_type="application/json", headers=headers)
    if response.status_code != 200:
        raise SystemExit(f"request failed: {response.status_code} {response.text[:200]}")
    answer: dict[str, Any] = response.get_json()
    return answer


if __name__ == "__main__":
    main()
