#!/usr/bin/env bash
# Print the path of a Python 3.10 interpreter: $PYTHON if set, python3.10 on PATH,
# or a pyenv-installed 3.10 (pyenv's shim only works when that version is selected,
# so the version folders are searched directly).
set -euo pipefail

is_py310() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }

for candidate in "${PYTHON:-}" python3.10; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && is_py310 "$candidate"; then
    command -v "$candidate"; exit 0
  fi
done

pyenv_root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
for candidate in $(ls -d "$pyenv_root"/versions/3.10*/bin/python3.10 2>/dev/null | sort -V -r); do
  if is_py310 "$candidate"; then echo "$candidate"; exit 0; fi
done

echo "error: no Python 3.10 found (TFX 1.16 needs it). Put python3.10 on PATH, set PYTHON=/path/to/python3.10, or 'pyenv install 3.10'." >&2
exit 1
