"""Echo: a sample acp-plugins message handler."""
