#!/usr/bin/env bash
# Runs the assistant: trains if needed, starts the action server, opens a chat in the terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/train.sh
source scripts/env.sh
mkdir -p var/logs

ACTIONS_PORT="${ACTIONS_PORT:-5055}"
rasa run actions --actions actions --port "$ACTIONS_PORT" > var/logs/actions.log 2>&1 &
actions_pid=$!
trap 'kill "$actions_pid" 2>/dev/null || true' EXIT

echo "Starting the action server (log: var/logs/actions.log)..."
for _ in $(seq 1 60); do
  if python -c "import urllib.request as u; u.urlopen('http://localhost:$ACTIONS_PORT/health', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$actions_pid" 2>/dev/null; then
    echo "The action server stopped; see var/logs/actions.log" >&2
    exit 1
  fi
  sleep 1
done

echo "Chat with the assistant below. Type /stop to quit."
rasa shell --model "$MODEL_PATH" --endpoints endpoints.yml --credentials credentials.yml
