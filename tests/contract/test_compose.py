"""docker-compose.yml stays in step with the code and runs as documented: it is valid under the Compose
Specification's JSON schema (shipped by check-jsonschema), every service's command is a valid `risk`
command, every topic the stream workers need is created by the topics job, every service has a restart
policy and a health check (a one-shot job has its exit code instead), ports are published on loopback
unless configured, authentication is on unless switched off explicitly, every volume is a folder its
image's user owns, and the Compose version the file needs is stated in it and in the README.

`docker compose config` is not run in CI: Debian bookworm packages Compose v1 only (1.29, which predates
the `env_file` entries this file uses) and PyPI has no Compose v2, so the schema stands in for it."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "infra" / "Dockerfile"
PROJECT_IMAGE = "risk-scoring:latest"
RUNNING = {"unless-stopped", "always"}
LOOPBACK_PORT = re.compile(r"^\$\{(?P<variable>[A-Z_]+):-127\.0\.0\.1\}:\d+:\d+$")
# Where each third-party image keeps its data, in a folder the image creates for its own user (so a
# named volume mounted there starts owned by that user).
IMAGE_DATA_FOLDERS = {
    "apache/kafka": "/var/lib/kafka/data",
    "redis": "/data",
    "postgres": "/var/lib/postgresql/data",
    "prom/prometheus": "/prometheus",
    "grafana/grafana": "/var/lib/grafana",
}
# The project image's settings that name a place it writes to.
WRITTEN_PATH_SETTINGS = ("RISK_MODEL_DIR", "RISK_DATA_DIR", "RISK_CONTROL_DIR")
WRITTEN_URL_SETTINGS = ("RISK_STATE_URL", "RISK_DECISIONS_URL")


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def project_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if s.get("image") == PROJECT_IMAGE}


def jobs() -> set[str]:
    """One-shot services: the training jobs (profile `train`) and those others wait to see completed."""
    waited_for = {
        dependency
        for service in services().values()
        for dependency, condition in (service.get("depends_on") or {}).items()
        if isinstance(condition, dict) and condition.get("condition") == "service_completed_successfully"
    }
    trained = {name for name, s in services().items() if "train" in s.get("profiles", [])}
    return waited_for | trained


def image_name(service: dict[str, Any]) -> str:
    return service["image"].rsplit(":", 1)[0]


def volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """Mount target -> source of a service's short-syntax volumes."""
    mounts = [entry.split(":") for entry in service.get("volumes", [])]
    return {parts[1]: parts[0] for parts in mounts}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of infra/Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def dockerfile_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for kind, arg in dockerfile_instructions() if kind == "ARG" and "=" in arg)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for kind, arguments in dockerfile_instructions():
        if kind == "ENV":
            env |= dict(pair.split("=", 1) for pair in arguments.split())
    return env


def expand_args(text: str) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: dockerfile_args()[m.group(1) or m.group(2)], text.strip('"'))


def runtime_user() -> str:
    users = [arguments for kind, arguments in dockerfile_instructions() if kind == "USER"]
    assert users, "infra/Dockerfile sets no USER: the image would run as root"
    return expand_args(users[-1])


def image_account() -> tuple[str, str]:
    """(name, uid) of the account `useradd` makes in infra/Dockerfile."""
    for kind, arguments in dockerfile_instructions():
        for step in re.split(r"&&|;", arguments) if kind == "RUN" else []:
            words = expand_args(step).split()
            if words[:1] == ["useradd"] and "--uid" in words:
                return words[-1], expand_args(words[words.index("--uid") + 1])
    raise AssertionError("infra/Dockerfile makes no account with a fixed uid (useradd --uid)")


def folders_owned_by_the_image_user() -> set[str]:
    """The folders `install -d -o OWNER` creates in infra/Dockerfile for the user the image runs as."""
    name, uid = image_account()
    owners = {name, uid} if runtime_user().split(":")[0] == uid else set()
    owned: set[str] = set()
    for kind, arguments in dockerfile_instructions():
        for step in re.split(r"&&|;", arguments) if kind == "RUN" else []:
            words = expand_args(step).split()
            if words[:2] == ["install", "-d"] and "-o" in words and words[words.index("-o") + 1] in owners:
                owned |= {word for word in words[2:] if word.startswith("/")}
    return owned


def sqlite_file(url: str) -> str | None:
    return "/" + url.removeprefix("sqlite:").lstrip("/") if url.startswith("sqlite:") else None


