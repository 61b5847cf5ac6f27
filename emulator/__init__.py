"""Offline Claude Messages-API emulator: a deterministic test and demo double."""
