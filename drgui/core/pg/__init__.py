"""PostgreSQL tools: finding pg_dump and friends, versions, the embedded scratch cluster."""
