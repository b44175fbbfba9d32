"""Fixture plugin activate-refuses."""
