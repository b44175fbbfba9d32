"""Runtime: plugins that are loaded and called.

The handle protocol (one per plugin, in-process or isolated), guarded calls,
routing of messages, commands, data sources and reports, the plugin record and
its lifecycle states, the context a plugin reaches the host through, and the
services the host is composed of (catalog, lifecycle driver, configuration,
dispatch). Runtime knows the handle protocol, never the worker behind it.
"""
