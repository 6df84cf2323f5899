# kidsfin: one image for every Dagster process of docker-compose.yml. By default it serves
# the code location over gRPC (service `code`); the compose file runs the same image as
# `dagster-webserver` and `dagster-daemon`.
#
#   docker build -t kidsfin .        (or: docker compose build)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

WORKDIR /opt/dagster/app

# An editable install on purpose: the settings find config/, prompts/ and data/ next to
# the package (the folder above kidsfin_assets/), so the code must stay in this folder
# rather than be copied into site-packages. psycopg2-binary brings its own libpq.
COPY pyproject.toml README.md ./
COPY kidsfin_assets/ kidsfin_assets/
# The demo loader (compose's `demo-data` service); the code location never imports it, nor
# the `demo` extra it needs (pandas, numpy).
COPY kidsfin_demo/ kidsfin_demo/
RUN pip install -e '.[demo]'

COPY config/ config/
COPY prompts/ prompts/
COPY deploy/workspace.yaml deploy/workspace.yaml
# The production instance (PostgreSQL storage from DAGSTER_PG_*, run queue, pools).
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml

# Run as a plain user; it owns the export folder and Dagster's local storage (compute
# logs), which docker-compose.yml mounts as volumes.
RUN useradd --create-home --uid 1000 kidsfin \
    && mkdir -p data/exports /opt/dagster/dagster_home/storage \
    && chown -R kidsfin:kidsfin data /opt/dagster/dagster_home
USER kidsfin

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "kidsfin_assets.definitions", "--location-name", "kidsfin"]
