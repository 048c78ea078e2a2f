# ETL Portal. `make run` starts the demo, `make test` runs the tests; both install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench install keys system-deps-run system-deps-test migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $(STAMP)

install: system-deps-run $(STAMP) keys

# The data folder's generated keys (ETL_DATA_DIR, default ./data): settings only read them, never write.
keys:
	@$(PYTHON) scripts/init-keys.py

system-deps-run:
	@scripts/system-deps.sh run

system-deps-test:
	@scripts/system-deps.sh test

migrate: install
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py seed_demo
	@echo "Open http://127.0.0.1:8000/ and log in with the user printed above."
	$(PY) manage.py serve

# Python's bytecode cache, pytest's rewritten test modules included, is written (to the git-ignored __pycache__)
# even where the environment sets PYTHONDONTWRITEBYTECODE: without it every pytest process, each xdist worker
# too, parses and rewrites every test module again, about 3 s each.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest

test: system-deps-test install
	$(PYTEST) $(PYTEST_ARGS)

# A quick check: the tests that need no server (sshd/ftpd/smbd/SMTP sink/PostgreSQL/MariaDB/browser/qcluster) and
# are not slow by nature (a real timeout or lease waited for, the API fuzzed). Its database is made from the
# models, not migrated (tests/schema_from_models.py); each test module stays on one worker, so the worlds the
# authorization tables build once per module are built once. `make test` runs every test, migrated.
test-fast: install
	$(PYTEST) -m "not servers and not slow" -n auto --dist loadfile --no-migrations $(PYTEST_ARGS)

bench: system-deps-test install
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data data-demo test-artifacts
