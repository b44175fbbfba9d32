"""Fixture plugin loud."""
