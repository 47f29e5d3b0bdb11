# Set-up and everyday entry points. Every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# uv (pinned in the lock, installed with pip) or pip: both install requirements.lock
INSTALLER ?= uv

.PHONY: help install lock test demo demo-general demo-multilingual demo-fsdd demo-real clean

help:
	@echo "make demo     install into $(VENV) and run the main job end to end (synthetic speech, CPU)"
	@echo "make demo-general  the most general model: every voice of three TTS engines and real read speech (about 1.5 hours)"
	@echo "make demo-multilingual  one LAS per language (English, German, Spanish, Mandarin) on synthetic speech, and their table"
	@echo "make demo-fsdd  train and evaluate on real recordings of spoken digits (FSDD)"
	@echo "make demo-real  fine-tune the demo's model on real read sentences (speechocean762) and evaluate it"
	@echo "make test     install what the tests need and run them"
	@echo "make install  only install (Debian packages if missing, then the locked Python environment)"
	@echo "make lock     refresh requirements.lock after a change to pyproject.toml (UPGRADE=1: newest releases)"
	@echo "make clean    remove $(VENV) and generated data"

$(INSTALLED): requirements.lock pyproject.toml scripts/install_system_packages.sh scripts/install_python_packages.sh
	bash scripts/install_system_packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	bash scripts/install_python_packages.sh $(VENV) $(INSTALLER)
	touch $@

install: $(INSTALLED)

# Every package pinned with its hashes for CPython 3.11 on Linux x86_64, whatever
# machine runs this; keeps the pins that still satisfy pyproject.toml.
lock:
	test -x $(BIN)/uv || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/python -m pip install --quiet uv; }
	$(BIN)/uv pip compile pyproject.toml --extra test --extra dev --extra serve --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --custom-compile-command "make lock" \
		$(if $(UPGRADE),--upgrade) --quiet -o requirements.lock

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

# speechocean762: ../shared/data/speechocean762 where this checkout has it, else downloaded.
SPEECHOCEAN ?= $(firstword $(wildcard ../shared/data/speechocean762) data/speechocean762)

# The main job on a CPU: synthesise a LibriSpeech-layout corpus with espeak-ng's and festival's
# voices, train a LAS on both, evaluate it on held-out voices and on an engine it never heard
# (flite, voices whose talkers no training engine has), transcribe a few recordings (a real one
# too where speechocean762 is at hand). Two engines of 2,000 utterances each instead of one of
# 4,000, each utterance less its own mean, chosen on dev sets (recipes/synthetic/RESULTS.md).
demo: $(INSTALLED)
	@echo "== demo: synthesise speech, train a LAS on a CPU, evaluate it on held-out voices and engine, transcribe"
	ASR=$(BIN)/asr bash recipes/synthetic/run.sh --data data/demo --exp exp/demo --engines espeak,festival \
		--held-out-engine flite --vocabulary 1000 --train-utterances 2000 --dev-utterances 100 \
		--config recipes/synthetic/conf/train.yaml --speechocean $(SPEECHOCEAN)

# The most general model the project makes on a CPU: every voice of espeak-ng, flite and festival
# reading open-vocabulary sentences, beside speechocean762's real training set, with speaker and
# channel augmentation; evaluated on held-out voices of each engine and on speechocean762's
# official test set (children and adults). Needs speechocean762 (downloaded by its recipe otherwise).
demo-general: $(INSTALLED)
	@echo "== demo-general: train a LAS on three TTS engines' voices and real read speech, evaluate it on held-out voices and real speech"
	test -f $(SPEECHOCEAN)/train/wav.scp || ASR=$(BIN)/asr bash recipes/speechocean762/run.sh --data $(SPEECHOCEAN) --stop-stage 1
	ASR=$(BIN)/asr bash recipes/synthetic/run.sh --data data/general --exp exp/general --engines espeak,flite,festival \
		--held-out-engine none --train-utterances 1500 --dev-utterances 100 \
		--config recipes/synthetic/conf/general.yaml --speechocean $(SPEECHOCEAN) --with-speechocean

# Any language: espeak-ng's voices read Debian's fortunes in German, Spanish and Mandarin (and the
# English texts), one corpus and one small LAS per language for the same number of steps, tested
# on held-out voices; German and Spanish keep their letters (unicode normaliser), Mandarin is written
# without spaces and scored by CER. Prints the table (exp/multilingual/RESULTS.md).
demo-multilingual: $(INSTALLED)
	@echo "== demo-multilingual: a LAS per language on synthetic speech (en, de, es, zh), tested on held-out voices"
	ASR=$(BIN)/asr bash recipes/synthetic/multilingual.sh --data data/multilingual --exp exp/multilingual

# The FSDD recordings: ../shared/data/fsdd where this checkout has it, else downloaded.
FSDD ?= $(firstword $(wildcard ../shared/data/fsdd) data/fsdd)

demo-fsdd: $(INSTALLED)
	@echo "== demo-fsdd: train a LAS on real spoken digits (FSDD) and evaluate it on the official test split"
	ASR=$(BIN)/asr bash recipes/fsdd/run.sh --data $(FSDD) --exp exp/demo-fsdd

# Real read sentences: the demo's model (made by `make demo` when exp/demo has none) fine-tuned on
# speechocean762's training set, evaluated on its official test set; a LAS trained on these
# 2.6 hours alone does not learn to align (recipes/speechocean762/RESULTS.md).
demo-real: $(INSTALLED)
	test -f exp/demo/model/model.safetensors || $(MAKE) demo
	@echo "== demo-real: fine-tune the demo's LAS on real read sentences (speechocean762), evaluate it on the official test set"
	ASR=$(BIN)/asr bash recipes/speechocean762/run.sh --data $(SPEECHOCEAN) --exp exp/demo-real \
		--config recipes/speechocean762/conf/finetune.yaml

clean:
	rm -rf $(VENV) exp/demo exp/demo-general exp/multilingual exp/demo-fsdd exp/demo-real data/demo data/general data/multilingual
