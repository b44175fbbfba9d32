"""Fixture plugin typo-hook."""
