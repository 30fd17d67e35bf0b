#!/usr/bin/env bash
# The project's test command (README): sets up the environment, then runs every test.
# The model tests train models/assistant.tar.gz first if the data changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
exec python -m pytest "$@"
