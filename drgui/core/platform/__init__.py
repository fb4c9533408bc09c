"""What differs per operating system: autostart at login, removable drives and their encryption."""
