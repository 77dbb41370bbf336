#!/usr/bin/env bash
# Installs ezd's Python environment from the lock file, on a fresh machine, non-interactively:
# uv (pinned) into .tools/, then `uv sync --frozen` into .venv/ (dev tools included).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV_VERSION=0.13.8
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "ezd needs Python 3.11 or newer (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version | awk '{print $2}')" != "$UV_VERSION" ]; then
  echo "installing uv $UV_VERSION into .tools/"
  "$PY" -m venv .tools
  .tools/bin/pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
export UV_PYTHON="$PY" UV_PYTHON_DOWNLOADS=never
.tools/bin/uv sync --frozen --quiet --compile-bytecode
echo "ezd installed in .venv ($(.venv/bin/python --version))"
