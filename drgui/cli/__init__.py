"""The `drgui` command: one module per command."""
