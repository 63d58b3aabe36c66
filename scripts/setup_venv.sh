#!/usr/bin/env bash
# Create .venv with Python 3.10 and install the project with the pinned working set.
# Usage: scripts/setup_venv.sh [EXTRAS]   (default extras: dev,kubeflow,airflow,tuner)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev,kubeflow,airflow,tuner}"
venv=.venv
uv_version=0.13.9

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then
  python="$(scripts/find_python.sh)"
  echo "setup: creating $venv with $python"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
if [ ! -x "$venv/bin/uv" ] || [ "$("$venv/bin/uv" --version | cut -d' ' -f2)" != "$uv_version" ]; then
  # uv resolves and installs the 3 GB TFX set in seconds where pip takes minutes.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version" 2>&1 | grep -v "is ignored" || true
fi
echo "setup: installing .[$extras] with constraints.txt"
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -c constraints.txt -e ".[$extras]"
# uv installs no bytecode, and where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) Python never
# writes any: every process would compile TensorFlow, TFX and Beam from source again (import
# pipeline.local_runner took more than twice as long: docs/benchmarks.md, "One-off measurements").
# Compile the installed set once, in parallel; files already compiled are skipped.
echo "setup: compiling the installed packages to bytecode"
"$venv/bin/python" -m compileall -q -j 0 "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null \
  || echo "setup: some files did not compile to bytecode; they run from source"
