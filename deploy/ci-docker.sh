#!/usr/bin/env bash
# Called by .ci/run: makes a Docker Engine available for tests/test_docker_deploy.py, or says
# why it could not (the test then skips with the same finding). Never fails the CI run.
set -uo pipefail
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "ci-docker: installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || echo "ci-docker: could not install ${need[*]}"
fi
if docker info >/dev/null 2>&1; then
  echo "ci-docker: Docker Engine $(docker info --format '{{.ServerVersion}}') already running"
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "ci-docker: no dockerd; tests/test_docker_deploy.py will be skipped"
  exit 0
fi
echo "ci-docker: starting dockerd (log: /tmp/dockerd.log)"
nohup dockerd > /tmp/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "ci-docker: Docker Engine $(docker info --format '{{.ServerVersion}}') running"
    exit 0
  fi
  sleep 1
done
echo "ci-docker: dockerd did not start; tests/test_docker_deploy.py will be skipped. Its log:"
tail -15 /tmp/dockerd.log | sed 's/^/  dockerd: /'
exit 0
