# One image for every process of the assistant; the role is the command (deploy/entrypoint.sh):
#   docker run clinic-assistant rasa | actions | gateway door|relay|all | scheduler | surveys
#                               | inbox | clinic-api | migrate | simulator | secrets
# deploy/compose.yml runs them together; README, "Deploying", says how to build and run it.
#
# The model is NOT in the image: it is mounted at /app/models/assistant.tar.gz (MODEL_PATH).
# Training takes minutes of CPU and changes with every data edit, while the code and
# dependencies change rarely; a mounted model is retrained (`make train`) and rolled out
# without rebuilding, and the CI that already trains it for its tests does not train it a
# second time here. deploy/kubernetes.md shows a two-line image that adds it, where a
# volume is unwelcome.
#
# No secret is in the image: keys and tokens come from the environment (deploy/secrets.env,
# made by the `secrets` role) and the entrypoint refuses to start a role without them.
#
# Python 3.10 because Rasa 3.6 runs on nothing newer. Where Docker Hub cannot be reached,
# deploy/standins/build.sh builds a local stand-in under the same tag.
ARG PYTHON_IMAGE=python:3.10-slim-bookworm
# The dependency stage's base: the Python image itself, or (deploy/build-image.sh) one made
# from it that holds /wheelhouse/*.whl, every pinned dependency collected from the build
# machine's pip cache and indexes, so a build installs without downloading TensorFlow again.
# A separate image, not part of this build's context: the context stays small, and the
# final image never contains the 1.2 GB of wheels.
ARG DEPS_IMAGE=python:3.10-slim-bookworm

# ── dependencies: a virtual environment, copied whole into the final image ──────────────
FROM ${DEPS_IMAGE} AS deps
COPY requirements.txt constraints.txt /build/
RUN python -m venv /opt/venv \
    && if ls /wheelhouse/*.whl >/dev/null 2>&1; then source="--no-index --find-links /wheelhouse"; else source=""; fi \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check $source \
         "setuptools==70.3.0" wheel \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check $source \
         -r /build/requirements.txt -c /build/constraints.txt \
    && /opt/venv/bin/python -c "import rasa, rasa_sdk, psycopg2, redis; print('rasa', rasa.__version__)"

# ── the image ────────────────────────────────────────────────────────────────────────────
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONWARNINGS=ignore::DeprecationWarning \
    RASA_TELEMETRY_ENABLED=false \
    TF_CPP_MIN_LOG_LEVEL=2 \
    SQLALCHEMY_SILENCE_UBER_WARNING=1 \
    MODEL_PATH=/app/models/assistant.tar.gz \
    HOME=/home/clinic
# A fixed uid, so volumes and Kubernetes' runAsUser can name it.
RUN groupadd --system --gid 10001 clinic \
    && useradd --system --uid 10001 --gid clinic --home-dir /home/clinic --create-home clinic
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# The project (see .dockerignore for what stays out: models, var, tests, secrets).
COPY . /app
# Code is root's and read-only for the process; only var/ (journals, the migration lock) and
# models/ (the mount point) belong to the user.
RUN mkdir -p /app/var /app/models && chown clinic:clinic /app/var /app/models \
    && chmod 755 /app/deploy/entrypoint.sh \
    && python -m compileall -q /app/actions /app/addons /app/clinic /app/clinic_api /app/connectors \
         /app/gateway /app/inbox /app/simulator /app/whatsapp /app/scripts >/dev/null
USER 10001:10001
VOLUME /app/var
EXPOSE 5005 5055 5006 8070 8090 8081
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["help"]
