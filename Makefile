# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean bytecode

$(BIN)/python:
	@scripts/ensure-python.sh $(PYTHON) $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# Bytecode for Warden's own modules, written even where PYTHONDONTWRITEBYTECODE is set: the
# demo and the tests start many Warden processes, and each would compile every module again.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src > /dev/null

demo: bytecode
	$(BIN)/warden demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/

# pytest exits 5 when it collected no test; make treats any non-zero exit as failure.
# WARDEN_EXPECT_BWRAP / WARDEN_EXPECT_BROWSER: the sandbox's and the console's browser tests
# fail, not skip, when the jail or Chromium is missing. Screenshots go to .artifacts/.
test: $(STAMP) lint typecheck bytecode
	@scripts/ensure-services.sh
	WARDEN_EXPECT_BWRAP=1 WARDEN_EXPECT_BROWSER=1 $(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/identity.py --quick
	$(BIN)/python benchmarks/decide.py --quick
	$(BIN)/python benchmarks/gateway.py --quick
	$(BIN)/python benchmarks/audit.py --quick
	$(BIN)/python benchmarks/dlp.py --quick
	$(BIN)/python benchmarks/detection.py --quick
	$(BIN)/python benchmarks/scale.py --quick
	$(BIN)/python benchmarks/containment.py --quick
	$(BIN)/python benchmarks/sandbox.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
