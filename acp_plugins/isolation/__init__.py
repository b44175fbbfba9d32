"""Isolation: untrusted plugins in worker processes of their own.

The worker (its sandbox and its side of the protocol), the host's handle of a
worker, the framing protocol between them, the CPU governor, and the
supervision that starts, restarts and gives up on workers. It implements
:class:`~acp_plugins.runtime.handle.PluginHandle`; runtime never imports it.
"""
