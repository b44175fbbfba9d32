"""Fixture plugin cycle-a."""
