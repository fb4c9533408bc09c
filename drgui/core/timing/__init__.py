"""Time rules, pure: schedules (RFC 5545) and retention (restic's forget)."""
