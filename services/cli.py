"""`risk`: the command line, and the one place that knows every service.

risk broker [--port N]                        the embedded Kafka-protocol broker (Tansu), in memory
risk train SERVICE [--size full|demo|small]   train, evaluate and register a model
risk serve SERVICE [--port N --workers N]     the HTTP door under gunicorn
risk desk [--port N --workers N]              the analysts' desk (web pages for the three services) under gunicorn
risk stream SERVICE [--metrics-port N]        the Kafka door (consumer group worker)
risk rescore SERVICE --input X --output Y     the batch door (CSV, JSON Lines or Parquet)
risk contracts [--check]                      write (or check) the OpenAPI documents in contracts/http
risk demo                                     everything at once, end to end
risk rules check|publish|approve|refuse|rollback|list SERVICE ...   rulesets without a deploy
risk models list|promote|challenger|approve|refuse|rollback SERVICE ...   the champion alias, maker-checker
risk lists list|show|propose-add|propose-remove|approve|refuse SERVICE ...   allow / deny / watch lists
risk audit [verify] SERVICE                   who changed what, when; the log's hash chain checked
(the control commands ask the running service, --server or RISK_SERVER_URL, which checks every key)
risk decisions show|search|prune SERVICE ...  recorded decisions: by event id, by search, by retention
risk outcomes import SERVICE FILE             what became of decided events (confirmed fraud, diagnoses)
risk monitor SERVICE                          precision, recall, calibration and drift in production
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from services.registry import http_app_spec, runtime, service_names
from shared.logging import configure_logging
from shared.runtime import Runtime
from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = REPO_ROOT / "contracts"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    overrides = {}
    if getattr(args, "bootstrap_servers", None):
        overrides["kafka_bootstrap_servers"] = args.bootstrap_servers
    from kafka.errors import KafkaError

    from shared.errors import RiskError

    try:
        settings = Settings.from_env(**overrides)
        configure_logging(settings.log_level, settings.pseudonym_key)
        return int(args.run(args, settings) or 0)
    except RiskError as error:  # the user's to fix: one line saying what and how, no traceback
        print(f"risk: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"risk: {error.filename}: no such file", file=sys.stderr)
        return 2
    except KafkaError as error:
        print(
            f"risk: the Kafka broker did not answer ({type(error).__name__}): is it running, and is "
            "KAFKA_BOOTSTRAP_SERVERS right?",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:  # e.g. `risk rules list fraud | head -3`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="risk", description="Risk scoring: claims, fraud and disease.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    services = service_names()

    broker = commands.add_parser("broker", help="run the embedded Kafka-protocol broker")
    broker.add_argument("--port", type=int, default=9092)
    broker.set_defaults(run=_run_broker)

    train = commands.add_parser("train", help="train, evaluate and register a model")
    train.add_argument("service", choices=services)
    train.add_argument(
        "--size",
        choices=["full", "demo", "small"],
        default="full",
        help="simulation size where the data is simulated (default: full)",
    )
    train.set_defaults(run=_run_train)

    serve = commands.add_parser("serve", help="serve the HTTP API under gunicorn")
    serve.add_argument("service", choices=services)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2)
    serve.set_defaults(run=_run_serve)

    desk = commands.add_parser("desk", help="serve the analysts' desk (queue, cases) under gunicorn")
    desk.add_argument("--host", default="127.0.0.1")
    desk.add_argument("--port", type=int, default=8080)
    desk.add_argument("--workers", type=int, default=2)
    desk.set_defaults(run=_run_desk)

    stream = commands.add_parser("stream", help="run the Kafka stream worker")
    stream.add_argument("service", choices=services)
    stream.add_argument("--bootstrap-servers", help="overrides KAFKA_BOOTSTRAP_SERVERS")
    stream.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on this port")
    stream.add_argument("--metrics-host", default="127.0.0.1", help="the address of that port (default loopback)")
    stream.set_defaults(run=_run_stream)

    rescore = commands.add_parser("rescore", help="rescore a file through the batch door")
    rescore.add_argument("service", choices=services)
    rescore.add_argument("--input", type=Path, required=True)
    rescore.add_argument("--output", type=Path, required=True)
    rescore.add_argument("--chunk-size", type=int, default=5_000)
    rescore.add_argument(
        "--history",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="events that feed the features without being scored, e.g. claims=claims.csv",
    )
    rescore.add_argument(
        "--no-history", action="store_true", help="score without the history inputs the service reads (claims)"
    )
    rescore.add_argument(
        "--keep", action="append", default=[], metavar="COLUMN", help="an input column passed through to the output"
    )
    rescore.add_argument(
        "--max-rejects", type=int, default=0, help="rejected rows tolerated before the run fails (default 0)"
    )
    rescore.add_argument(
        "--record",
        action="store_true",
        help="decide each event once against the decision store and record new decisions (a rerun replays)",
    )
    rescore.add_argument(
        "--engine",
        choices=("fast", "rows", "spark"),
        default="fast",
        help="fast: column-wise, memory bounded by a week of events and its look-back (CSV or Parquet in, CSV "
        "or Parquet out, no --record); rows: every event through the contract and core one by one (what fast "
        "falls back to otherwise); spark: on Apache Spark, Parquet in and out (the spark extra)",
    )
    rescore.add_argument(
        "--master",
        help="with --engine spark: the Spark master URL (default local[2], or the one spark-submit was given)",
    )
    rescore.add_argument("--no-progress", action="store_true")
    rescore.set_defaults(run=_run_rescore)

    _decision_parsers(commands, services)

    contracts = commands.add_parser("contracts", help="write or check contracts/http/*.openapi.json")
    contracts.add_argument("--check", action="store_true", help="exit 1 when a committed document is stale")
    contracts.set_defaults(run=_run_contracts)

    _control_parsers(commands, services)

    demo = commands.add_parser("demo", help="the end-to-end demo")
    demo.add_argument("--events", type=int, default=300)
    demo.add_argument("--keep", action="store_true", help="leave everything running after the summary, until Ctrl-C")
    demo.set_defaults(run=_run_demo)
    return parser


def _run_broker(args: argparse.Namespace, settings: Settings) -> int:
    from shared.events.broker import EmbeddedBroker, ensure_topics
    from shared.events.topics import ALL_TOPICS

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    with EmbeddedBroker(port=args.port) as broker:
        ensure_topics(broker.bootstrap_servers, ALL_TOPICS)
        print(f"broker ready on {broker.bootstrap_servers} (in memory; Ctrl-C stops it)", flush=True)
        try:
            while not stop["now"]:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def _run_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train and register a candidate; it becomes the champion only when the service has none (audited)."""
    import getpass

    parts = runtime(args.service, settings)
    before = parts.control.champion(args.service)
    card = parts.service.train(settings.model_dir, settings.data_dir, args.size)
    version, champion = card["version"], parts.control.champion(args.service)
    if before is None and champion == version:
        parts.control.record_first_champion(args.service, version, f"cli:{getpass.getuser()}")
        status = "champion: the service had no model"
    else:
        promote = f"risk models promote {args.service} {version}"
        status = f"candidate (the champion stays {champion}): propose it with `{promote}`"
    print(json.dumps({"version": version, "metrics": card["metrics"], "status": status}, indent=2))
    return 0


