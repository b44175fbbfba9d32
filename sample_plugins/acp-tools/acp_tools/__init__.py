"""Tools: a sample acp-plugins command handler."""
