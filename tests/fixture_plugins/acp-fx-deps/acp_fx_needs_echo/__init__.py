"""Fixture plugin needs-echo."""
