#!/usr/bin/env bash
# Makes sure the base images deploy/compose.yml and the Dockerfile name exist in the local
# Docker Engine: python:3.10-slim-bookworm, postgres:15-bookworm, redis:7-bookworm, caddy:2.
#
# For each tag: already present → kept (a cache: nothing is rebuilt); else `docker pull`
# (the real image from Docker Hub); only when Docker Hub cannot be reached (this project's
# CI and development machines) a LOCAL STAND-IN is built under the same tag, so the
# Dockerfile and compose file are exercised unchanged:
#   - one Debian bookworm root file system made with debootstrap from Debian's mirror
#     (minbase + the libraries Python needs + postgresql-15 + redis-server), imported as
#     clinic-standin/bookworm;
#   - python:3.10-slim-bookworm = that + this machine's pyenv Python 3.10
#     (PYENV_PYTHON, default /root/.pyenv/versions/3.10.13, copied to the same path because
#     its binary's RUNPATH names it; /usr/local/bin/python* link to it, as in the real image);
#   - postgres:15-bookworm and redis:7-bookworm = that + a small entrypoint with the
#     official images' interface (POSTGRES_USER/PASSWORD/DB, data in /var/lib/postgresql/data,
#     port 5432; redis-server on 6379 for the whole network);
#   - caddy:2 = that + Debian's caddy 2.6 (installed from the mirror during the build).
# Stand-ins carry the label org.clinic.standin=1 (`docker image ls -f label=org.clinic.standin=1`).
# Needs root (debootstrap), debootstrap and the Debian mirror.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PYENV_PYTHON="${PYENV_PYTHON:-/root/.pyenv/versions/3.10.13}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE=clinic-standin/bookworm:1
# Everything python:3.10-slim-bookworm's interpreter links against, and what the stand-in
# services run.
PACKAGES=ca-certificates,netbase,tzdata,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,libreadline8,libncursesw6,libuuid1,zlib1g,libnsl2,libtirpc3,libgdbm6,libexpat1,postgresql-15,redis-server

have() { docker image inspect "$1" >/dev/null 2>&1; }

pull() {  # tag → 0 when Docker Hub gave it
  echo "standins: $1 not present; trying docker pull" >&2
  timeout 120 docker pull -q "$1" >/dev/null 2>&1
}

build_base() {
  have "$BASE" && return 0
  command -v debootstrap >/dev/null || { echo "standins: debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
  local root
  root="$(mktemp -d /tmp/clinic-standin-rootfs.XXXXXX)"
  echo "standins: debootstrap bookworm into $root (a few minutes, once)" >&2
  # Services must not start inside the chroot while packages install.
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" > "$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL org.clinic.standin=1' \
    --change 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$root" "$root.log"
}

build_python() {
  local context
  context="$(mktemp -d /tmp/clinic-standin-python.XXXXXX)"
  mkdir -p "$context/python"
  # The interpreter and its standard library; not its tests, nor this machine's own .pth hooks.
  tar -C "$PYENV_PYTHON" --exclude=./lib/python3.10/test --exclude='*.pth' \
      --exclude='__pycache__' -c . | tar -C "$context/python" -x
  cat > "$context/Dockerfile" <<DOCKERFILE
FROM $BASE
COPY python $PYENV_PYTHON
# /root is 0700 in Debian: the interpreter below it must be usable by any user.
RUN chmod 755 /root && for name in python python3 python3.10 pip pip3; do \
      ln -sf $PYENV_PYTHON/bin/\$( [ \$name = python ] && echo python3 || echo \$name ) /usr/local/bin/\$name; done \
    && python3 -c "import ssl, sqlite3, ctypes, lzma, bz2, uuid; print('python ok')"
ENV PYTHON_VERSION=3.10.13
LABEL org.clinic.standin=1
CMD ["python3"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q -t python:3.10-slim-bookworm "$context" >/dev/null 2>&1 \
    || DOCKER_BUILDKIT=0 docker build -t python:3.10-slim-bookworm "$context" >&2
  rm -rf "$context"
}

build_service() {  # tag dockerfile-in-this-dir
  DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$BASE" -t "$1" -f "$here/$2" "$here" >/dev/null 2>&1 \
    || DOCKER_BUILDKIT=0 docker build --build-arg BASE="$BASE" -t "$1" -f "$here/$2" "$here" >&2
}

for tag in python:3.10-slim-bookworm postgres:15-bookworm redis:7-bookworm caddy:2; do
  if have "$tag"; then continue; fi
  if [ "${STANDINS_NO_PULL:-}" != 1 ] && pull "$tag"; then continue; fi
  echo "standins: Docker Hub unreachable; building a local stand-in for $tag" >&2
  build_base
  case "$tag" in
    python:*) build_python ;;
    postgres:*) build_service "$tag" postgres.Dockerfile ;;
    redis:*) build_service "$tag" redis.Dockerfile ;;
    caddy:*) build_service "$tag" caddy.Dockerfile ;;
  esac
done
echo "standins: python:3.10-slim-bookworm postgres:15-bookworm redis:7-bookworm caddy:2 ready" >&2
