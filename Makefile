# One Makefile drives every gate: people, CI and the demo use the same targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CACHE ?= .cache

.PHONY: install redis bwrap promtool chromium testdata demo server worker test lint bench deploy-check clean image-test
.PHONY: ilab-contract
.PHONY: test-real-ilab
.PHONY: chaos burst test-stress

$(STAMP): pyproject.toml testkit/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./testkit
	touch $(STAMP)

install: $(STAMP)

# redis-server >= 6.2 is needed by the tests (they start their own) and by the demo.
redis:
	@command -v redis-server >/dev/null || { \
	  echo "redis-server missing: installing it with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# bubblewrap: workers run `ilab` in it (README "Security"); the tests and the demo run real jobs.
bwrap:
	@command -v bwrap >/dev/null || { \
	  echo "bwrap missing: installing Debian's bubblewrap with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }

# promtool (Debian's prometheus package) checks and unit-tests grafana/alerts.
promtool:
	@command -v promtool >/dev/null || { \
	  echo "promtool missing: installing Debian's prometheus package with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# Debian's headless Chromium for the status-page browser tests (Playwright drives it; never
# `playwright install`, which downloads browsers).
chromium:
	@command -v chromium >/dev/null || { \
	  echo "chromium missing: installing Debian's chromium with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }

# Third-party test data (GitHub's OpenAPI description, webhook examples) from pinned npm packages.
testdata: $(STAMP)
	$(PY) -m testkit.testdata --cache $(CACHE)

# Listens on 127.0.0.1 only. Without a terminal it stops after the PR unless
# DEMO_ARGS=--keep-serving.
demo: install redis bwrap testdata
	$(PY) -m testkit.demo $(DEMO_ARGS)

server: install
	$(VENV)/bin/instruct-lab-bot server

worker: install
	$(VENV)/bin/instruct-lab-bot worker

# Three pytest processes on two cores: most tests wait on Redis, workers and ilab subprocesses.
PYTEST_WORKERS ?= 3
test: install redis bwrap promtool chromium testdata
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The suite 3 times with both cores burnt by other processes, then on a clean clone: no test
# may depend on timing (scripts/test_stress.sh).
test-stress: install redis bwrap promtool chromium testdata
	PY=$(PY) PYTEST_WORKERS=$(PYTEST_WORKERS) scripts/test_stress.sh

# The bot's ilab command lines parsed by the real instructlab releases' own click commands, in
# throwaway venvs cached (by requirements hash) under ~/.cache/instruct-lab-bot/ilab-contract.
ilab-contract: install
	$(PY) -m testkit.ilab_contract --cache $(HOME)/.cache/instruct-lab-bot/ilab-contract

# Build the Containerfile with buildah (no daemon; the base from Debian packages when no
# registry is reachable) and run the image's server and a worker (tests/test_image.py).
image-test: install redis testdata
	PY=$(PY) CACHE=$(HOME)/.cache/instruct-lab-bot scripts/image_test.sh

# The real `ilab` (README "Tests with the real ilab"): installed from its lock file into its own
# venv under .cache, driven through the whole bot against a stand-in teacher, offline.
ILAB_REAL_VERSION ?= 0.26.1
# Outside the checkout (6 GB): reused by every clone on this machine, reinstalled when the
# lock changes (the install script keeps the lock's hash in the venv).
ILAB_REAL_VENV ?= $(HOME)/.cache/instruct-lab-bot/ilab-$(ILAB_REAL_VERSION)
test-real-ilab: install redis bwrap testdata
	@test -d /usr/share/tesseract-ocr/5/tessdata || { \
	  echo "tesseract data missing: installing Debian's tesseract-ocr-eng/-osd with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr-eng tesseract-ocr-osd >/dev/null; }
	scripts/install_real_ilab.sh $(ILAB_REAL_VERSION) $(ILAB_REAL_VENV)
	ILAB_REAL_VENV=$(ILAB_REAL_VENV) ILAB_REAL_VERSION=$(ILAB_REAL_VERSION) \
	  $(PY) -m pytest tests/real_ilab -o timeout=900 $(PYTEST_ARGS)

deploy-check: install promtool
	$(PY) -m pytest tests/test_deploy.py tests/test_grafana.py $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: install redis testdata
	@command -v wrk >/dev/null || { echo "wrk missing: installing it with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PY) -m bench

# Issue 18: 200 commands over 60 s into 2 server and 4 worker processes while a seeded driver
# kills them, Redis and GitHub; then every guarantee is checked (CHAOS_ARGS: --seed N, ...).
chaos: install redis bwrap testdata
	$(PY) -m testkit.chaos $(CHAOS_ARGS)

# Issue 18: a webhook burst (1,000/s for 30 s asked) into 2 server processes (BURST_ARGS).
burst: install redis testdata
	$(PY) -m bench.burst $(BURST_ARGS)

clean:
	rm -rf $(VENV) $(CACHE) var .mypy_cache .ruff_cache .pytest_cache
