"""Benchmarks of acp-plugins against raw pluggy and stevedore: ``python -m benchmarks``."""
