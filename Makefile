# SteerBench. Every target uses the virtual environment in .venv and creates it when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt constraints.txt pyproject.toml | cksum | cut -d' ' -f1)
RAY_STAMP := $(VENV)/.ray-installed-$(shell cat requirements-ray.txt constraints.txt constraints-ray.txt | cksum | cut -d' ' -f1)
export PYGAME_HIDE_SUPPORT_PROMPT := 1
export SDL_VIDEODRIVER ?= offscreen
export SDL_AUDIODRIVER ?= dummy

.PHONY: help install ray browser sandbox test test-slow test-all perf frames record baselines bench plot submit \
        leaderboard leaderboard-baselines verify submit-conditional leaderboard-conditional-baselines \
        verify-conditional clean
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(VENV)/bin/pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## create .venv with the pinned dependencies and SteerBench itself (editable)

# The optional Ray extra (--backend ray); constraints-ray.txt pins what it adds to constraints.txt.
$(RAY_STAMP): $(STAMP) requirements-ray.txt constraints.txt constraints-ray.txt
	$(VENV)/bin/pip install --disable-pip-version-check -r requirements-ray.txt -c constraints.txt -c constraints-ray.txt
	rm -f $(VENV)/.ray-installed-* && touch $@

ray: $(RAY_STAMP)  ## add the optional Ray extra (requirements-ray.txt) to .venv, for --backend ray

browser:  ## Debian's chromium, for the leaderboard page test (apt-get; root or sudo)
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

sandbox:  ## Debian's bubblewrap, the leaderboard's sandbox for submitted models (apt-get; root or sudo)
	@command -v bwrap >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bubblewrap; }

test: $(STAMP) $(RAY_STAMP) browser sandbox  ## the fast test tier (what CI runs)
	$(PY) -m pytest -m "not slow and not perf" -q

test-slow: $(STAMP)  ## long sweeps and end-to-end runs
	$(PY) -m pytest -m "slow" -q

test-all: $(STAMP) $(RAY_STAMP) browser sandbox  ## every test except the performance benchmarks
	$(PY) -m pytest -m "not perf" -q

perf: $(STAMP)  ## performance benchmarks (pytest-benchmark), ratios measured side by side
	$(PY) -m pytest -m perf tests/perf -q -s --benchmark-columns=min,median,mean,ops,rounds --benchmark-sort=name

frames: $(STAMP)  ## the camera figure: docs/frames.png
	$(PY) -m benchmark frames --out docs/frames.png

record: $(STAMP)  ## record the teacher on the training tracks into data/teacher
	$(PY) -m benchmark record --out data/teacher

baselines: $(STAMP)  ## train the model zoo (bc, bc-shifted, dart, dagger, hg-dagger) into models/zoo
	$(PY) -m benchmark baselines

bench: $(STAMP)  ## evaluate the zoo, the teacher and straight-ahead on the quick profile -> results/
	$(PY) -m benchmark bench

submit: $(STAMP) sandbox  ## add a model to the leaderboard: make submit MODEL=model.onnx CARD=card.yaml
	@test -n "$(MODEL)" || { echo "usage: make submit MODEL=path/to/model.onnx CARD=path/to/card.yaml"; exit 2; }
	$(PY) -m leaderboard submit --model "$(MODEL)" $(if $(CARD),--card "$(CARD)")

leaderboard: $(STAMP)  ## regenerate README.md and index.html of both boards (leaderboard/, leaderboard/conditional/)
	$(PY) -m leaderboard build
	$(PY) -m leaderboard build --root $(CONDITIONAL_BOARD_DIR)

leaderboard-baselines: $(STAMP) sandbox  ## add the teacher, straight-ahead and zoo entries that are missing
	$(PY) -m leaderboard baselines

verify: $(STAMP) sandbox  ## re-evaluate every leaderboard entry; fails when a metric or hash does not reproduce
	$(PY) -m leaderboard verify

# The conditional board: models with a command input, on road networks with forks (steerbench-forks-v1).
CONDITIONAL_BOARD := --root leaderboard/conditional --protocol steerbench-forks-v1
CONDITIONAL_BOARD_DIR := leaderboard/conditional

submit-conditional: $(STAMP) sandbox  ## add a conditional model (frames, command): make submit-conditional MODEL=... CARD=...
	@test -n "$(MODEL)" || { echo "usage: make submit-conditional MODEL=path/to/model.onnx CARD=path/to/card.yaml"; exit 2; }
	$(PY) -m leaderboard submit $(CONDITIONAL_BOARD) --model "$(MODEL)" $(if $(CARD),--card "$(CARD)")

leaderboard-conditional-baselines: $(STAMP) sandbox  ## the conditional board's references and models/tasks/forks
	$(PY) -m leaderboard baselines $(CONDITIONAL_BOARD) --zoo models/tasks/forks

verify-conditional: $(STAMP) sandbox  ## re-evaluate every entry of the conditional board
	$(PY) -m leaderboard verify $(CONDITIONAL_BOARD)

clean:  ## remove caches (keeps .venv, data and results)
	rm -rf .pytest_cache .benchmarks
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