def stated_compose_version(text: str) -> str:
    found = re.search(r"Docker Compose v(\d+\.\d+(?:\.\d+)?) or newer", text)
    assert found, "the minimum Docker Compose version is not stated"
    return found.group(1)


def test_compose_file_is_valid_under_the_compose_specification_schema() -> None:
    """The file (anchors merged, as Compose reads it) has no error under the Compose Specification's JSON
    schema as check-jsonschema ships it, and the same validator refuses a misspelt key and a wrongly typed
    value, so a mistake of that kind in the file would fail here."""
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(compose())]
    assert not errors, "\n".join(errors)

    misspelt = copy.deepcopy(compose())
    misspelt["services"]["redis"]["helthcheck"] = misspelt["services"]["redis"].pop("healthcheck")
    assert not validator.is_valid(misspelt)
    mistyped = copy.deepcopy(compose())
    mistyped["services"]["redis"]["restart"] = ["unless-stopped"]
    assert not validator.is_valid(mistyped)


def test_the_compose_version_needed_is_stated_in_the_file_and_the_readme() -> None:
    """The file names its format (the Compose Specification, with a project `name:` and no obsolete top-level
    `version:`) and the oldest Docker Compose that reads it; that version is at least v2.24.0 when an
    `env_file` entry says `required` (new in v2.24.0), and the README states the same version."""
    text = COMPOSE.read_text()
    assert "version" not in compose()
    assert compose()["name"] == "risk-scoring"
    assert "Compose Specification" in text
    stated = stated_compose_version(text)
    uses_optional_env_files = any(
        isinstance(entry, dict) and "required" in entry
        for service in services().values()
        for entry in service.get("env_file", [])
    )
    assert uses_optional_env_files
    assert tuple(int(part) for part in stated.split(".")) >= (2, 24, 0)
    assert stated_compose_version((ROOT / "README.md").read_text()) == stated


def test_compose_commands_parse_as_risk_commands() -> None:
    """Each `command:` of a risk-scoring service is accepted by the `risk` argument parser."""
    commands = [s["command"] for s in project_services().values() if "command" in s]
    assert len(commands) >= 3
    for command in commands:
        _parser().parse_args(command)


def test_compose_runs_kafka_in_kraft_mode_with_the_topics_job() -> None:
    """Kafka runs as its own controller (no ZooKeeper) and the stream worker waits for the topics job."""
    assert "controller" in services()["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert "ensure_topics" in " ".join(services()["kafka-topics"]["entrypoint"])
    assert services()["fraud-stream"]["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", sorted(yaml.safe_load(COMPOSE.read_text())["services"]))
def test_every_service_has_a_restart_policy_and_a_health_check(name: str) -> None:
    """A long-running service restarts unless stopped and has a health check run by a command; a one-shot
    job (a training job, or one others wait to complete) never restarts and disables the health check on
    purpose, its exit code being what counts."""
    service = services()[name]
    if name in jobs():
        assert service.get("restart") == "no"
        assert service.get("healthcheck") == {"disable": True}
        return
    assert service.get("restart") in RUNNING, f"{name}: restart policy {service.get('restart')!r}"
    test = service.get("healthcheck", {}).get("test")
    assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name}: no health check"
    assert not service["healthcheck"].get("disable", False)


def test_health_checks_ask_the_port_each_risk_process_serves() -> None:
    """Each `risk serve` health check asks /readyz on the port its command binds, and each `risk stream`
    health check asks /healthz on its metrics port, so a changed port cannot leave a check asking nothing."""
    checked = 0
    for name, service in project_services().items():
        command = service.get("command") or []
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        if command[:1] == ["serve"]:
            port = command[command.index("--port") + 1]
            assert f"127.0.0.1:{port}/readyz" in test, name
            checked += 1
        elif command[:1] == ["stream"]:
            port = command[command.index("--metrics-port") + 1]
            assert f"127.0.0.1:{port}/healthz" in test, name
            checked += 1
    assert checked == 6


