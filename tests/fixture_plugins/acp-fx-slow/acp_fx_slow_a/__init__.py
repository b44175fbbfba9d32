"""Fixture plugin slow-a."""
