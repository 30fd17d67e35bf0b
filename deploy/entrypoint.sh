#!/usr/bin/env bash
# The image's entrypoint: the first argument is the role, the rest go to its command.
# Each role starts the command scripts/run.sh starts for it (Rasa through
# scripts/quiet_rasa.py, logs as JSON lines from logging.yml), listening on 0.0.0.0 inside
# the container. Settings and secrets come from the environment (README, "Deploying";
# deploy/compose.yml documents each variable).
set -euo pipefail
cd /app

role="${1:-help}"
[ $# -gt 0 ] && shift

# Keys every process of a deployment must share. Without them each process would make its
# own key file under var/ on first use (right for `make run` on one machine, wrong for
# containers): pseudonyms and encrypted data would differ per replica. So a role refuses
# to start without them.
require() {
  local missing=()
  for name in "$@"; do [ -n "${!name:-}" ] || missing+=("$name"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "entrypoint: role '$role' needs ${missing[*]} in the environment (make them with the 'secrets' role; README, 'Deploying')" >&2
    exit 64
  fi
}
CLINIC_KEYS=(CLINIC_DATABASE_URL CLINIC_PSEUDONYM_KEY CLINIC_ENCRYPTION_KEY CLINIC_ENCRYPTION_KEYS
             CLINIC_DOCUMENT_KEY CLINIC_PORTAL_TOKEN_KEY)
WHATSAPP_KEYS=(WHATSAPP_VERIFY_TOKEN WHATSAPP_APP_SECRET WHATSAPP_ACCESS_TOKEN WHATSAPP_PHONE_NUMBER_ID
               WHATSAPP_INTERNAL_SECRET)

# endpoints.yml names the action server at localhost; in a container it is another host.
# ACTION_ENDPOINT_URL replaces that one value in a copy (the file is otherwise used as is).
endpoints_file() {
  if [ -z "${ACTION_ENDPOINT_URL:-}" ]; then echo endpoints.yml; return; fi
  local out=/tmp/endpoints.yml
  sed -E "/^action_endpoint:/,/^[a-z_]+:/ s#^(  url: ).*#\\1\"${ACTION_ENDPOINT_URL}\"#" endpoints.yml > "$out"
  echo "$out"
}

case "$role" in
  rasa)
    require "${CLINIC_KEYS[@]}" "${WHATSAPP_KEYS[@]}" RASA_AUTH_TOKEN TRACKER_ENCRYPTION_KEYS RASA_TRACKER_STORE_URL
    [ -s "$MODEL_PATH" ] || { echo "entrypoint: no model at $MODEL_PATH (mount models/assistant.tar.gz: make train)" >&2; exit 66; }
    # --enable-api with a token: the scheduler and the inbox use Rasa's HTTP API, nobody else.
    # WHATSAPP_GATEWAY=1: the gateway processes own the WhatsApp inbox; Rasa answers turns.
    export WHATSAPP_GATEWAY="${WHATSAPP_GATEWAY:-1}"
    exec python -m scripts.quiet_rasa run --model "$MODEL_PATH" --port "${PORT:-5005}" \
      --interface 0.0.0.0 --endpoints "$(endpoints_file)" --credentials credentials.yml \
      --enable-api "--auth-token=$RASA_AUTH_TOKEN" --logging-config-file logging.yml "$@" ;;
  actions)
    require "${CLINIC_KEYS[@]}"
    exec python -m scripts.quiet_rasa run actions --actions actions --port "${PORT:-5055}" \
      --logging-config-file logging.yml "$@" ;;
  gateway)
    # gateway door|relay|all: a door needs RELAY_URL (the relay it notifies).
    require "${CLINIC_KEYS[@]}" "${WHATSAPP_KEYS[@]}"
    gateway_role="${1:-all}"
    [ $# -gt 0 ] && shift
    extra=()
    if [ "$gateway_role" = door ]; then
      require RELAY_URL
      extra+=(--relay-url "$RELAY_URL")
    fi
    exec python -m gateway --role "$gateway_role" --host 0.0.0.0 --port "${PORT:-5006}" "${extra[@]}" "$@" ;;
  scheduler)
    require "${CLINIC_KEYS[@]}" "${WHATSAPP_KEYS[@]}" RASA_URL RASA_AUTH_TOKEN
    exec python -m clinic.reminders.scheduler "$@" ;;
  surveys)
    require "${CLINIC_KEYS[@]}"
    exec python -m clinic.surveys send --loop "${SURVEY_LOOP_SECONDS:-60}" "$@" ;;
  inbox)
    require "${CLINIC_KEYS[@]}" "${WHATSAPP_KEYS[@]}" INBOX_SECRET_KEY RASA_URL RASA_AUTH_TOKEN TRACKER_ENCRYPTION_KEYS
    exec python -m inbox --host 0.0.0.0 --port "${PORT:-8070}" "$@" ;;
  clinic-api)
    require "${CLINIC_KEYS[@]}"
    exec python -m clinic_api --host 0.0.0.0 --port "${PORT:-8090}" "$@" ;;
  migrate)
    # Once per deployment and release, before the other roles: the clinic database's
    # migrations (alembic; safe if two run at once), Rasa's tracker tables (created by the
    # tracker store itself, so two replicas never race to create them), and with
    # DEMO_DATA=1 the synthetic demo clinic.
    require "${CLINIC_KEYS[@]}" RASA_TRACKER_STORE_URL TRACKER_ENCRYPTION_KEYS
    python -c "from clinic.db import create_schema, make_engine; create_schema(make_engine()); print('clinic database: schema current')"
    python -m addons.encrypted_tracker_store status --endpoints endpoints.yml >/dev/null
    echo "tracker store: tables ready"
    if [ "${DEMO_DATA:-0}" = 1 ]; then
      python -m clinic.scheduling.demo_data --weeks "${DEMO_WEEKS:-4}"
    fi ;;
  simulator)
    # The WhatsApp Cloud API simulator, standing in for Meta in a demo (never in production).
    exec python -m simulator --host 0.0.0.0 --port "${PORT:-8081}" "$@" ;;
  secrets)
    # A fresh set of every key and token, as an env file (write it 0600, keep it out of git).
    # --demo: also Meta's values for the simulator (COMPOSE_PROFILES=demo), never for a real number.
    exec python - "$@" <<'PY'
