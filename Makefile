# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed
SYSTEM_STAMP := $(VENV)/.system-installed
# Commands the tests use, each with the Debian package that provides it: real MQTT
# clients, Node.js for MQTT.js, HAProxy in front of Roost. Checked by command, because
# some images ship npm inside their nodejs package and a separate Debian npm would
# conflict with it.
TEST_COMMANDS := mosquitto_pub:mosquitto-clients mosquitto_sub:mosquitto-clients \
	node:nodejs npm:npm mosquitto_passwd:mosquitto haproxy:haproxy

.PHONY: run test fuzz fuzz-atheris bench bench-floors lint typecheck system-deps clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml tests/interop/mqttjs/package.json | $(VENV)/bin/python
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	cd tests/interop/mqttjs && npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP) $@

system-deps:
	@missing=""; for pair in $(TEST_COMMANDS); do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

run: $(STAMP)
	$(VENV)/bin/roost serve

test: system-deps $(TEST_STAMP)
	$(VENV)/bin/ruff check roost tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest

# The socket fuzzer of `make test`, run much longer (ROOST_FUZZ_EXAMPLES streams).
ROOST_FUZZ_EXAMPLES ?= 20000
fuzz: $(TEST_STAMP)
	ROOST_FUZZ_EXAMPLES=$(ROOST_FUZZ_EXAMPLES) $(PY) -m pytest -q -o timeout=0 \
	  tests/hardening/test_fuzz_socket.py

# Coverage-guided fuzzing of the connection state machine in memory (atheris/libFuzzer),
# for ATHERIS_SECONDS; the corpus it grows is kept in .venv/fuzz-corpus.
ATHERIS_SECONDS ?= 600
fuzz-atheris: $(TEST_STAMP)
	$(PY) -m pip install -q atheris==3.0.0
	mkdir -p $(VENV)/fuzz-corpus
	$(PY) -m tests.hardening.atheris_channel -max_total_time=$(ATHERIS_SECONDS) \
	  -rss_limit_mb=4096 $(VENV)/fuzz-corpus

# Benchmarks against Mosquitto (Debian package), written to docs/benchmarks.md; the
# suite also runs amqtt (PyPI), installed on first use into .venv/amqtt-venv.
bench: $(TEST_STAMP)
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto)
	$(PY) -m benchmarks.persistent_qos1 --count 20000 --write docs/benchmarks.md
	$(PY) -m benchmarks.suite --write docs/benchmarks.md

# The single-node floors (issue 10): the suite's scenarios against Mosquitto and a baseline
# commit of Roost measured in the same run, median of
# BENCH_RUNS runs, written to docs/benchmarks.md.
BENCH_RUNS ?= 3
# The commit the floors compare with: the hot path as issue 5 left it.
BENCH_BASELINE ?= 121fce9
bench-floors: $(TEST_STAMP)
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto)
	$(PY) -m benchmarks.floors --runs $(BENCH_RUNS) --baseline $(BENCH_BASELINE) --write docs/benchmarks.md

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check roost tests benchmarks

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) tests/interop/mqttjs/node_modules
