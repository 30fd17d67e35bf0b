# Sourced by the scripts: one place for the environment every Rasa command runs with.
export RASA_TELEMETRY_ENABLED=false          # never phone home (no internet here, and PHI)
export TF_CPP_MIN_LOG_LEVEL=2                # TensorFlow: errors only
export SQLALCHEMY_SILENCE_UBER_WARNING=1     # Rasa 3.6 uses SQLAlchemy 1.4 APIs on purpose
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::DeprecationWarning}"
export PATH="$PWD/.venv/bin:$PATH"
# The model every command trains, runs and tests (rasa train --fixed-model-name).
MODEL_NAME=assistant
MODEL_PATH="models/$MODEL_NAME.tar.gz"
RASA_ARGS=(--domain domain --config config.yml)
# endpoints.yml's tracker store: empty = the SQLite file under var/; a PostgreSQL URL for
# several Rasa replicas (README, "Several Rasa replicas"). REDIS_URL: their lock store.
export RASA_TRACKER_STORE_URL="${RASA_TRACKER_STORE_URL:-}"
