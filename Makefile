# The two set-up commands of the README. Each finds Python >= 3.12 and keeps .venv up to date.
.PHONY: demo test lint bench

demo:
	tools/dev demo

test:
	tools/dev test

lint:
	tools/dev venv && .venv/bin/ruff check drgui tests bench && .venv/bin/ruff format --check drgui tests bench

bench:
	tools/dev venv && tools/with-keyring .venv/bin/python bench/backup.py
