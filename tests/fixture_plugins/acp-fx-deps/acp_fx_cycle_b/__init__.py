"""Fixture plugin cycle-b."""
