"""Fixture plugin quits."""
