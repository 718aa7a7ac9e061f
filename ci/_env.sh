# Shared set-up for ci/ scripts (sourced): a project-local .venv with the package installed
# editable plus the extras named in PERFGATE_EXTRAS. Re-installs only when what the install reads
# changed: pyproject.toml, setup.py and the native extension's source (built on install where a C
# compiler exists; with valgrind's headers it can count instructions, so their arrival counts too).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
EXTRAS="${PERFGATE_EXTRAS:-dev}"
if [ ! -x .venv/bin/python ]; then
  echo "ci: creating .venv with $($PY --version 2>&1)"
  "$PY" -m venv .venv
fi
STAMP=".venv/.perfgate-installed-$EXTRAS"
WANT="$({ cat pyproject.toml setup.py src/pytest_perfgate/counts/_native.c; ls /usr/include/valgrind/callgrind.h 2>/dev/null; } | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "ci: installing pytest-perfgate[$EXTRAS] into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
  echo "$WANT" > "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
