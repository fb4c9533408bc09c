"""The plan: its config, secrets, home, workspace and the run lock."""
