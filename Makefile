# Set-up and everyday entry points. Every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_DIR ?= data/demo

.PHONY: help install test demo clean

help:
	@echo "make demo     install into $(VENV) and run the main job end to end"
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

demo: $(INSTALLED)
	@echo "== stage 1: prepare manifests from the bundled LibriSpeech-layout fixture"
	$(BIN)/asr prepare librispeech tests/fixtures --subsets dev-clean,test-clean --out $(DEMO_DIR)
	@echo "== stage 2: feature normalisation statistics"
	$(BIN)/asr stats $(DEMO_DIR)/dev-clean.jsonl --out $(DEMO_DIR)/cmvn.json

clean:
	rm -rf $(VENV) data/demo
