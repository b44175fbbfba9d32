"""A plugin whose import never ends."""
