#!/usr/bin/env bash
# prober's developer entry point; the README's Quick start uses it.
#   ./dev.sh demo    set up, then serve the bundled demo (metrics URL printed)
#   ./dev.sh test    set up, then run linters, type checks and the whole test suite
#   ./dev.sh image   set up, then build the container image with buildah and test it
#                    (deploy/tools/build_image.py; README "Image")
#   ./dev.sh packages demo|test|image
#                    print the Debian packages set-up would install on this machine
# Set-up is idempotent: Debian packages only when missing, pip only when pyproject changed.
# It installs whatever version Debian currently offers, never an exact version: the
# archive drops old Chromium versions with every security update (tests/deploy/test_dev_sh.py).
set -euo pipefail
cd "$(dirname "$0")"

usage() {
  echo "usage: ./dev.sh demo|test|image [args...] | ./dev.sh packages demo|test|image" >&2
  exit 2
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The Debian packages VERB needs that this machine lacks, one name a line.
packages_for() {
  local verb=$1
  if ! command -v python3 >/dev/null \
     || ! python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    printf '%s\n' python3 python3-venv python3-pip
  fi
  # Every verb needs Chromium: demo and test drive it; image compares the image's with it.
  command -v chromium >/dev/null || echo chromium
  case "$verb" in
    test)
      # promtool and a real Prometheus; Debian's python3 for the image-user check.
      command -v promtool >/dev/null || echo prometheus
      [ -x /usr/bin/python3 ] || echo python3
      ;;
    image)
      command -v buildah >/dev/null || echo buildah
      command -v mmdebstrap >/dev/null || echo mmdebstrap
      ;;
  esac
}

verb="${1:-}"
case "$verb" in
  demo|test|image) shift ;;
  packages)
    case "${2:-}" in demo|test|image) packages_for "$2"; exit 0 ;; *) usage ;; esac
    ;;
  *) usage ;;
esac

mapfile -t packages < <(packages_for "$verb" | sort -u)
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
  image)
    # buildah wants root.
    if [ "$(id -u)" -eq 0 ]; then exec .venv/bin/python deploy/tools/build_image.py "$@"; fi
    exec sudo .venv/bin/python deploy/tools/build_image.py "$@"
    ;;
  demo)
    exec .venv/bin/prober demo --listen "${PROBER_LISTEN:-127.0.0.1:8080}"
    ;;
  test)
    .venv/bin/ruff check prober tests bench deploy/tools
    .venv/bin/ruff format --check prober tests bench deploy/tools
    .venv/bin/mypy
    .venv/bin/mypy --strict deploy/tools
    exec .venv/bin/python -m pytest "$@"
    ;;
esac
