# anomstream — the two commands: `make run` and `make test`. Everything else is set-up they share.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KAFKA_VERSION ?= 4.3.1
KAFKA_DATA ?= .kafka
KAFKA_PORT ?= 9092
KAFKA_CONTROLLER_PORT ?= 9093
UI_PORT ?= 8080
KAFKA := $(PY) deploy/kafka/kafka_local.py --data-dir $(KAFKA_DATA) --port $(KAFKA_PORT) \
	--controller-port $(KAFKA_CONTROLLER_PORT) --version $(KAFKA_VERSION)
PYTEST_ARGS ?=

.PHONY: venv run test test-unit test-integration test-deps lint fmt kafka-up kafka-down kafka-status \
	schemas bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ required, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev,deep]'
	touch $(STAMP)

venv: $(STAMP)

## Run the service on the embedded default: local Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set), topics,
## detection worker, demo producer and the explorer (http://127.0.0.1:$(UI_PORT)/); alerts and a periodic
## summary on the terminal, the full log in $(KAFKA_DATA)/anomstream.log; Ctrl-C or SIGTERM stops it all.
run: venv
	@VENV=$(VENV) KAFKA_DATA=$(KAFKA_DATA) KAFKA_PORT=$(KAFKA_PORT) UI_PORT=$(UI_PORT) \
		deploy/run-local.sh $(KAFKA)

## The whole suite (unit + integration) against a real broker started by the test fixture.
test: venv test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv test-deps
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: venv test-deps
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

## Debian packages some tests need: a real Prometheus + promtool (no daemon left running) and Chromium
## to render the evaluation report headless. Idempotent.
test-deps:
	deploy/prometheus/ensure-prometheus.sh
	deploy/ensure-chromium.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## The quick benchmark profile: results in loadtest/results/<run>.{json,md,png}. The peer pipeline
## (Quix Streams + River) runs from its own venv: Quix pins its own confluent-kafka and pydantic.
QUIX_VENV ?= .venv-quix

$(QUIX_VENV)/.installed: pyproject.toml
	test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/python -m pip install -q -e '.[quix]'
	touch $@

bench: venv $(QUIX_VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m loadtest run --profile quick --quix-python $(QUIX_VENV)/bin/python

kafka-up: venv
	$(KAFKA) up

kafka-down: venv
	$(KAFKA) down

kafka-status: venv
	$(KAFKA) status

schemas: venv
	$(VENV)/bin/anomstream export-schemas --out schemas

clean:
	-$(KAFKA) down 2>/dev/null
	rm -rf $(VENV) $(KAFKA_DATA) .pytest_cache .mypy_cache .ruff_cache
