#!/usr/bin/env bash
# Creates .venv from a Python 3.10 interpreter and installs the pinned dependencies.
# Idempotent and quick when nothing changed: a stamp records the hash of the requirement files.
#
# Rasa 3.6 runs on Python 3.8-3.10 only (3.11 is rejected), so we look for 3.10 in this order:
#   $PYTHON (if it is 3.10) · python3.10 on PATH · pyenv's versions/3.10.* · /usr/bin/python3.10
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.requirements.sha256"

is_py310() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; }

find_python310() {
  local candidate root
  for candidate in "${PYTHON:-}" "$(command -v python3.10 2>/dev/null || true)"; do
    if [ -n "$candidate" ] && is_py310 "$candidate"; then echo "$candidate"; return 0; fi
  done
  root="${PYENV_ROOT:-}"
  if [ -z "$root" ] && command -v pyenv >/dev/null 2>&1; then root="$(pyenv root)"; fi
  [ -n "$root" ] || root="$HOME/.pyenv"
  # Newest 3.10.x first.
  for candidate in $(ls -d "$root"/versions/3.10.* 2>/dev/null | sort -V -r); do
    if is_py310 "$candidate/bin/python"; then echo "$candidate/bin/python"; return 0; fi
  done
  if is_py310 /usr/bin/python3.10; then echo /usr/bin/python3.10; return 0; fi
  return 1
}

if [ -x "$VENV/bin/python" ] && ! is_py310 "$VENV/bin/python"; then
  echo "bootstrap: $VENV is not Python 3.10; rebuilding it" >&2
  rm -rf "$VENV"
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! PY=$(find_python310); then
    cat >&2 <<'MSG'
bootstrap: Python 3.10 is required (Rasa 3.6 does not run on 3.11+), and none was found.
Install one, then run this command again. For example:
  pyenv install 3.10.13                 # with pyenv (https://github.com/pyenv/pyenv)
  sudo apt-get install python3.10-venv  # on Debian/Ubuntu releases that ship 3.10
or point to an interpreter:  PYTHON=/path/to/python3.10 make run
MSG
    exit 1
  fi
  echo "bootstrap: creating $VENV with $PY ($("$PY" --version))"
  "$PY" -m venv "$VENV"
fi

want=$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: installing pinned dependencies into $VENV (first run takes a few minutes)"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24" "setuptools==70.3.0" wheel
"$VENV/bin/python" -m pip install --quiet -r requirements.txt -r requirements-dev.txt -c constraints.txt
echo "$want" > "$STAMP"
echo "bootstrap: ready ($("$VENV/bin/python" --version), rasa $("$VENV/bin/python" -c 'import rasa; print(rasa.__version__)' 2>/dev/null))"
