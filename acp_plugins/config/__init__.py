"""Configuration: the layers a plugin's settings come from, and the host's own settings.

Defaults, the global and user config files, the environment and the runtime
overrides, merged and validated against each plugin's settings model, with the
origin of every value. Nothing here runs a plugin.
"""
