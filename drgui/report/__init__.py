"""HTML and PDF reports and the recovery kit."""
