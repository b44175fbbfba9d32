"""Events: a publish/subscribe bus and the host's own lifecycle events on it.

See :mod:`acp_plugins.events.bus`. The host publishes ``plugin:activated``,
``plugin:deactivated``, ``plugin:unloaded``, ``plugin:message`` and
``plugin:command``; host code subscribes with ``host.events.subscribe(pattern)``.
"""
