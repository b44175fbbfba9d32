"""Fixture plugin future-core."""
