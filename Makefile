# Every target sets itself up (scripts/bootstrap is idempotent), so each works on a fresh clone.
.PHONY: run serve test fuzz journey lint format superuser bench-sync bench-api bench-export bench-firstload bench-map docker-secrets docker-smoke

HOST ?= 127.0.0.1
PORT ?= 8000

## run: development server on $(HOST):$(PORT) (Postgres and Redis from the environment or the defaults)
run:
	scripts/bootstrap runtime
	.venv/bin/python manage.py collectstatic --noinput --verbosity 0
	.venv/bin/python manage.py runserver $(HOST):$(PORT)

## serve: the production server (gunicorn) on $(HOST):$(PORT)
serve:
	scripts/bootstrap runtime
	.venv/bin/python manage.py collectstatic --noinput --verbosity 0
	.venv/bin/gunicorn config.wsgi --bind $(HOST):$(PORT) --config config/gunicorn.py

## test: the whole test suite against the real Postgres and Redis
test:
	scripts/bootstrap dev
	.venv/bin/pytest $(PYTEST_ARGS)

## fuzz: the schema fuzzer at length (FUZZ_EXAMPLES cases per operation and phase, default 1000)
FUZZ_EXAMPLES ?= 1000
fuzz:
	scripts/bootstrap dev
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) .venv/bin/pytest tests/api/test_fuzz.py -p no:cacheprovider

## journey: README's "A user's journey", run for real in a fresh clone (also part of `make test`)
journey:
	python3 scripts/journey

## lint: ruff, as CI runs it
lint:
	scripts/bootstrap dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

## format: fix what ruff can fix
format:
	scripts/bootstrap dev
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

## superuser: create an admin user from DJANGO_SUPERUSER_USERNAME/_EMAIL/_PASSWORD, without prompts
superuser:
	scripts/bootstrap runtime
	.venv/bin/python manage.py createsuperuser --noinput

## bench-sync: time sync_trees against a plain COPY (683,788 rows; see benchmarks/bench_sync.py)
bench-sync:
	scripts/bootstrap dev
	.venv/bin/python -m benchmarks.bench_sync $(BENCH_ARGS)

## bench-firstload: the API under 16 clients during a full-census first load (see benchmarks/bench_firstload.py)
bench-firstload:
	scripts/bootstrap dev
	.venv/bin/python benchmarks/bench_firstload.py $(BENCH_ARGS)

## docker-secrets: secrets/ and .env.docker for the Compose stack (random values; never overwrites)
docker-secrets:
	scripts/docker-secrets

## docker-smoke: build and run the Compose stack for real with podman (see README "Run with Docker")
docker-smoke:
	scripts/bootstrap dev
	scripts/docker-smoke

## bench-api: the API load benchmark at full census size, in its own database (BENCH_ARGS=--quick for a smoke run)
bench-api:
	scripts/bootstrap dev
	@command -v wrk >/dev/null 2>&1 || { echo "bench-api: installing wrk (Debian package)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi; }
	.venv/bin/python benchmarks/bench_api.py $(BENCH_ARGS)

## bench-map: the map page in headless Chromium on the full census, cold cache (see benchmarks/bench_map.py)
bench-map:
	scripts/bootstrap dev
	.venv/bin/python benchmarks/bench_map.py $(BENCH_ARGS)

## bench-export: whole-census exports through gunicorn against a plain COPY, in its own database
bench-export:
	scripts/bootstrap dev
	.venv/bin/python benchmarks/bench_export.py $(BENCH_ARGS)
