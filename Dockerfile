# mcuprof: the API server and the agent (virtual boards) in one image.
#
# Everything is installed and built here, at image build time: the Python dependencies, the
# Arm cross toolchain (Debian's gcc-arm-none-eabi), the firmware image of every board and the
# host build of the firmware (the agents' health-check reference). Nothing is downloaded when
# a container runs.
#
#   docker build -t mcuprof .
#   docker compose up            (PostgreSQL + API + one virtual-board agent)
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv python3-dev \
      build-essential gcc-arm-none-eabi libnewlib-arm-none-eabi \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mcuprof
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    MCUPROF_BUILD_DIR=/opt/mcuprof/build \
    MCUPROF_CACHE_DIR=/var/cache/mcuprof

# Dependencies first (a layer that survives source edits), then the sources. An editable
# install keeps migrations/ next to the package, where `mcuprof serve` finds them.
COPY pyproject.toml README.md ./
RUN mkdir -p bench_firmware service profiler_client search \
 && touch bench_firmware/__init__.py service/__init__.py profiler_client/__init__.py \
          search/__init__.py \
 && pip install -e . \
 && rm -rf bench_firmware service profiler_client search
COPY bench_firmware bench_firmware
COPY service service
COPY profiler_client profiler_client
COPY search search
COPY migrations migrations
RUN pip install --no-deps -e . \
 && mcuprof firmware build --board all \
 && python -c "from bench_firmware.build import build_host; build_host('exe')" \
 && useradd --system --home-dir /var/lib/mcuprof --create-home mcuprof \
 && mkdir -p /var/cache/mcuprof \
 && chown -R mcuprof /var/cache/mcuprof /opt/mcuprof/build

USER mcuprof
WORKDIR /var/lib/mcuprof
EXPOSE 8000
CMD ["mcuprof", "serve", "--host", "0.0.0.0", "--port", "8000"]
