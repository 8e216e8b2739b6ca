# Two commands set everything up on a fresh machine (Python >= 3.11 and make):
#   make eval   - the main job: an offline evaluation with a readable report
#   make test   - the full test suite (unit + integration, servers started on 127.0.0.1)
# Each creates (or reuses) the virtual environment .venv and installs the package into it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SOURCES := $(shell find src graphs nodes memory eval -name '*.py' -o -name '*.gz' 2>/dev/null) pyproject.toml

.PHONY: eval demo test test-quick lint install clean serve chat-ui

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("pahf needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A regular (non-editable) install, refreshed whenever a source file changes, so tests run
# against the installed package exactly as users get it.
# (build/ is setuptools' staging area: a module deleted from the sources would linger there and
# be installed again.)
$(VENV)/.installed: $(BIN)/python $(SOURCES)
	rm -rf build
	$(BIN)/python -m pip install --quiet ".[eval,dev]"
	touch $@

install: $(VENV)/.installed

eval: install
	$(BIN)/pahf eval $(ARGS)

demo: install
	$(BIN)/pahf demo $(ARGS)

# Chat with pahf: `make serve` in one terminal, `make chat-ui` in another (README).
serve: install
	LANGSMITH_TRACING=false $(BIN)/langgraph dev --no-browser --host 127.0.0.1 --port 2024

chat-ui:
	bash examples/agent_chat_ui.sh

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m mypy -p pahf
	$(BIN)/python -m mypy -p bench
	$(BIN)/pytest $(ARGS)

# The quick suite: everything but the end-to-end runs marked slow (under two minutes on 2 cores).
test-quick: install
	$(BIN)/pytest -m "not slow" $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/python -m mypy -p pahf
	$(BIN)/python -m mypy -p bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
