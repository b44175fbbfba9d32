"""Activity analytics: a sample acp-plugins analytics provider."""
