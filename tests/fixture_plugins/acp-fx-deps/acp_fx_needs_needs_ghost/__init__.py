"""Fixture plugin needs-needs-ghost."""
