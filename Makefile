# The two commands a new machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Some machines set PYTHONDONTWRITEBYTECODE=1; then every test process and every CLI subprocess
# compiles the package and rewrites the tests' asserts again (seconds each). Let them cache.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test test-quick coverage coverage-floors lint typecheck install clean bench docs \
	fuzz chaos

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,examples]'
	touch $(STAMP)

install: $(STAMP)

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/grantkeeper demo

# Test processes (pytest-xdist): one per core and one more, since about a fifth of a test's time
# is spent waiting on a socket or a subprocess (2 cores: 3m34 for the whole `make test`, against
# 4m25 with one per core).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

# The whole suite under coverage.py (branch coverage, the CLI's and the workers' subprocesses
# included: pyproject's [tool.coverage.run]; the source as an absolute path, so a CLI started
# in another directory is still counted), then the floors: the run fails below any of them.
test: $(STAMP) lint
	$(BIN)/coverage erase
	$(BIN)/coverage run --source="$(CURDIR)/src/grantkeeper" -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=15
	$(BIN)/coverage combine --quiet
	$(MAKE) --no-print-directory coverage-floors

# The quick loop while working: everything that starts no process, without coverage. Its tests
# wait on the emulator's sockets about as long as they compute: two processes per core.
QUICK_WORKERS ?= 4
test-quick: $(STAMP)
	$(BIN)/pytest -m "not slow" -q -n $(QUICK_WORKERS) --dist worksteal

# The coverage report and floors of the last `make test` (`make coverage` runs it again).
coverage: test

# part:floor (percent of branch coverage, of the last `make test`); "total" is the package.
COVERAGE_FLOORS := total:90 keeper/:95 oauth/:95 crypto.py:95 store/:95

coverage-floors: $(STAMP)
	@$(BIN)/coverage report --skip-covered --sort=cover | tail -n 30
	@for floor in $(COVERAGE_FLOORS); do \
	  part=$${floor%%:*}; least=$${floor##*:}; \
	  if [ "$$part" = total ]; then include="*/grantkeeper/*"; else include="*/grantkeeper/$$part*"; fi; \
	  total=$$($(BIN)/coverage report --include="$$include" --format=total); \
	  echo "branch coverage of $$part: $$total% (floor $$least%)"; \
	  awk -v t="$$total" -v l="$$least" 'BEGIN { exit !(t + 0 >= l + 0) }' \
	    || { echo "below the floor: $$part"; exit 1; }; \
	done

# The bench and chaos scripts call the library too: a changed API must fail the lint, not
# `make bench` halfway (bench/guide_backend is the code from Google's guide, kept as written).
lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples fuzz chaos
	$(BIN)/ruff format --check src tests bench examples fuzz chaos
	$(BIN)/mypy
	$(BIN)/mypy --strict bench/*.py chaos

docs: $(STAMP)
	$(BIN)/python -m grantkeeper.errors_doc > docs/errors.md

# Figures for issue 9: ratios against the backend written from Google's guide, and the goals.
# The side-by-side runs the servers at once, each phase in slices taken in turn, three rounds,
# and judges each goal on the median.
# The bulk refresh takes about two minutes per database, most of it signing 10,000 users in and
# the google-auth loop it is compared with.
BENCHES := "bench_side_by_side.py --rounds 3" bench_bulk_refresh.py "bench_bulk_refresh.py --database postgresql" \
	bench_store_calls.py bench_store_scale.py bench_access_token.py bench_id_token.py
bench: $(BENCH_STAMP)
	@for b in $(BENCHES); do echo "== bench/$$b"; $(BIN)/python bench/$$b || exit 1; done

# schemathesis against a served keeper (fuzz/run.py): 10,000 requests, no 5xx, no hang, no
# secret echoed. The test suite runs a slice of 1,000 (tests/test_fuzz_slice.py).
FUZZ_REQUESTS ?= 10000
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --requests $(FUZZ_REQUESTS)

# Every chaos/*.py scenario (not the _helpers): each prints what it tried and "lost: N" and
# fails if anything was lost. A few minutes each; not part of `make test`.
chaos: $(STAMP)
	@failed=""; for s in chaos/[!_]*.py; do echo "== $$s"; $(BIN)/python $$s || failed="$$failed $$s"; done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
