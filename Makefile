# `make demo`: generate data from built-in glyphs, train briefly, print accuracy.
# `make test`: the import layers (lint-imports, contracts in pyproject.toml), then the
# test suite. Both create .venv and install the package first, with the exact torch of
# constraints.txt (pip install -e . alone keeps any torch already installed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,export]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/semilabel demo

test: $(STAMP)
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-run runs
