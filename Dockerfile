# mcuprof: the API server and the agent (virtual boards) in one image.
#
# Everything is installed and built here, at image build time: the Python dependencies (every
# version pinned by docker/constraints.txt), the Arm cross toolchain (Debian's
# gcc-arm-none-eabi), the firmware image of every board and the host build of the firmware
# (the agents' health-check reference). Nothing is downloaded when a container runs.
#
#   docker build -t mcuprof .
#   docker compose up            (PostgreSQL + API + one virtual-board agent)
#
# What has been verified of this file, and how (no Docker daemon runs where it is developed):
# README.md, "Docker: what is verified"; `make docker-check` runs the checks.
#
# The base image is named by tag: pin it by digest for a reproducible build with
#   docker build --build-arg BASE_IMAGE=debian:bookworm-slim@sha256:<digest> .
# (`docker buildx imagetools inspect debian:bookworm-slim` prints the digest; no registry
# was reachable to resolve it when this was written).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# A fixed, numeric id: volume files and the `USER` line below agree on every host.
ARG MCUPROF_UID=10001

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian's versions are those of the base image's point release: pinning them here would
# break the build each time the archive replaces one with a security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv python3-dev \
      build-essential gcc-arm-none-eabi libnewlib-arm-none-eabi \
      espeak-ng flite \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mcuprof
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    MCUPROF_BUILD_DIR=/opt/mcuprof/build \
    MCUPROF_CACHE_DIR=/var/cache/mcuprof

# Dependencies first (a layer that survives source edits), then the sources. Every
# distribution, the build back end's included, comes at the version docker/constraints.txt
# names (PIP_CONSTRAINT reaches pip's isolated build environments too). An editable install
# keeps migrations/ next to the package, where `mcuprof serve` finds them.
COPY pyproject.toml README.md ./
COPY docker/constraints.txt docker/constraints.txt
ENV PIP_CONSTRAINT=/opt/mcuprof/docker/constraints.txt
RUN mkdir -p bench_firmware service profiler_client search \
 && touch bench_firmware/__init__.py service/__init__.py profiler_client/__init__.py \
          search/__init__.py \
 && pip install --no-cache-dir -e . \
 && rm -rf bench_firmware service profiler_client search
COPY bench_firmware bench_firmware
COPY service service
COPY profiler_client profiler_client
COPY search search
COPY migrations migrations
COPY docker/provision-tokens.sh /usr/local/bin/mcuprof-provision-tokens
RUN pip install --no-cache-dir --no-deps -e . \
 && mcuprof firmware build --board all \
 && python -c "from bench_firmware.build import build_host; build_host('exe')" \
 && useradd --uid "${MCUPROF_UID}" --user-group --no-log-init --shell /usr/sbin/nologin \
      --home-dir /var/lib/mcuprof --create-home mcuprof \
 && mkdir -p /var/cache/mcuprof /var/lib/mcuprof/tokens \
 && chmod 700 /var/lib/mcuprof/tokens \
 && chown -R mcuprof:mcuprof /var/cache/mcuprof /var/lib/mcuprof /opt/mcuprof/build

USER ${MCUPROF_UID}:${MCUPROF_UID}
WORKDIR /var/lib/mcuprof
EXPOSE 8000
# The API's health (the agent's service in docker-compose.yml replaces it: it serves no HTTP).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/openapi.json', timeout=4)"]
CMD ["mcuprof", "serve", "--host", "0.0.0.0", "--port", "8000"]
