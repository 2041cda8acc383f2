# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CUSTOMERS ?= 10000
DAYS ?= 365
SEED ?= 7
# The Feast repository (feature_repo/) names its registry, online store and gold tables by $PRESAGE_HOME.
export PRESAGE_HOME ?= $(CURDIR)/lakehouse
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: demo test install lint clean-lakehouse

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## demo: generate raw drops and run the whole pipeline on the embedded default (local Spark, Delta on disk, SQLite online store, MLflow in SQLite), then summarise what it wrote
demo: $(STAMP)
	$(BIN)/presage generate --customers $(CUSTOMERS) --days $(DAYS) --seed $(SEED)
	$(BIN)/presage ingest
	$(BIN)/presage build-profiles
	$(BIN)/presage build-features
	cd feature_repo && ../$(BIN)/feast apply
	$(BIN)/presage materialize
	for model in purchase_propensity churn_risk expected_spend channel_response; do $(BIN)/presage train --model $$model || exit 1; done
	$(BIN)/presage score
	$(BIN)/presage monitor
	$(BIN)/presage report
	$(BIN)/presage where

## test: the whole suite, slow end-to-end cases included
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff's checks (pinned in the test extra; tests/test_lint.py runs them in `make test` too)
lint: $(STAMP)
	$(BIN)/ruff check .

clean-lakehouse:
	rm -rf lakehouse
