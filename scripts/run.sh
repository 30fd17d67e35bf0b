#!/usr/bin/env bash
# Runs the assistant with the embedded defaults: SQLite, the action server, Rasa with the
# WhatsApp channel, and the local WhatsApp Cloud API simulator whose chat page you open in
# a browser. No Meta account needed. Ctrl+C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/train.sh
source scripts/env.sh
source scripts/dev_secrets.sh
mkdir -p var/logs

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_for() {  # url name pid log
  for _ in $(seq 1 180); do
    if python -c "import urllib.request as u; u.urlopen('$1', timeout=1)" 2>/dev/null; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "$2 stopped; see $4" >&2; exit 1; fi
    sleep 1
  done
  echo "$2 did not start in time; see $4" >&2; exit 1
}

echo "Starting the action server, the assistant and the WhatsApp simulator (logs in var/logs/)..."
rasa run actions --actions actions --port "$ACTIONS_PORT" > var/logs/actions.log 2>&1 &
pids+=($!); actions_pid=$!
rasa run --model "$MODEL_PATH" --port "$RASA_PORT" --endpoints endpoints.yml \
  --credentials credentials.yml > var/logs/rasa.log 2>&1 &
pids+=($!); rasa_pid=$!
python -m simulator --host 127.0.0.1 --port "$SIMULATOR_PORT" \
  --webhook-url "http://127.0.0.1:$RASA_PORT/webhooks/whatsapp/webhook" > var/logs/simulator.log 2>&1 &
pids+=($!); sim_pid=$!

wait_for "http://127.0.0.1:$ACTIONS_PORT/health" "The action server" "$actions_pid" var/logs/actions.log
wait_for "http://127.0.0.1:$SIMULATOR_PORT/healthz" "The simulator" "$sim_pid" var/logs/simulator.log
wait_for "http://127.0.0.1:$RASA_PORT/webhooks/whatsapp/" "The assistant" "$rasa_pid" var/logs/rasa.log

cat <<MSG

  The assistant is running. Chat with it like on WhatsApp:

      http://localhost:$SIMULATOR_PORT/

  (another patient: http://localhost:$SIMULATOR_PORT/?user=15550002222&name=Sam)
  Press Ctrl+C to stop.

MSG
wait -n "${pids[@]}"
echo "A process stopped; see var/logs/." >&2