import base64, secrets, sys
from cryptography.fernet import Fernet
from clinic.at_rest import new_key_entry
values = {
    "CLINIC_PSEUDONYM_KEY": secrets.token_hex(32),
    "CLINIC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "CLINIC_ENCRYPTION_KEYS": new_key_entry(),
    "TRACKER_ENCRYPTION_KEYS": new_key_entry(),
    "CLINIC_DOCUMENT_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "CLINIC_PORTAL_TOKEN_KEY": secrets.token_hex(32),
    "INBOX_SECRET_KEY": secrets.token_hex(32),
    "RASA_AUTH_TOKEN": secrets.token_hex(24),
    "WHATSAPP_INTERNAL_SECRET": secrets.token_hex(32),
    "POSTGRES_PASSWORD": secrets.token_hex(16),
}
if "--demo" in sys.argv[1:]:
    values.update({
        "COMPOSE_PROFILES": "demo",
        "DEMO_DATA": "1",
        "WHATSAPP_API_BASE_URL": "http://simulator:8081",
        "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
        "WHATSAPP_APP_SECRET": secrets.token_hex(32),
        "WHATSAPP_ACCESS_TOKEN": "DEMO" + secrets.token_urlsafe(32),
    })
values.setdefault("WHATSAPP_VERIFY_TOKEN", secrets.token_urlsafe(24))
print("# Made by `docker run --rm clinic-assistant secrets`. Secret: mode 0600, never in git.")
for name, value in values.items():
    print(f"{name}={value}")
PY
    ;;
  probe)
    # probe URL: exit 0 when it answers 200 (compose healthchecks; the image has no curl).
    # -S: no site-packages to scan, a quicker start (it runs every few seconds).
    exec python -S -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$@" ;;
  shell)
    exec bash "$@" ;;
  help|--help|-h)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    echo "roles: rasa actions gateway{door|relay|all} scheduler surveys inbox clinic-api migrate simulator secrets probe shell"
    ;;
  *)
    exec "$role" "$@" ;;
esac
