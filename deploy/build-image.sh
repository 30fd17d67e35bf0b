#!/usr/bin/env bash
# `make image`: builds the assistant's image (Dockerfile) as ${CLINIC_IMAGE:-clinic-assistant:latest}.
#   1. the base images (deploy/standins/build.sh: present, pulled, or local stand-ins when
#      Docker Hub cannot be reached);
#   2. deploy/wheelhouse/: every pinned dependency as a wheel, made with this machine's pip
#      (its cache, find-links and local indexes), so the image installs without downloading
#      TensorFlow again, put in an image of its own (clinic-assistant-wheels:<hash of the
#      requirements and base>) that the Dockerfile's dependency stage starts from; both made
#      only when the requirements or the base change. WHEELHOUSE=0: install from PyPI;
#   3. docker build (the classic builder: no BuildKit/buildx needed). Its cache is the
#      dependency stage's untagged image: `docker image prune` removes it, and the next build
#      installs the dependencies again (minutes, from the wheels image, not from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${CLINIC_IMAGE:-clinic-assistant:latest}"
PYTHON_IMAGE="${PYTHON_IMAGE:-python:3.10-slim-bookworm}"

bash deploy/standins/build.sh

# The classic builder (no BuildKit/buildx needed); its output only when it fails.
quiet_build() {
  local out
  if ! out=$(DOCKER_BUILDKIT=0 docker build --quiet "$@" 2>&1); then echo "$out" >&2; return 1; fi
}

deps_image="$PYTHON_IMAGE"
if [ "${WHEELHOUSE:-1}" = 1 ]; then
  want=$( (cat requirements.txt constraints.txt; docker image inspect -f '{{.Id}}' "$PYTHON_IMAGE") | sha256sum | cut -c1-16)
  deps_image="clinic-assistant-wheels:$want"
  if ! docker image inspect "$deps_image" >/dev/null 2>&1; then
    stamp=deploy/wheelhouse/.requirements.sha256
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      bash scripts/bootstrap.sh
      echo "image: collecting wheels into deploy/wheelhouse/ (from the pip cache when it has them)" >&2
      rm -f deploy/wheelhouse/*.whl
      .venv/bin/python -m pip wheel --quiet --disable-pip-version-check -w deploy/wheelhouse \
        -r requirements.txt -c constraints.txt "setuptools==70.3.0" wheel 2>&1 | grep -v "^WARNING: Location" >&2 || true
      ls deploy/wheelhouse/rasa-3.6.21-*.whl >/dev/null
      echo "$want" > "$stamp"
    fi
    echo "image: $deps_image (the Python image + deploy/wheelhouse/)" >&2
    printf 'FROM %s\nCOPY . /wheelhouse/\nLABEL org.clinic.wheelhouse=1\n' "$PYTHON_IMAGE" \
      | quiet_build -t "$deps_image" -f - deploy/wheelhouse
  fi
fi

echo "image: building $IMAGE on $PYTHON_IMAGE" >&2
quiet_build --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" --build-arg DEPS_IMAGE="$deps_image" -t "$IMAGE" .
echo "image: $IMAGE ready ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f GB", $1/1e9}'))" >&2
