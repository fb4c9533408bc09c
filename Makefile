# The two set-up commands of the README. Each finds Python >= 3.12 and keeps .venv up to date.
.PHONY: demo test lint bench bundle

demo:
	tools/dev demo

test:
	tools/dev test

lint:
	tools/dev venv && .venv/bin/ruff check drgui tests bench && .venv/bin/ruff format --check drgui tests bench \
		&& .venv/bin/mypy

bench:
	tools/dev venv && tools/with-keyring .venv/bin/python bench/backup.py

# A one-folder PyInstaller bundle in dist/drgui/ (docs/install.md); PyInstaller is installed into .venv on demand.
bundle:
	tools/dev venv && (.venv/bin/python -m PyInstaller --version >/dev/null 2>&1 || .venv/bin/python -m pip install --quiet "pyinstaller>=6.10") \
		&& .venv/bin/python -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller packaging/drgui.spec
