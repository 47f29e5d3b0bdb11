# Set-up and everyday entry points. Every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

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

# The FSDD recordings: ../shared/data/fsdd where this checkout has it, else downloaded.
FSDD ?= $(firstword $(wildcard ../shared/data/fsdd) data/fsdd)

demo: $(INSTALLED)
	@echo "== demo: train a LAS on real spoken digits (FSDD) and evaluate it on the official test split"
	ASR=$(BIN)/asr bash recipes/fsdd/run.sh --data $(FSDD) --exp exp/demo-fsdd

clean:
	rm -rf $(VENV) exp/demo-fsdd
