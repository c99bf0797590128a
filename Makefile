# SteerBench. Every target uses the virtual environment in .venv and creates it when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
export PYGAME_HIDE_SUPPORT_PROMPT := 1
export SDL_VIDEODRIVER ?= offscreen
export SDL_AUDIODRIVER ?= dummy

.PHONY: help install test test-slow test-all perf frames clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## create .venv with the pinned dependencies

test: $(STAMP)  ## the fast test tier (what CI runs)
	$(PY) -m pytest -m "not slow and not perf" -q

test-slow: $(STAMP)  ## long sweeps and end-to-end runs
	$(PY) -m pytest -m "slow" -q

test-all: $(STAMP)  ## every test except the performance benchmarks
	$(PY) -m pytest -m "not perf" -q

perf: $(STAMP)  ## performance benchmarks (pytest-benchmark), ratios measured side by side
	$(PY) -m pytest -m perf tests/perf -q -s --benchmark-columns=min,median,mean,ops,rounds --benchmark-sort=name

frames: $(STAMP)  ## the camera figure: docs/frames.png
	$(PY) -m benchmark frames --out docs/frames.png

clean:  ## remove caches (keeps .venv, data and results)
	rm -rf .pytest_cache .benchmarks
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
