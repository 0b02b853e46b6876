# Sourced by the other scripts: find or install uv, then install the locked environment.
# Needs only Python 3.11+ on PATH; everything else comes from the lock file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

UV_VERSION="0.13.8"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "error: Python 3.11 or newer is required on PATH" >&2
  exit 1
}

if command -v uv >/dev/null 2>&1; then
  UV="$(command -v uv)"
else
  # A private copy of uv, so nothing is installed outside the repository.
  if [ ! -x "$ROOT/.tools/bin/uv" ]; then
    echo "Installing uv $UV_VERSION into .tools/ ..." >&2
    "$(find_python)" -m venv "$ROOT/.tools"
    "$ROOT/.tools/bin/python" -m pip install --quiet --disable-pip-version-check \
      "uv==$UV_VERSION"
  fi
  UV="$ROOT/.tools/bin/uv"
fi

# Compiled bytecode: this machine may set PYTHONDONTWRITEBYTECODE, and every start
# of `completions-agent` would otherwise compile its imports again.
"$UV" sync --frozen --quiet --compile-bytecode --python "$(find_python)"

# A fresh Prefect home needs more than the default 20 s to start its ephemeral
# server on a small machine, and telemetry cannot leave an offline one.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="${PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS:-180}"
export PREFECT_SERVER_ANALYTICS_ENABLED="${PREFECT_SERVER_ANALYTICS_ENABLED:-false}"
