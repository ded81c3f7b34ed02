# PostgreSQL 15 from Debian with the official postgres image's interface (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, PGDATA=/var/lib/postgresql/data, pg_isready), for hosts
# that cannot pull docker.io/library/postgres. scripts/stack.sh builds it FROM the same base
# as the app image and tags it localhost/b3-postgres:15 (the stack's POSTGRES_IMAGE):
#   podman build --format docker -f deploy/postgres.Dockerfile \
#     --build-arg BASE_IMAGE=localhost/debian:bookworm -t localhost/b3-postgres:15 deploy
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# Debian's package creates and starts a "main" cluster: drop it, PGDATA is ours.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && pg_dropcluster --stop 15 main \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY --chmod=755 postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
# postgres shuts down fast (and cleanly) on SIGINT.
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
CMD ["postgres"]
