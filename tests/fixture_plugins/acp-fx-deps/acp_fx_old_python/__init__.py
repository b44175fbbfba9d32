"""Fixture plugin old-python."""
