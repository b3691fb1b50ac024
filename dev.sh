#!/usr/bin/env bash
# prober's developer entry point; the README's Quick start uses it.
#   ./dev.sh demo   set up, then serve the bundled demo (metrics URL printed)
#   ./dev.sh test   set up, then run linters, type checks and the whole test suite
# Set-up is idempotent: Debian packages only when missing, pip only when pyproject changed.
set -euo pipefail
cd "$(dirname "$0")"

verb="${1:-}"
case "$verb" in
  demo|test) shift ;;
  *) echo "usage: ./dev.sh demo|test [pytest args...]" >&2; exit 2 ;;
esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=()
if ! command -v python3 >/dev/null \
   || ! python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  packages+=(python3 python3-venv python3-pip)
fi
if [ "$verb" = test ]; then
  # The tests drive the Chromium the Docker image pins (tests/deploy/test_dockerfile.py), need
  # promtool and a real Prometheus, and Debian's python3 for the image-user check.
  pin=$(sed -n 's/^ARG CHROMIUM_VERSION=//p' Dockerfile)
  command -v chromium >/dev/null || packages+=("chromium=$pin" "chromium-common=$pin")
  command -v promtool >/dev/null || packages+=(prometheus)
  [ -x /usr/bin/python3 ] || packages+=(python3)
else
  command -v chromium >/dev/null || packages+=(chromium)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  echo "dev.sh: installing Debian packages: ${packages[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "dev.sh: installing prober and its Python dependencies into .venv" >&2
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

case "$verb" in
  demo)
    exec .venv/bin/prober demo --listen "${PROBER_LISTEN:-127.0.0.1:8080}"
    ;;
  test)
    .venv/bin/ruff check prober tests bench
    .venv/bin/ruff format --check prober tests bench
    .venv/bin/mypy
    exec .venv/bin/python -m pytest "$@"
    ;;
esac
