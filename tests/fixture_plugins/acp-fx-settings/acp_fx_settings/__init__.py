"""Fixture plugin vault."""
