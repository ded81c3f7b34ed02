# syntax=docker/dockerfile:1
# b3-pipeline: the Dagster code location, with the webserver and the daemon (same versions),
# so deploy/compose.yaml runs all three from this one image.
#
#   docker build -t b3-pipeline .                   # from the official Python image
#   scripts/stack.sh build                          # podman, no registry (docs/hosting.md):
#     podman build --format docker --build-arg BASE_IMAGE=localhost/debian:bookworm \
#       --secret id=hostca,src=/etc/ssl/certs/ca-certificates.crt -t localhost/b3-pipeline:latest .
#
# BASE_IMAGE: any Debian bookworm. The official python:3.11-slim-bookworm brings its own
# Python 3.11; a bare bookworm (debootstrap, scripts/container_base.sh) gets Debian's, which
# is 3.11 too. The optional `hostca` secret is a CA bundle for pip/uv behind an intercepting
# proxy; it is only mounted while installing, never stored in the image. `--format docker`:
# podman's default OCI format has no HEALTHCHECK.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG UV_VERSION=0.13.9
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Chromium for B3's browser fetch; tini reaps Chromium's children and forwards signals.
# apt reaches Debian's mirror over plain HTTP (signed), so it needs no CA.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates chromium tini \
 && if ! command -v python3.11 >/dev/null; then \
      apt-get install -y --no-install-recommends python3 python3-venv; \
    fi \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/dagster \
      --shell /usr/sbin/nologin dagster

# The locked runtime dependencies (uv.lock, no dev group) in their own layer, so code changes
# do not reinstall them. uv itself is pinned and removed in the same step. The project is not
# built (that would fetch an unpinned build backend): /app is put on the path below instead.
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN --mount=type=secret,id=hostca \
    --mount=type=cache,target=/root/.cache/pip,id=b3-pip \
    --mount=type=cache,target=/root/.cache/uv,id=b3-uv \
    if [ -s /run/secrets/hostca ]; then \
      export PIP_CERT=/run/secrets/hostca SSL_CERT_FILE=/run/secrets/hostca; \
    fi \
 && python3.11 -m venv /tmp/uv \
 && /tmp/uv/bin/pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}" \
 && /tmp/uv/bin/uv sync --frozen --no-dev --no-install-project \
 && rm -rf /tmp/uv

COPY b3_assets ./b3_assets
COPY glue ./glue
COPY lambda_handler ./lambda_handler
RUN echo /app > /opt/venv/lib/python3.11/site-packages/b3_pipeline.pth \
 && printf '#!/opt/venv/bin/python\nimport sys\nfrom b3_assets.cli import main\nsys.exit(main())\n' \
      > /opt/venv/bin/b3-pipeline \
 && chmod 755 /opt/venv/bin/b3-pipeline \
 && /opt/venv/bin/python -m compileall -q /app \
 && mkdir -p /data/lake /data/dagster /opt/dagster/home \
 && chown -R dagster:dagster /data

COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/workspace.yaml
COPY --chmod=755 deploy/health.py /usr/local/bin/b3-health

ENV PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home \
    B3_DATA_DIR=/data/lake \
    B3_BROWSER_PATH=/usr/bin/chromium \
    B3_ROLE=code
USER dagster
EXPOSE 3000 4000
# SIGINT is what Dagster's processes shut down cleanly on (tini forwards it).
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/bin/tini", "--"]
# The code location's gRPC server; compose runs the webserver and the daemon from this image.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "b3_assets.definitions", "--location-name", "b3_pipeline"]
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 CMD ["b3-health"]
