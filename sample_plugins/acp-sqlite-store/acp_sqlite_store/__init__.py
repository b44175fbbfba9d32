"""SQLite store: a sample acp-plugins data provider backed by a SQLite file."""
