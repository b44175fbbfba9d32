"""Fixture plugin relay."""