def _run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from shared.doors.gunicorn import gunicorn_command, serve_environment

    env = serve_environment(args.host, args.port, args.workers)
    command = gunicorn_command(http_app_spec(args.service))
    os.execve(command[0], command, env)
    return 1  # not reached


def _run_desk(args: argparse.Namespace, settings: Settings) -> int:
    from services.desk.app import APP_SPEC, desk_environment
    from shared.doors.gunicorn import gunicorn_command

    env = desk_environment(settings, args.host, args.port, args.workers)
    command = gunicorn_command(APP_SPEC)
    os.execve(command[0], command, env)
    return 1  # not reached


def _run_stream(args: argparse.Namespace, settings: Settings) -> int:
    from shared.doors.stream import run_worker

    address = (args.metrics_host, args.metrics_port) if args.metrics_port is not None else None
    run_worker(runtime(args.service, settings), address)
    return 0


def _run_rescore(args: argparse.Namespace, settings: Settings) -> int:
    from shared.doors.batch import rescore
    from shared.errors import UsageError

    history = dict(_name_and_path(item) for item in args.history)
    if args.max_rejects < 0:
        raise UsageError(f"--max-rejects {args.max_rejects}: give a number of rows, 0 or more")
    parts = runtime(args.service, settings)
    missing = [h.name for h in parts.service.history_inputs if h.name not in history]
    if missing and not args.no_history:
        raise UsageError(
            f"{args.service} reads its {', '.join(missing)} history: give --history "
            + " ".join(f"{name}=FILE" for name in missing)
            + ", or --no-history to score without it"
        )
    if args.master and args.engine != "spark":
        raise UsageError("--master: only with --engine spark")
    try:
        if args.engine == "spark":
            summary = _rescore_on_spark(args, parts, history)
        else:
            summary = rescore(
                parts.core,
                args.input,
                args.output,
                chunk_size=args.chunk_size,
                progress=not args.no_progress,
                history_paths=history,
                keep=args.keep,
                record=_decision_store(parts) if args.record else None,
                engine=args.engine,
            )
    except OSError as error:  # e.g. the disk filled up, or a file was taken away while the run read it
        raise UsageError(f"{error.filename or args.output}: {error.strerror or error}") from None
    replayed = f", {summary.replayed} replayed" if args.record else ""
    print(
        f"{summary.scored} scored{replayed}, {summary.rejected} rejected of {summary.rows} rows in {summary.seconds} s "
        f"-> {summary.output}" + (f" (rejected rows: {summary.rejects})" if summary.rejects else "")
    )
    print("decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.decisions.items())))
    if summary.rejected > args.max_rejects:
        print(
            f"risk: {summary.rejected} rows rejected, more than --max-rejects {args.max_rejects}: "
            f"see {summary.rejects}",
            file=sys.stderr,
        )
        return 1
    return 0


def _rescore_on_spark(args: argparse.Namespace, parts: Runtime, history: dict[str, Path]) -> Any:
    from shared.doors.spark import rescore_on_spark
    from shared.errors import UsageError

    if args.record:
        raise UsageError("--record: the decision store is one database; record with the local engine")
    return rescore_on_spark(
        parts.core,
        args.input,
        args.output,
        master=args.master,
        chunk_size=args.chunk_size,
        progress=not args.no_progress,
        history_paths=history,
        keep=args.keep,
    )


def _decision_store(parts: Runtime) -> Any:
    if parts.decisions is None:
        raise _usage("--record needs a decision store: set RISK_DECISIONS_URL (it is none)")
    return parts.decisions


def _decision_parsers(commands: Any, services: list[str]) -> None:
    decisions = commands.add_parser("decisions", help="find recorded decisions; apply their retention")
    verbs = decisions.add_subparsers(required=True, metavar="ACTION")
    show = verbs.add_parser("show", help="the decision recorded for one event id")
    show.add_argument("service", choices=services)
    show.add_argument("event_id")
    show.set_defaults(run=_run_decisions_show)
    search = verbs.add_parser("search", help="decisions newest first, one JSON line each")
    search.add_argument("service", choices=services)
    search.add_argument("--entity-id", help="as sent in events (personal ids are pseudonymised first)")
    search.add_argument("--from", dest="from_", metavar="TIME", help="scored at or after (RFC 3339 with offset)")
    search.add_argument("--to", metavar="TIME", help="scored before (RFC 3339 with offset)")
    search.add_argument("--decision")
    search.add_argument("--rule", help="a rule id that hit")
    search.add_argument("--limit", help="decisions per page (default 50, at most 500)")
    search.add_argument("--cursor", help="the next page's cursor, as the previous page printed it")
    search.set_defaults(run=_run_decisions_search)
    prune = verbs.add_parser("prune", help="delete decisions older than RISK_DECISIONS_RETENTION_DAYS (audited)")
    prune.add_argument("service", choices=services)
    prune.set_defaults(run=_run_decisions_prune)

    monitor = commands.add_parser("monitor", help="quality, calibration and drift from recorded decisions")
    monitor.add_argument("service", choices=services)
    monitor.add_argument("--from", dest="from_", metavar="TIME", help="decisions scored at or after (RFC 3339)")
    monitor.add_argument("--to", metavar="TIME", help="decisions scored before (RFC 3339)")
    monitor.add_argument("--json", action="store_true", help="print the whole report as JSON")
    monitor.set_defaults(run=_run_monitor)

    outcomes = commands.add_parser("outcomes", help="what became of decided events").add_subparsers(
        required=True, metavar="ACTION"
    )
    load = outcomes.add_parser("import", help="learn the outcomes of a file (CSV, JSON Lines or Parquet)")
    load.add_argument("service", choices=services)
    load.add_argument("file", type=Path)
    load.set_defaults(run=_run_outcomes_import)


def _run_monitor(args: argparse.Namespace, settings: Settings) -> int:
    report = runtime(args.service, settings).monitor(_moment("--from", args.from_), _moment("--to", args.to))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from shared.doors.monitoring import summary_lines

    print("\n".join(summary_lines(report)))
    return 0


def _moment(flag: str, text: str | None) -> Any:
    from datetime import datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _usage(f"{flag} takes an RFC 3339 time with its offset, e.g. 2026-11-01T00:00:00+00:00") from None
    if moment.tzinfo is None:
        raise _usage(f"{flag} {text}: give the offset (e.g. +00:00), or the time is ambiguous")
    return moment


def _run_outcomes_import(args: argparse.Namespace, settings: Settings) -> int:
    from shared.doors.outcomes import import_outcomes

    summary = import_outcomes(runtime(args.service, settings), args.file)
    counts = ", ".join(f"{status} {n}" for status, n in sorted(summary.statuses.items())) or "none"
    print(f"{summary.rows} rows: {counts}" + (f"; rejected rows: {summary.rejects}" if summary.rejects else ""))
    return 1 if summary.rejected else 0


def _run_decisions_show(args: argparse.Namespace, settings: Settings) -> int:
    from shared.doors.decisions import show

    print(json.dumps(show(runtime(args.service, settings), args.event_id), indent=2))
    return 0


def _run_decisions_search(args: argparse.Namespace, settings: Settings) -> int:
    from shared.doors.decisions import search

    given = {"entity_id": args.entity_id, "from": args.from_, "to": args.to, "decision": args.decision}
    given |= {"rule": args.rule, "limit": args.limit, "cursor": args.cursor}
    query = {name: value for name, value in given.items() if value is not None}
    page = search(runtime(args.service, settings), query)
    for decision in page.items:
        print(json.dumps(decision.document, separators=(",", ":")))
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def _run_decisions_prune(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    if settings.decisions_retention_days is None:
        raise _usage("no retention is set: RISK_DECISIONS_RETENTION_DAYS=N deletes decisions older than N days")
    deleted = runtime(args.service, settings).prune_decisions(identity=f"cli:{getpass.getuser()}")
    print(f"{deleted} {args.service} decisions older than {settings.decisions_retention_days} days deleted")
    return 0


def _usage(message: str) -> Exception:
    from shared.errors import UsageError

    return UsageError(message)


def _name_and_path(item: str) -> tuple[str, Path]:
    name, separator, path = item.partition("=")
    if not separator or not name or not path:
        raise _usage(f"--history takes NAME=PATH, got {item!r}")
    return name, Path(path)


def contract_documents() -> dict[Path, str]:
    """The documents generated from the code: each service's OpenAPI document and the decision's JSON Schema."""
    from services.registry import service
    from shared.core.outcomes import outcome_schema
    from shared.doors.openapi import build_openapi
    from shared.events.contracts import DecisionVariant, decision_json_schema, event_file_name, outcome_json_schema

    limit = Settings().max_batch_events
    documents = {
        CONTRACTS / "http" / f"{name}.openapi.json": build_openapi(service(name), limit) for name in service_names()
    }
    for name in service_names():
        found = service(name)
        if found.outcome_topic is not None:
            documents[CONTRACTS / "events" / event_file_name(found.outcome_topic)] = outcome_json_schema(
                found.outcome_topic, outcome_schema(found), name
            )
    documents[CONTRACTS / "events" / "decision.v1.json"] = decision_json_schema(
        {
            name: DecisionVariant(
                service(name).decision_schema, service(name).entity_field in service(name).personal_fields
            )
            for name in service_names()
        }
    )
    return {path: json.dumps(document, indent=2, sort_keys=True) + "\n" for path, document in documents.items()}


def _run_contracts(args: argparse.Namespace, settings: Settings) -> int:
    stale = []
    for path, text in contract_documents().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    for path in stale:
        print(f"stale: {path.relative_to(REPO_ROOT)} (run `risk contracts`)", file=sys.stderr)
    return 1 if stale else 0


def _control_parsers(commands: Any, services: list[str]) -> None:
    def acting(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--api-key",
            default=os.environ.get("RISK_API_KEY"),
            help="the key you act with (default: RISK_API_KEY); the server knows its identity and roles",
        )
        parser.add_argument(
            "--server",
            default=os.environ.get("RISK_SERVER_URL"),
            help="the running service's HTTP address, which checks the key and makes the change "
            "(default: RISK_SERVER_URL)",
        )

    rules = commands.add_parser("rules", help="check, publish, approve and roll back rulesets").add_subparsers(
        required=True, metavar="ACTION"
    )
    check = rules.add_parser("check", help="validate a ruleset file (and try it on events with --data)")
    check.add_argument("service", choices=services)
    check.add_argument("file", type=Path)
    check.add_argument(
        "--data", type=Path, help="events (CSV, JSON Lines or Parquet) to find rules that never or always hit"
    )
    check.set_defaults(run=_run_rules_check)
    backtest = rules.add_parser("backtest", help="replay history with what is in force and with a candidate")
    backtest.add_argument("service", choices=services)
    backtest.add_argument("--data", type=Path, required=True, help="events (CSV, JSON Lines or Parquet)")
    backtest.add_argument("--ruleset", type=Path, help="the candidate ruleset file")
    backtest.add_argument("--model", help="the candidate model version (from the registry)")
    backtest.add_argument("--label", help="a column of --data holding the truth (1/0), for precision and recall")
    backtest.add_argument("--history", action="append", default=[], metavar="NAME=PATH")
    backtest.add_argument("--report", type=Path, help="also write an HTML report with a chart here")
    backtest.add_argument("--cost-fp", type=float, default=1.0, help="cost of flagging a good event (default 1)")
    backtest.add_argument("--cost-fn", type=float, default=10.0, help="cost of missing a bad one (default 10)")
    backtest.set_defaults(run=_run_backtest)
    publish = rules.add_parser("publish", help="store a ruleset as a new version and propose it")
    publish.add_argument("service", choices=services)
    publish.add_argument("file", type=Path)
    acting(publish)
    publish.set_defaults(run=lambda a, s: _control(a, lambda client: client.publish(a.file)))
    models = commands.add_parser("models", help="list, promote, approve and roll back models").add_subparsers(
        required=True, metavar="ACTION"
    )
    promote = models.add_parser("promote", help="propose a registered version as the champion")
    promote.add_argument("service", choices=services)
    promote.add_argument("version")
    acting(promote)
    promote.set_defaults(run=lambda a, s: _control(a, lambda client: client.promote(a.version)))
    challenger = models.add_parser(
        "challenger", help="propose a version to score in shadow beside the champion (or --clear)"
    )
    challenger.add_argument("service", choices=services)
    challenger.add_argument("version", nargs="?")
    challenger.add_argument("--clear", action="store_true")
    acting(challenger)
    challenger.set_defaults(run=_run_challenger)
    compare = models.add_parser("compare", help="champion against challenger on recorded decisions")
    compare.add_argument("service", choices=services)
    compare.add_argument("--decisions", type=Path, required=True, help="decision records (JSON Lines, CSV, Parquet)")
    compare.add_argument("--labels", type=Path, help="event_id and label columns: adds precision and recall")
    compare.add_argument("--label", default="label")
    compare.set_defaults(run=_run_compare)
    for group, kind, kinds in ((rules, "ruleset", ("ruleset",)), (models, "model", ("model", "challenger"))):
        approve = group.add_parser("approve", help="approve another identity's proposal: it takes effect")
        approve.add_argument("service", choices=services)
        approve.add_argument("proposal")
        acting(approve)
        approve.set_defaults(run=lambda a, s, kinds=kinds: _control(a, lambda c: c.approve(a.proposal, kinds)))
        refuse = group.add_parser("refuse", help="refuse a proposal, saying why")
        refuse.add_argument("service", choices=services)
        refuse.add_argument("proposal")
        refuse.add_argument("--reason", required=True)
        acting(refuse)
        refuse.set_defaults(run=lambda a, s, kinds=kinds: _control(a, lambda c: c.refuse(a.proposal, kinds, a.reason)))
        rollback = group.add_parser("rollback", help="propose going back to a version in force before this one")
        rollback.add_argument("service", choices=services)
        rollback.add_argument("version")
        acting(rollback)
        rollback.set_defaults(run=lambda a, s, kind=kind: _control(a, lambda c: c.rollback(kind, a.version)))
        listing = group.add_parser("list", help="versions, the one in force, its history, pending proposals")
        listing.add_argument("service", choices=services)
        acting(listing)
        listing.set_defaults(
            run=lambda a, s, kind=kind: _control(a, lambda c: c.rulesets() if kind == "ruleset" else c.models())
        )
    _lists_parsers(commands, services, acting)
    audit = commands.add_parser(
        "audit",
        help="the audit log of a service's control changes; `risk audit verify SERVICE` checks its hash chain",
        usage="risk audit [verify] SERVICE [--head HASH] [--api-key KEY] [--server URL]",
    )
    audit.add_argument("words", nargs="+", metavar="[verify] SERVICE")
    audit.add_argument("--head", help="verify: a head hash recorded earlier, which the chain must still end in")
    acting(audit)
    audit.set_defaults(run=lambda a, s: _run_audit(a, services))


def _lists_parsers(commands: Any, services: list[str], acting: Callable[[argparse.ArgumentParser], None]) -> None:
    lists = commands.add_parser(
        "lists", help="allow / deny / watch lists: values added and removed by two people"
    ).add_subparsers(required=True, metavar="ACTION")
    listing = lists.add_parser("list", help="every list of the service: version, size, pending changes")
    listing.add_argument("service", choices=services)
    acting(listing)
    listing.set_defaults(run=lambda a, s: _control(a, lambda c: c.lists()))
    show = lists.add_parser("show", help="one list: a page of its values, its history, its pending changes")
    show.add_argument("service", choices=services)
    show.add_argument("name", help="e.g. deny_cards")
    show.add_argument("--value", help="say whether this value is on the list (a personal id is pseudonymised first)")
    show.add_argument("--after", help="the page after this value (the last one of the page before)")
    show.add_argument("--limit", type=int, help="values on the page (default 1000, at most 10000)")
    acting(show)
    show.set_defaults(run=lambda a, s: _control(a, lambda c: c.show_list(a.name, a.value, a.after, a.limit)))
    for verb, action, words in (("propose-add", "add", "adding"), ("propose-remove", "remove", "removing")):
        change = lists.add_parser(verb, help=f"propose {words} values; another identity approves")
        change.add_argument("service", choices=services)
        change.add_argument("name", help="e.g. deny_cards")
        change.add_argument("values", nargs="*", metavar="VALUE")
        change.add_argument("--file", type=Path, help="values one a line (# comments and blank lines skipped)")
        acting(change)
        change.set_defaults(
            run=lambda a, s, action=action: _control(
                a, lambda c: c.propose_list_change(a.name, action, _commands().read_values(a.values, a.file))
            )
        )
    approve = lists.add_parser("approve", help="approve another identity's list change: it takes effect")
    approve.add_argument("service", choices=services)
    approve.add_argument("proposal")
    acting(approve)
    approve.set_defaults(run=lambda a, s: _control(a, lambda c: c.approve(a.proposal, ("list",))))
    refuse = lists.add_parser("refuse", help="refuse a list change, saying why")
    refuse.add_argument("service", choices=services)
    refuse.add_argument("proposal")
    refuse.add_argument("--reason", required=True)
    acting(refuse)
    refuse.set_defaults(run=lambda a, s: _control(a, lambda c: c.refuse(a.proposal, ("list",), a.reason)))


def _commands() -> Any:
    from shared.doors import control as commands  # imported when used: it loads the scoring stack

    return commands


def _print(value: Any) -> int:
    print(_commands().printable(value))
    return 0


def _control(args: argparse.Namespace, action: Callable[[Any], Any]) -> int:
    """Ask the running service's control API (it checks the key, the roles and maker-checker); its answer on
    stdout, or its refusal on stderr and exit 2."""
    from shared.errors import RiskError

    client = _commands().ControlClient(args.service, args.server, args.api_key)
    try:
        return _print(action(client))
    except RiskError as error:
        print(_commands().printable(error.to_dict()), file=sys.stderr)
        return 2


def _run_challenger(args: argparse.Namespace, settings: Settings) -> int:
    if args.clear == (args.version is not None):
        raise _usage("give the version to score in shadow, or --clear (not both)")
    return _control(args, lambda client: client.challenger(None if args.clear else args.version))


def _run_audit(args: argparse.Namespace, services: list[str]) -> int:
    """`risk audit SERVICE` prints the log; `risk audit verify SERVICE` checks its chain (exit 1 if broken)."""
    verify = len(args.words) == 2 and args.words[0] == "verify"
    if not (len(args.words) == 1 or verify) or args.words[-1] not in services:
        raise _usage(f"risk audit [verify] SERVICE, SERVICE one of {', '.join(services)}")
    args.service = args.words[-1]
    if not verify:
        return _control(args, lambda client: client.audit())
    found: dict[str, Any] = {}
    status = _control(args, lambda client: found.setdefault("report", client.verify(args.head)))
    return 1 if status == 0 and not found["report"]["ok"] else status


def _run_compare(args: argparse.Namespace, settings: Settings) -> int:
    default = runtime(args.service, settings).ruleset_in_force().default  # what counts as not flagged
    return _print(_commands().compare(args.decisions, args.labels, args.label, default))


def _run_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from shared.doors.backtest import Costs

    print(
        _commands().run_backtest(
            runtime(args.service, settings),
            args.data,
            args.ruleset,
            args.model,
            args.label,
            dict(_name_and_path(item) for item in args.history),
            args.report,
            Costs(args.cost_fp, args.cost_fn),
        )
    )
    return 0


def _run_rules_check(args: argparse.Namespace, settings: Settings) -> int:
    problems = _commands().check_ruleset(runtime(args.service, settings), args.file, args.data)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{args.file}: fine" + (f" (every rule hits some but not all of {args.data})" if args.data else ""))
    return 1 if problems else 0


def _run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from services.demo import run_demo

    return run_demo(settings, events=args.events, keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
