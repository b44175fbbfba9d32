"""Fixture plugin needs-new-echo."""
