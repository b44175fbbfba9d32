"""Fixture plugin import-error."""
