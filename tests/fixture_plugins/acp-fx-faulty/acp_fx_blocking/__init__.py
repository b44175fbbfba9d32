"""Fixture plugin blocking."""
