# Set-up and everyday entry points. Every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: help install test demo demo-fsdd clean

help:
	@echo "make demo     install into $(VENV) and run the main job end to end (synthetic speech, CPU)"
	@echo "make demo-fsdd  train and evaluate on real recordings of spoken digits (FSDD)"
	@echo "make test     install what the tests need and run them"
	@echo "make install  only install (Debian packages if missing, then the Python environment)"
	@echo "make clean    remove $(VENV) and generated data"

$(INSTALLED): pyproject.toml scripts/install_system_packages.sh
	bash scripts/install_system_packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(INSTALLED)

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

# The main job on a CPU: synthesise a LibriSpeech-layout corpus with espeak-ng voices,
# train a LAS on it, evaluate on held-out voices, transcribe a few recordings.
demo: $(INSTALLED)
	@echo "== demo: synthesise speech, train a LAS on a CPU, evaluate it on held-out voices, transcribe"
	ASR=$(BIN)/asr bash recipes/synthetic/run.sh --data data/demo --exp exp/demo

# The FSDD recordings: ../shared/data/fsdd where this checkout has it, else downloaded.
FSDD ?= $(firstword $(wildcard ../shared/data/fsdd) data/fsdd)

demo-fsdd: $(INSTALLED)
	@echo "== demo-fsdd: train a LAS on real spoken digits (FSDD) and evaluate it on the official test split"
	ASR=$(BIN)/asr bash recipes/fsdd/run.sh --data $(FSDD) --exp exp/demo-fsdd

clean:
	rm -rf $(VENV) exp/demo exp/demo-fsdd data/demo
