"""An intruder: every command is an attack on its sandbox (never install it elsewhere)."""
