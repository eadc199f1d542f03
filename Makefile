# One target per habit. `make sweep` and `make test` are the README's two opening commands.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: sweep test lint format typecheck bench site docs clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[dev,hf,lightning,docs]" -c constraints.txt
	touch $(STAMP)

sweep: $(STAMP)
	$(VENV)/bin/lrfind sweep configs/quickstart.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	LRFIND_REQUIRE_HF=1 LRFIND_REQUIRE_LIGHTNING=1 $(VENV)/bin/pytest -q
	d=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet \
		--site-dir $$d/site && rm -rf $$d

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/quality.py
	$(PY) benchmarks/overhead.py

# The documentation site (mkdocs.yml, docs/), served at http://127.0.0.1:8000 while you edit.
site: $(STAMP)
	$(VENV)/bin/mkdocs serve

# Regenerates the plots the docs show (real quickstart runs on the CPU: as it is, and for a
# stated 2000-step run).
docs: $(STAMP)
	d=$$(mktemp -d) && $(VENV)/bin/lrfind sweep configs/quickstart.yaml --set device=cpu -q \
		--out $$d/run && cp $$d/run/lr_finder.png docs/quickstart.png && rm -rf $$d
	d=$$(mktemp -d) && $(VENV)/bin/lrfind sweep configs/quickstart.yaml --set device=cpu -q \
		--set train.steps=2000 --out $$d/run && cp $$d/run/lr_finder.png docs/horizon.png \
		&& rm -rf $$d

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
