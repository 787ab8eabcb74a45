# mcuprof: `make run` and `make test` do all set-up on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MCUPROF := $(VENV)/bin/mcuprof
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: all run test setup toolchain browser speech firmware lint clean help

all: test

help:
	@echo "make run       set up, build the firmware, start the demo (server + virtual boards)"
	@echo "make test      set up, lint, run the whole test suite"
	@echo "make firmware  cross-compile the firmware for every board"

# The virtualenv with mcuprof and its pinned dependencies (TensorFlow and TFLite Micro's
# Python runtime included: tests use them as the oracle).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  ($(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv python3-pip)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[ml,dev]'
	touch $(STAMP)

setup: $(STAMP) toolchain speech

# The ARM cross toolchain and a host C compiler, from the distribution's packages.
toolchain:
	@command -v arm-none-eabi-gcc >/dev/null && command -v cc >/dev/null && \
	  [ -e /usr/lib/arm-none-eabi/newlib/libc.a -o -e /usr/lib/arm-none-eabi/lib/libc.a ] || \
	  ($(SUDO) apt-get update && \
	   $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y \
	     gcc-arm-none-eabi libnewlib-arm-none-eabi build-essential)

# Headless Chromium for the dashboard's browser test (Debian's packages; nothing downloaded
# by the test itself).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ($(SUDO) apt-get update && \
	   $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver) || \
	  echo "chromium could not be installed: the browser test will skip"

# The speech synthesizers behind the synthetic keyword set `synth:kws` (search/data/synth.py;
# Debian's packages, run offline).
speech:
	@command -v espeak-ng >/dev/null && command -v flite >/dev/null || \
	  ($(SUDO) apt-get update && \
	   $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y espeak-ng flite) || \
	  echo "espeak-ng and flite could not be installed: synth:kws and its tests will skip"

firmware: setup
	$(MCUPROF) firmware build --board all

# The demo: SQLite in the working directory, the server and dashboard, one virtual board
# per board model (each in a process of its own: boards in threads share one core), the
# sample models and the fit set profiled, a latency-vs-ops line per board; Ctrl-C stops it.
run: firmware
	$(MCUPROF) demo --agent-processes

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache --no-logo

test: setup browser lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The Dockerfile and docker-compose.yml, checked without a Docker daemon: hadolint,
# ShellCheck, the parsed Dockerfile, docker/constraints.txt, Docker Compose's own `config`
# (scripts/docker_check.py; tests/unit/test_docker.py runs the same). docker-build builds
# the image with buildah (root; Debian's buildah and debootstrap are installed if missing)
# and runs the compose topology's commands in it (scripts/docker_build.sh, ~15 min first).
.PHONY: docker-check docker-build
docker-check: $(STAMP)
	$(PY) scripts/docker_check.py

docker-build: docker-check
	bash scripts/docker_build.sh

clean:
	rm -rf build .pytest_cache
