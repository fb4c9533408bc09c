"""The engine: the snapshot format, streaming, crypto, sources, destinations, verify and restore."""
