"""Fixture plugin bad-signature."""
