# The two commands: `make run` serves the site, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
# The constraints file of the venv's dependency line (requirements-django61.lock on 3.12+).
LOCK ?= requirements.lock
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format bench bench-quick install npm clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Reinstall whenever the dependency list or the lock changes.
$(STAMP): $(PY) pyproject.toml $(LOCK)
	$(PIP) install -q -c $(LOCK) -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py mark_interrupted
	$(PY) manage.py ensure_demo_user --url http://$(HOST):$(PORT)/
	$(PY) manage.py collectstatic --noinput -v 0
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) chatsite.asgi:application

test: install
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy chat chatsite

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) -m bench.run

bench-quick: install
	$(PY) -m bench.run --quick

# Reinstall the browser libraries from package-lock.json and re-copy them into static/vendor/.
npm:
	npm ci
	npm run vendor

clean:
	rm -rf $(VENV) staticfiles db.sqlite3* test-db.sqlite3*
