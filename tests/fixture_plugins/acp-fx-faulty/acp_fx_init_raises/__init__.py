"""Fixture plugin init-raises."""
