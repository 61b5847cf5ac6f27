"""Recovery: re-drive work a crash left behind, replay dead letters, retry backoff."""
