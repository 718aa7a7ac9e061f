# Shared set-up for ci/ scripts (sourced): a project-local .venv with the package installed
# editable plus the extras named in PERFGATE_EXTRAS. Re-installs only when pyproject.toml changed.
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
WANT="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "ci: installing pytest-perfgate[$EXTRAS] into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
  echo "$WANT" > "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
