# Set-up is two commands: `make install` then `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := dataset-fashion-mnist chromium iproute2

.PHONY: install system-packages test lint smoke bench clean

install: system-packages $(BIN)/trainer

# Fashion-MNIST (offline), Chromium (the HTML report's rendering test, headless) and iproute2
# (`ip`, for the distribution tests' loopback-only network namespaces) come from Debian;
# installed only when missing, skipped with a note when apt is unavailable.
system-packages:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] || ! command -v chromium >/dev/null \
	    || ! command -v ip >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES); \
	  elif command -v sudo >/dev/null; then \
	    sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES); \
	  else echo "note: install Debian's $(APT_PACKAGES) for offline Fashion-MNIST and the report test"; fi; \
	fi

$(BIN)/trainer: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

test:
	$(BIN)/python -m pytest -q -n 2

lint:
	$(BIN)/ruff check trainer tests bench
	$(BIN)/ruff format --check trainer tests bench
	$(BIN)/lint-imports

smoke:
	$(BIN)/trainer config validate configs/*.yaml
	$(BIN)/trainer fit configs/smoke.yaml --run-dir runs/smoke-ci --fail-under accuracy=0.5
	$(BIN)/trainer eval runs/smoke-ci --json --fail-under accuracy=0.5 > /dev/null
	$(BIN)/trainer fit configs/smoke.yaml --set training.backend=jax --run-dir runs/smoke-jax --fail-under accuracy=0.5
	for config in configs/smoke_*.yaml; do \
	  $(BIN)/trainer fit $$config --runs-root runs/smoke-families --json > /dev/null || exit 1; \
	done

bench:
	$(BIN)/python bench/run.py --write

clean:
	rm -rf runs .pytest_cache
