"""The PySide6 desktop app."""
