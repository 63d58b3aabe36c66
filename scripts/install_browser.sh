#!/usr/bin/env bash
# Install Debian's chromium (headless) for the run report's browser test, when it is missing.
# Usage: scripts/install_browser.sh
# Never fails `make setup`: without apt (or root/sudo) it prints a warning and how to install it;
# tests/test_report.py then fails with the same advice instead of skipping.
set -uo pipefail

if [ -n "${SPARSE_AE_CHROMIUM:-}" ] && [ -x "$SPARSE_AE_CHROMIUM" ]; then
  echo "setup: browser: $SPARSE_AE_CHROMIUM (SPARSE_AE_CHROMIUM)"
  exit 0
fi
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "setup: browser found: $(command -v "$name")"
    exit 0
  fi
done

if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  as_root=unavailable
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "${as_root[*]:-}" = unavailable ]; then
  echo "setup: WARNING: chromium is not installed and cannot be installed here (needs apt-get and root or sudo)." >&2
  echo "setup: WARNING: install it with 'apt-get install -y --no-install-recommends chromium'," \
       "or set SPARSE_AE_CHROMIUM=/path/to/chromium; the report's browser test fails without it." >&2
  exit 0
fi

echo "setup: installing chromium for the report's browser test (apt-get)"
export DEBIAN_FRONTEND=noninteractive
# A stale package list cannot find the current chromium version: update first.
if ! "${as_root[@]}" apt-get update -qq \
   || ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  echo "setup: WARNING: 'apt-get install chromium' failed; the report's browser test fails without it." >&2
  exit 0
fi
echo "setup: browser installed: $(command -v chromium)"
