#!/usr/bin/env bash
# Trains models/assistant.tar.gz. Rasa skips training when data, domain and config are
# unchanged, so this is quick to call before every run or test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
# Through scripts/quiet_rasa.py: the same `rasa train`, without the warnings this project
# expects (responses sent by actions, placeholder intents...; each explained there).
python -m scripts.quiet_rasa train "${RASA_ARGS[@]}" --data data --fixed-model-name "$MODEL_NAME" --out models "$@"
