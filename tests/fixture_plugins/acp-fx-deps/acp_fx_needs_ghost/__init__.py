"""Fixture plugin needs-ghost."""
