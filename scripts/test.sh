#!/usr/bin/env bash
# Set-up plus the whole test suite on a fresh machine (Python 3.11, package registries only).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[dev]"
# The browser test drives Debian's Chromium; test tools' own browser downloads fail offline.
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
fi
python3 -m ruff check .
python3 -m pytest -q
