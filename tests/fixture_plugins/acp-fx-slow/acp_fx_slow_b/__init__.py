"""Fixture plugin slow-b."""
