# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
STAMP := $(VENV)/.installed

# Some environments forbid bytecode files (PYTHONDONTWRITEBYTECODE=1): every process would then
# compile the project from source again (about 0.15 s of CPU on a quiet 2-core machine) in
# each of the hundreds of gunicorn, Celery and test processes the suite starts. Allow them, kept under .venv, not in the sources.
export PYTHONDONTWRITEBYTECODE :=
export PYTHONPYCACHEPREFIX := $(CURDIR)/$(VENV)/pycache

.PHONY: run test test-fast test-browser lint bench clean messages

# --no-compile: pip would byte-compile every installed module, one after another (9 of the
# install's 15 s on the 2-core machine); Python compiles the ones a process imports, once,
# into PYTHONPYCACHEPREFIX. A fresh clone's `make test`: 3:49 against 4:01.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -r requirements-dev.txt
	@touch $(STAMP)

# The translations (translations/<language>/LC_MESSAGES/messages.po) are compiled as part of the
# install: every target that runs the app depends on the compiled catalogues.
CATALOGUES := $(wildcard translations/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGUES:.po=.mo)
%.mo: %.po $(STAMP)
	@$(BIN)/pybabel -q compile -i $< -o $@

# After adding or changing words: extract them from the code and templates, merge them into
# every language's catalogue (new ones untranslated, gone ones dropped), compile.
SOURCES := admin auth core referral rewards demo templates app.py config.py
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext -k lazy_ngettext:1,2 \
		--no-location --sort-output --project InviteLoop -o translations/messages.pot $(SOURCES)
	$(BIN)/pybabel -q update -i translations/messages.pot -d translations \
		--no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel -q compile -d translations

# The seed prints how to log in as its last lines, right before the server's own.
HOST ?= 127.0.0.1
PORT ?= 5000
run: $(STAMP) $(COMPILED)
	@$(FLASK) db upgrade
	@$(FLASK) demo seed --if-empty --url http://$(HOST):$(PORT)
	@$(FLASK) run --host $(HOST) --port $(PORT)

# Three test workers for every two CPUs, each with its own databases. Part of the suite's time
# is spent waiting (on servers starting, on timeouts the fault tests provoke, on the browser):
# on the 2-core machine 2 workers kept 1.3 CPUs busy, 3 kept 1.85 busy and finished in 5 min,
# and 4 kept both busy but took 16 % more CPU for the same tests (636 CPU-s against 551: more
# processes fighting over the caches and the cores), so they finished later. Work stealing keeps
# every worker busy to the end; a module's apps and seeded data are made once per worker that
# runs any of its tests. TEST_WORKERS=n overrides.
TEST_WORKERS ?= $(shell echo $$(( ($$(nproc 2>/dev/null || echo 1) * 3 + 1) / 2 )))
PARALLEL := -n $(TEST_WORKERS) --dist worksteal

# Races and property tests run a few rounds each here and at full strength in CI
# (INVITELOOP_TEST_INTENSITY=full, tests/intensity.py).
test: $(STAMP) $(COMPILED)
	$(BIN)/python -m pytest $(PARALLEL) $(PYTEST_ARGS)

# The edit-test loop: SQLite only, no server, worker or browser processes, nothing marked slow
# (the property-based ledger, the concurrency races); `make test` runs them all.
test-fast: $(STAMP) $(COMPILED)
	$(BIN)/python -m pytest $(PARALLEL) -k sqlite -m "not server and not postgres_only and not slow" $(PYTEST_ARGS)

# Every page in Chromium (/usr/bin/chromium-headless-shell) at phone and desktop width, with axe-core; also
# part of `make test`. INVITELOOP_SCREENSHOTS=1 retakes the screenshots in docs/.
test-browser: $(STAMP) $(COMPILED)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m browser $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Every figure of issue 15 (bench/README.md): 100k and 1M participants on PostgreSQL (with
# Redis) and SQLite, the real gunicorn and a bare Flask app loaded in alternating rounds by wrk
# (Debian package `wrk`), then the analytics home on 2.2M participants. Takes about an hour.
# Exit status 1 on a wrong count (clicks, rewards, answers), never on speed.
bench: $(STAMP) $(COMPILED)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# schemathesis against a real gunicorn on a throwaway database (tests/api_check.py): fails on
# any 5xx, any answer /api/openapi.json does not describe, any unsigned webhook accepted.
API_CHECK_DATABASE ?= sqlite
.PHONY: api-check
api-check: $(STAMP)
	$(BIN)/python -m tests.api_check --database $(API_CHECK_DATABASE) $(API_CHECK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

.PHONY: bench-events
bench-events: $(STAMP) $(COMPILED)
	$(BIN)/python -m bench.events

.PHONY: bench-analytics
bench-analytics: $(STAMP) $(COMPILED)
	$(BIN)/python -m bench.analytics --backend both --sqlite-scale 0.2

.PHONY: bench-tree
bench-tree: $(STAMP) $(COMPILED)
	$(BIN)/python -m bench.tree --backend both

# The same run on small data in under two minutes, plus the tree benchmark on a tiny tree:
# CI's smoke test (.ci/run). It fails on a wrong count or a benchmark that stopped running,
# never on speed. It replaces bench-smoke, whose leaderboard, events and analytics runs it
# covers through bench.run.
.PHONY: bench-quick
bench-quick: $(STAMP) $(COMPILED)
	$(BIN)/python -m bench.run --quick
	$(BIN)/python -m bench.tree --descendants 200 --noise 100 --backend both --repeat 1

# The cold leaderboard alone, with the plans of its statements.
.PHONY: bench-leaderboard
bench-leaderboard: $(STAMP) $(COMPILED)
	$(BIN)/python -m bench.leaderboard
