# Every target creates .venv and installs cardsim into it when needed, so a fresh
# clone needs only Python 3.11+ and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/cardsim run scenarios/small-town.toml --out out/small-town

test: $(STAMP)
	$(BIN)/ruff check cardsim tests benchmarks
	$(BIN)/ruff format --check cardsim tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP)
	mkdir -p out
	$(BIN)/pytest benchmarks --benchmark-group-by=group --benchmark-columns=min,median,rounds --benchmark-json=out/bench.json

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .benchmarks
