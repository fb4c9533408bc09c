"""The engine. Imports no Qt: tests/test_architecture.py walks the imports."""