@pytest.mark.parametrize("name", sorted(yaml.safe_load(COMPOSE.read_text())["services"]))
def test_published_ports_bind_loopback_unless_configured(name: str) -> None:
    """Every published port is `${VARIABLE:-127.0.0.1}:HOST:CONTAINER`: loopback unless the operator sets
    the variable. Prometheus (no login) has a variable of its own, so opening the services does not open
    it; the broker and the stores publish no port at all."""
    for port in services()[name].get("ports", []):
        bound = LOOPBACK_PORT.match(str(port))
        assert bound, f"{name}: port {port!r} is not bound to 127.0.0.1 by default"
        expected = "RISK_PROMETHEUS_BIND_ADDRESS" if name == "prometheus" else "RISK_BIND_ADDRESS"
        assert bound["variable"] == expected, f"{name}: {port!r}"
    if name in {"kafka", "redis", "postgres"}:
        assert not services()[name].get("ports") and not services()[name].get("network_mode")


def test_published_ports_are_those_the_readme_names() -> None:
    """The HTTP services, the desk, Prometheus and Grafana are published on the host ports the README lists."""
    published = {
        name: int(str(port).rsplit(":", 2)[1]) for name, s in services().items() for port in s.get("ports", [])
    }
    assert published == {
        "fraud-http": 8000,
        "claims-http": 8001,
        "disease-http": 8002,
        "desk": 8080,
        "prometheus": 9090,
        "grafana": 3000,
    }


@pytest.mark.parametrize("name", sorted(project_services()))
def test_the_risk_services_require_api_keys_unless_switched_off_explicitly(name: str) -> None:
    """RISK_API_KEYS is `${RISK_API_KEYS?...}`: Compose refuses to start with the variable unset, and only an
    explicitly empty value (`RISK_API_KEYS=` in .env) runs the HTTP doors without keys; the decision store's
    password is required too (`:?`, so empty is refused as well)."""
    environment = services()[name]["environment"]
    assert re.fullmatch(r"\$\{RISK_API_KEYS\?[^}]+\}", environment["RISK_API_KEYS"])
    assert "${RISK_POSTGRES_PASSWORD:?" in environment["RISK_DECISIONS_URL"]


