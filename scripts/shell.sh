#!/usr/bin/env bash
# Chat with the assistant in the terminal (no WhatsApp, no simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/train.sh
source scripts/env.sh
mkdir -p var/logs
ACTIONS_PORT="${ACTIONS_PORT:-5055}"
rasa run actions --actions actions --port "$ACTIONS_PORT" > var/logs/actions.log 2>&1 &
actions_pid=$!
trap 'kill "$actions_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  python -c "import urllib.request as u; u.urlopen('http://localhost:$ACTIONS_PORT/health', timeout=1)" 2>/dev/null && break
  kill -0 "$actions_pid" 2>/dev/null || { echo "The action server stopped; see var/logs/actions.log" >&2; exit 1; }
  sleep 1
done
echo "Chat with the assistant below. Type /stop to quit."
# Only the terminal channel: credentials for WhatsApp are not needed here.
rasa shell --model "$MODEL_PATH" --endpoints endpoints.yml
