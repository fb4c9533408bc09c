"""Destinations: one module per kind, one Destination interface (base.py)."""
