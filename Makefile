# aurep developer commands. `make install` builds .venv/ with the versions verified on CPU.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
# Verified set: CUDA builds of torch/torchvision run fine on CPU-only machines.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# mediapipe's own requirements pull the GUI OpenCV over opencv-python-headless: install it alone.
MEDIAPIPE := mediapipe==1.2.2
SYNTH_DIR := data/synth

.PHONY: install test lint format demo synth benchmark-quality clean

install: $(BIN)/aurep

$(BIN)/aurep: pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e ".[dev]" $(TORCH_PINS)
	$(PIP) install -q --no-deps $(MEDIAPIPE)
	touch $(BIN)/aurep

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

$(SYNTH_DIR)/meta.json: | install
	$(BIN)/aurep synth --out $(SYNTH_DIR) --overwrite

synth: $(SYNTH_DIR)/meta.json

demo: synth
	$(BIN)/aurep fit --config configs/pretrain/base.yaml --config configs/pretrain/all.yaml

# About an hour on 2 CPU cores: pretrains every config, then linear probes (benchmarks/quality.py).
benchmark-quality: synth
	$(BIN)/python benchmarks/quality.py --out benchmarks/results/quality.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
