"""Fixture plugin slow-numbers."""
