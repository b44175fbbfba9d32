"""Fixture plugin lifecycle-log."""
