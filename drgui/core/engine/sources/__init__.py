"""Sources: one module per kind, one Source interface (base.py)."""
