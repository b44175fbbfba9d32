"""Fixture plugin calc."""
