# Sourced by run/benchmark scripts: WhatsApp settings for the local simulator.
# Real deployments set these in the environment (Meta's values); here random development
# secrets are created once in var/dev-secrets.env (mode 0600, never committed).
mkdir -p var
if [ ! -f var/dev-secrets.env ]; then
  umask 077
  python - > var/dev-secrets.env <<'PY'
import secrets
print(f"WHATSAPP_VERIFY_TOKEN={secrets.token_urlsafe(24)}")
print(f"WHATSAPP_APP_SECRET={secrets.token_hex(32)}")
print(f"WHATSAPP_ACCESS_TOKEN=DEV{secrets.token_urlsafe(48)}")
PY
fi
# Added later than the file may be: Rasa's HTTP API token (the reminder scheduler pushes
# reminders through Rasa's external-event endpoint with it).
if ! grep -q '^RASA_AUTH_TOKEN=' var/dev-secrets.env; then
  (umask 077; python -c "import secrets; print(f'RASA_AUTH_TOKEN={secrets.token_urlsafe(32)}')" >> var/dev-secrets.env)
fi
# The WhatsApp gateway's own secret for its calls to Rasa's /turn (never Meta's app secret).
if ! grep -q '^WHATSAPP_INTERNAL_SECRET=' var/dev-secrets.env; then
  (umask 077; python -c "import secrets; print(f'WHATSAPP_INTERNAL_SECRET={secrets.token_hex(32)}')" >> var/dev-secrets.env)
fi
set -a
# shellcheck disable=SC1091
. var/dev-secrets.env
set +a
SIMULATOR_PORT="${SIMULATOR_PORT:-8081}"
RASA_PORT="${RASA_PORT:-5005}"
ACTIONS_PORT="${ACTIONS_PORT:-5055}"
CLINIC_API_PORT="${CLINIC_API_PORT:-8090}"
WHATSAPP_GATEWAY_PORT="${WHATSAPP_GATEWAY_PORT:-5006}"
export WHATSAPP_PHONE_NUMBER_ID="${WHATSAPP_PHONE_NUMBER_ID:-100000000000001}"
export WHATSAPP_API_VERSION="${WHATSAPP_API_VERSION:-v23.0}"
export WHATSAPP_API_BASE_URL="${WHATSAPP_API_BASE_URL:-http://127.0.0.1:$SIMULATOR_PORT}"
# Booking in a WhatsApp Flow (README, "Booking in a form"): a development RSA key pair for the
# Flow's data endpoint (the gateway decrypts with the private key; the simulator, standing in
# for Meta, encrypts with the public one), the Flow registered with the simulator, and its id.
if [ ! -f var/flows-private.pem ]; then
  (umask 077; python -c "from whatsapp.flows_crypto import generate_private_key_pem as g; import sys; sys.stdout.buffer.write(g())" > var/flows-private.pem)
fi
if [ ! -f var/flows-public.pem ]; then
  python -c "from whatsapp.flows_crypto import load_private_key as l, public_key_pem as p; import sys; sys.stdout.buffer.write(p(l(open('var/flows-private.pem','rb').read())))" > var/flows-public.pem
fi
export WHATSAPP_FLOWS_PRIVATE_KEY_FILE="${WHATSAPP_FLOWS_PRIVATE_KEY_FILE:-$PWD/var/flows-private.pem}"
export WHATSAPP_FLOWS_PUBLIC_KEY_FILE="${WHATSAPP_FLOWS_PUBLIC_KEY_FILE:-$PWD/var/flows-public.pem}"
export WHATSAPP_BOOKING_FLOW_ID="${WHATSAPP_BOOKING_FLOW_ID:-990000000000001}"
export SIMULATOR_FLOWS="${SIMULATOR_FLOWS:-$WHATSAPP_BOOKING_FLOW_ID,$PWD/clinic/booking_flow/flow.json,http://127.0.0.1:$WHATSAPP_GATEWAY_PORT/flows/booking}"
