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

.PHONY: install test lint format demo synth benchmark-quality benchmark-quality-quick clean

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

DEMO_LAST := runs/pretrain/all/checkpoints/last.ckpt
# A second `make demo` resumes (or, when finished, only reports) the first run's checkpoint.
demo: synth
	$(BIN)/aurep fit --config configs/pretrain/base.yaml --config configs/pretrain/all.yaml \
		$(if $(wildcard $(DEMO_LAST)),--ckpt_path last)

# Quality benchmark (benchmarks/quality.py): both write benchmarks/results/quality.{md,png}.
# Quick (~20 min on 2 CPU cores): two small corpora, 3 seeds, temporal only, 20-step budgets
# (40 for the ceiling); --configs/--steps choose others.
benchmark-quality-quick: install
	$(BIN)/python benchmarks/quality.py --mode quick
# Full (about 60 h on 2 CPU cores; meant for a GPU): every pretraining config, 3000-step budgets, 6000 for the ceiling.
benchmark-quality: install
	$(BIN)/python benchmarks/quality.py --mode full

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
