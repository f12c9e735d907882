# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
SNAKEMAKE := $(VENV)/bin/snakemake

.PHONY: install demo test lint bench clean-demo

$(VENV)/.installed: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# -c pins every package (torch to the CPU build on this disk); never let pip resolve torch by itself.
	$(PY) -m pip install -q -c requirements.lock -e ".[workflow,demo,test,bench,lint]"
	touch $@

install: $(VENV)/.installed

demo: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SNAKEMAKE) --cores $(CORES) --configfile config/demo.yaml
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SNAKEMAKE) --cores $(CORES) --configfile config/demo.yaml --report results/report.html
	@echo "Demo finished. Report: $(abspath results/report.html); tables: results/summary.tsv, results/*/*/layers.tsv"

test: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest

# ruff (settings in pyproject.toml [tool.ruff]), snakefmt --check (pyproject.toml [tool.snakefmt]), snakemake --lint.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SNAKEMAKE) --lint --configfile config/demo.yaml

bench: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) benchmarks/knn_graph.py
