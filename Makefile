# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
# torch is installed first and pinned, from wheels on this machine's disk, so pip never resolves
# a bare "torch" (which would download gigabytes). pip speaks only at error level: this machine's
# pip configuration names index locations that do not exist, and pip would warn about each.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip -qq --disable-pip-version-check --no-input
export PIP_NO_WARN_SCRIPT_LOCATION := 1

.PHONY: demo test test-fast lint format clean-venv

$(STAMP): pyproject.toml Makefile
	@echo "setting up $(VENV) (first run only; about a minute from wheels on this disk)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "  pip: upgrading pip inside $(VENV)"
	@$(PIP) install --upgrade pip
	@echo "  pip: $(TORCH_PINS) (pinned: a bare 'torch' would download gigabytes)"
	@$(PIP) install $(TORCH_PINS)
	@echo "  pip: secateurs in editable mode, with its vision, timm, ONNX and test extras"
	@$(PIP) install -e '.[dev,vision,timm]' $(TORCH_PINS)
	@$(BIN)/python -c "import secateurs, torch, torchvision, timm, onnxruntime" \
		|| { echo "set-up failed: secateurs does not import"; exit 1; }
	@touch $(STAMP)
	@echo "set-up done"

demo: $(STAMP)
	$(BIN)/secateurs demo

# everything, as CI runs it: ruff, then every test (slow ones included), skips listed
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -rfEs

# the edit-test loop: the tests not marked slow
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -rfEs -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