def test_grafana_has_no_anonymous_access_and_a_required_admin_password() -> None:
    """Grafana's anonymous access and sign-up are off and its admin password must be set (refused when
    unset or empty); PostgreSQL's password is required the same way."""
    grafana = services()["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in grafana
    assert re.fullmatch(r"\$\{RISK_GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", grafana["GF_SECURITY_ADMIN_PASSWORD"])
    postgres = services()["postgres"]["environment"]
    assert re.fullmatch(r"\$\{RISK_POSTGRES_PASSWORD:\?[^}]+\}", postgres["POSTGRES_PASSWORD"])


def test_the_example_environment_sets_every_required_variable() -> None:
    """infra/example.env, copied to .env as the file's header says, sets every variable the compose file
    requires (`${NAME?...}` or `${NAME:?...}`), so a copied example starts."""
    required = set(re.findall(r"\$\{(\w+):?\?", COMPOSE.read_text()))
    example = (ROOT / "infra" / "example.env").read_text()
    given = set(re.findall(r"^(\w+)=", example, flags=re.MULTILINE))
    assert required and required <= given, required - given


def test_the_image_runs_as_a_fixed_unprivileged_user() -> None:
    """infra/Dockerfile ends as a numeric, non-root user and group (so a bind mount can be chowned to it and
    a runtime can check runAsNonRoot), the uid that `useradd` gives the user risk."""
    uid, _, gid = runtime_user().partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert image_account()[1] == uid


@pytest.mark.parametrize("name", sorted(project_services()))
def test_every_place_the_project_image_writes_is_a_volume_or_a_folder_its_user_owns(name: str) -> None:
    """For each service of the project's image: every volume is a named volume mounted on a folder the
    Dockerfile creates for the image's user (a new named volume copies that folder's owner), the model
    registry, data and control folders are those volumes, an embedded SQLite store (if a URL names one, in
    the compose file or the image) lies in one of them, and HOME (caches, matplotlib's and gunicorn's files)
    is a folder the user owns."""
    service = services()[name]
    owned = folders_owned_by_the_image_user()
    mounts = volume_targets(service)
    declared = set(compose()["volumes"])
    for target, source in mounts.items():
        assert source in declared, f"{name}: {source} is not a named volume"
        assert target in owned, f"{name}: {target} is not created for the image's user in infra/Dockerfile"
    environment = dockerfile_env() | service["environment"]
    for setting in WRITTEN_PATH_SETTINGS:
        assert environment[setting] in mounts, f"{name}: {setting}={environment[setting]} is not on a volume"
    for setting in WRITTEN_URL_SETTINGS:
        path = sqlite_file(environment[setting])
        if path is not None:
            assert str(Path(path).parent) in mounts, f"{name}: {setting} writes {path}, not on a volume"
    assert environment["HOME"] in owned


def test_the_image_keeps_its_embedded_stores_in_its_data_folder() -> None:
    """Without the compose file's Redis and PostgreSQL, the image's own defaults put both SQLite stores in
    its data folder (a volume in compose), not in HOME, which no volume covers."""
    env = dockerfile_env()
    for setting in WRITTEN_URL_SETTINGS:
        assert str(Path(sqlite_file(env[setting]) or "").parent) == env["RISK_DATA_DIR"], setting


@pytest.mark.parametrize("name", sorted(set(yaml.safe_load(COMPOSE.read_text())["services"])))
def test_third_party_images_keep_their_data_on_a_volume_of_their_own_folder(name: str) -> None:
    """Kafka, Redis, PostgreSQL, Prometheus and Grafana each mount a named volume on the data folder their
    image makes for its own user (Kafka's log directory is pointed there, away from the image's /tmp
    default); every other mount is a read-only file or folder of this repository."""
    service = services()[name]
    if service.get("image") == PROJECT_IMAGE:
        return
    data_folder = IMAGE_DATA_FOLDERS[image_name(service)]
    mounts = volume_targets(service)
    assert mounts.get(data_folder) in set(compose()["volumes"]), f"{name}: {data_folder} is not a named volume"
    if name == "kafka":
        assert service["environment"]["KAFKA_LOG_DIRS"] == data_folder
    for entry in service.get("volumes", []):
        source, target, *options = entry.split(":")
        if source.startswith("."):
            assert options == ["ro"] and (ROOT / source).exists(), f"{name}: {entry}"
        else:
            assert target == data_folder, f"{name}: {entry}"


def test_every_declared_volume_is_used() -> None:
    """Each top-level named volume is mounted by some service (none left over from an earlier layout)."""
    used = {source for s in services().values() for source in volume_targets(s).values()}
    assert set(compose()["volumes"]) <= used


def test_grafana_reads_its_dashboards_where_they_are_mounted() -> None:
    """The dashboard provider's folder is where the compose file mounts infra/grafana/dashboards."""
    provider = yaml.safe_load((ROOT / "infra/grafana/provisioning/dashboards/risk.yml").read_text())
    mounts = {source: target for target, source in volume_targets(services()["grafana"]).items()}
    assert provider["providers"][0]["options"]["path"] == mounts["./infra/grafana/dashboards"]


def test_every_http_server_is_scraped_and_every_service_records_in_postgres() -> None:
    """Prometheus scrapes each `risk serve` and `risk stream` service of the compose file (the workers on
    their metrics port); the services record decisions in the compose file's PostgreSQL, which has a health
    check they wait for."""
    http = {name for name, s in services().items() if s.get("command", [None])[0] in {"serve", "stream"}}
    scrape = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    targets = {t.split(":")[0] for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert http and targets == http
    assert "pg_isready" in " ".join(services()["postgres"]["healthcheck"]["test"])
    for name in http:
        url = services()[name]["environment"]["RISK_DECISIONS_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url
        assert services()[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name


def test_the_dashboard_reads_only_metrics_the_services_export() -> None:
    """Every metric name in the provisioned Grafana dashboard is one the code defines (counters, histograms,
    or the monitoring report's gauges), so no panel stays empty for a typo."""
    from prometheus_client import REGISTRY

    from shared.metrics import render

    report = {
        "service": "fraud",
        "alerts": [],
        "models": {
            "v1": {
                "drift": {"score": 0.1, "features": {"amount": 0.1}},
                "calibration": {"slope": 1.0, "brier": 0.1},
                "outcomes": {"review": {"precision": 0.5, "recall": 0.5}},
                "labelled": 10,
            }
        },
    }
    exported = {m.name for m in REGISTRY.collect()}
    exported |= set(re.findall(r"^# TYPE (\w+) ", render(report)[0].decode(), flags=re.MULTILINE))
    dashboard = json.loads((ROOT / "infra/grafana/dashboards/risk-scoring.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(risk_\w+?)(?:_bucket|_total)?\b(?=[\[{(\s)]|$)", target["expr"])
    }
    assert used, "the dashboard reads no metric"
    missing = {name for name in used if name not in exported and name.removesuffix("_total") not in exported}
    assert not missing, missing
