#!/usr/bin/env bash
# Runs the assistant with the embedded defaults: SQLite, the action server, Rasa with the
# WhatsApp channel (the /turn endpoint), the WhatsApp gateway (webhooks, inbox, turns, replies:
# `python -m gateway`, a process without Rasa), and the local WhatsApp Cloud API simulator
# whose chat page you open in a browser. No Meta account needed. Ctrl+C stops everything.
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

# The clinic database (var/clinic.db): schema migrations, then the synthetic demo clinic
# (2 locations, 6 practitioners, 4 services), topped up to 4 weeks of free slots.
python -m clinic.scheduling.demo_data --weeks 4 > var/logs/demo-data.log 2>&1 \
  || { echo "Could not prepare the clinic database; see var/logs/demo-data.log" >&2; exit 1; }
# The demo documents (content/knowledge/), approved, when the clinic has no document yet.
python -m clinic.knowledge.demo >> var/logs/demo-data.log 2>&1 \
  || { echo "Could not add the demo documents; see var/logs/demo-data.log" >&2; exit 1; }
# A development API key for the clinic API (shown below), with every scope; made again
# when the scopes change.
DEV_KEY_SCOPES="appointments:read appointments:write reports:read notifications:write portal:verify portal:links"
if [ ! -s var/dev-api-key ] || [ "$(cat var/dev-api-key.scopes 2>/dev/null)" != "$DEV_KEY_SCOPES" ]; then
  old_name=$(cat var/dev-api-key.name 2>/dev/null || echo demo-clinic-system)
  python -m clinic_api.keys revoke "$old_name" >/dev/null 2>&1 || true
  name="demo-clinic-system-$(date +%s)"
  # shellcheck disable=SC2086
  (umask 077; python -m clinic_api.keys create "$name" $DEV_KEY_SCOPES > var/dev-api-key)
  echo "$name" > var/dev-api-key.name
  echo "$DEV_KEY_SCOPES" > var/dev-api-key.scopes
fi
# The demo patient portal is served by the clinic API: results-ready links point there.
export CLINIC_PORTAL_URL="${CLINIC_PORTAL_URL:-http://localhost:$CLINIC_API_PORT/portal}"
export REMINDER_POLL_SECONDS="${REMINDER_POLL_SECONDS:-5}"

echo "Starting the action server, the assistant, the WhatsApp gateway, the reminder scheduler, the clinic API, the staff inbox and the WhatsApp simulator (logs in var/logs/)..."
# Rasa through scripts/quiet_rasa.py: its logs without the warnings this project expects.
# logging.yml: their logs as one JSON object per line, like every other process (clinic/logs.py).
python -m scripts.quiet_rasa run actions --actions actions --port "$ACTIONS_PORT" \
  --logging-config-file logging.yml > var/logs/actions.log 2>&1 &
pids+=($!); actions_pid=$!
# --enable-api: the reminder scheduler pushes reminders through Rasa's external-event
# endpoint; the token keeps the API closed to everyone else.
# WHATSAPP_GATEWAY=1: the gateway below takes Meta's webhooks and runs each turn through
# Rasa, so acknowledgements and WhatsApp's bookkeeping never wait behind the model.
WHATSAPP_GATEWAY=1 python -m scripts.quiet_rasa run --model "$MODEL_PATH" --port "$RASA_PORT" --endpoints endpoints.yml \
  --credentials credentials.yml --interface 127.0.0.1 --enable-api --auth-token="$RASA_AUTH_TOKEN" \
  --logging-config-file logging.yml > var/logs/rasa.log 2>&1 &
pids+=($!); rasa_pid=$!
python -m gateway --host 127.0.0.1 --port "$WHATSAPP_GATEWAY_PORT" \
  --rasa-url "http://127.0.0.1:$RASA_PORT" > var/logs/whatsapp-gateway.log 2>&1 &
pids+=($!); gateway_pid=$!
RASA_URL="http://127.0.0.1:$RASA_PORT" python -m clinic.reminders.scheduler > var/logs/reminders.log 2>&1 &
pids+=($!)
# Satisfaction surveys after fulfilled visits (a template with 1-5 taps), checked every minute.
python -m clinic.surveys send --loop 60 > var/logs/surveys.log 2>&1 &
pids+=($!)
python -m clinic_api --host 127.0.0.1 --port "$CLINIC_API_PORT" > var/logs/clinic-api.log 2>&1 &
pids+=($!); api_pid=$!
# The staff inbox: tickets for "talk to a person", staff replies through the WhatsApp sender
# (the simulator here), pause/resume through Rasa's HTTP API. --demo: demo staff accounts.
export RASA_URL="http://127.0.0.1:$RASA_PORT"
INBOX_PORT="${INBOX_PORT:-8070}"
python -m inbox --host 127.0.0.1 --port "$INBOX_PORT" --demo > var/logs/inbox.log 2>&1 &
pids+=($!); inbox_pid=$!
python -m simulator --host 127.0.0.1 --port "$SIMULATOR_PORT" \
  --webhook-url "http://127.0.0.1:$WHATSAPP_GATEWAY_PORT/webhooks/whatsapp/webhook" > var/logs/simulator.log 2>&1 &
pids+=($!); sim_pid=$!

wait_for "http://127.0.0.1:$ACTIONS_PORT/health" "The action server" "$actions_pid" var/logs/actions.log
wait_for "http://127.0.0.1:$SIMULATOR_PORT/healthz" "The simulator" "$sim_pid" var/logs/simulator.log
wait_for "http://127.0.0.1:$CLINIC_API_PORT/api/health" "The clinic API" "$api_pid" var/logs/clinic-api.log
wait_for "http://127.0.0.1:$INBOX_PORT/inbox/health" "The staff inbox" "$inbox_pid" var/logs/inbox.log
wait_for "http://127.0.0.1:$RASA_PORT/webhooks/whatsapp/" "The assistant" "$rasa_pid" var/logs/rasa.log
wait_for "http://127.0.0.1:$WHATSAPP_GATEWAY_PORT/webhooks/whatsapp/" "The WhatsApp gateway" "$gateway_pid" var/logs/whatsapp-gateway.log

cat <<MSG

  The assistant is running. Chat with it like on WhatsApp:

      http://localhost:$SIMULATOR_PORT/

  (another patient: http://localhost:$SIMULATOR_PORT/?user=15550002222&name=Sam)

  Clinic API (outcomes, reports, notifications): http://localhost:$CLINIC_API_PORT/api/docs
  Demo patient portal (links in "results ready" messages): $CLINIC_PORTAL_URL
      development key: $(cat var/dev-api-key)
  Staff inbox (answer patients who ask for a person): http://localhost:$INBOX_PORT/inbox/login
$(sed -n '/demo accounts/,/demo-admin/p' var/logs/inbox.log | sed 's/^/      /')
      (a TOTP code without a phone: python -c "import pyotp; print(pyotp.TOTP('KEY').now())")
  Press Ctrl+C to stop.

MSG
wait -n "${pids[@]}"
echo "A process stopped; see var/logs/." >&2
