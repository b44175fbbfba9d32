"""Fixture plugin half-handler."""
