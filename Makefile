# TechMart lakehouse: every entry point does its own set-up, so each works alone on a fresh clone.
# Set-up is incremental: a second `make setup` with nothing changed does nothing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JARS := .jvm
MVN := mvn -q -B --no-transfer-progress

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export TECHMART_LAKEHOUSE ?= $(CURDIR)/lakehouse
export TECHMART_JARS_DIR ?= $(CURDIR)/$(JARS)

PY_STAMP := $(VENV)/.installed
SPARK_JARS_STAMP := $(JARS)/spark/.fetched
KAFKA_JARS_STAMP := $(JARS)/kafka/.fetched
DAGSTER_HOME_STAMP := $(DAGSTER_HOME)/dagster.yaml
DBT_MANIFEST := dbt_project/target/manifest.json
# The UI tests' browser: Debian's chromium (Playwright drives it; it downloads no browser of its own).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DBT_SOURCES := dbt_project/dbt_project.yml dbt_project/profiles.yml \
	$(shell find dbt_project/models dbt_project/macros dbt_project/seeds dbt_project/tests -type f 2>/dev/null)

.PHONY: help setup demo test lint ui bench bench-scale clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

setup: $(PY_STAMP) $(SPARK_JARS_STAMP) $(KAFKA_JARS_STAMP) $(DAGSTER_HOME_STAMP) $(DBT_MANIFEST)  ## venv, Python packages, JVM jars, Dagster home, dbt manifest

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip check
	touch $@

$(SPARK_JARS_STAMP): jvm/spark/pom.xml
	rm -rf $(JARS)/spark
	$(MVN) -f jvm/spark/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(JARS)/spark
	touch $@

$(KAFKA_JARS_STAMP): jvm/kafka/pom.xml
	rm -rf $(JARS)/kafka
	$(MVN) -f jvm/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(JARS)/kafka
	touch $@

$(DAGSTER_HOME_STAMP): dagster.yaml techmart_assets/instance_storage.py $(PY_STAMP)
	$(BIN)/python -m techmart_assets.instance_storage $(DAGSTER_HOME)

# The manifest the Dagster definitions read the dbt assets from (parsed again when the project changes).
$(DBT_MANIFEST): $(PY_STAMP) $(SPARK_JARS_STAMP) $(DBT_SOURCES)
	$(BIN)/techmart dbt parse --quiet
	touch $@

demo: setup  ## generate the demo data and build the lakehouse end to end
	$(BIN)/techmart demo

test: setup lint $(CHROMIUM)  ## the whole test suite (real Spark, Delta, Dagster, Kafka, the UI in Chromium)
	$(BIN)/pytest

$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

lint:  ## ruff on the Python code
	$(BIN)/ruff check techmart_assets techmart_assets_tests bench
	$(BIN)/ruff format --check --quiet techmart_assets techmart_assets_tests bench

ui: setup  ## the Dagster webserver and daemon on the demo's instance (http://127.0.0.1:3000)
	$(BIN)/dagster dev --host 127.0.0.1 --port 3000

bench: setup  ## the benchmarks in bench/, their figures in bench/results.json, then BENCHMARKS.md from them
	$(BIN)/python -m bench.bronze_backfill
	$(BIN)/python -m bench.silver_backfill
	$(BIN)/python -m bench.gold_build
	$(BIN)/python -m bench.fraud_stream
	$(BIN)/python -m bench.fraud_idle
	$(BIN)/python -m bench.event_storage
	$(BIN)/python -m bench.delta_floor
	$(BIN)/python -m bench.history_scale --scales 1 10 50
	$(BIN)/python -m bench.report

bench-scale: setup  ## the history at 200 times the reference data (about 28 GB of drops; not in CI), then BENCHMARKS.md
	$(BIN)/python -m bench.history_scale --scales 200
	$(BIN)/python -m bench.report

clean:  ## remove the generated lakehouse and the Dagster instance (keeps venv and jars)
	rm -rf lakehouse $(DAGSTER_HOME) spark-warehouse metastore_db dbt_project/target dbt_project/logs
