"""Messages from one plugin to another: the hook a plugin implements to receive them.

A plugin sends with ``await context.send_to_plugin(target_id, payload)`` (it needs
``write-messaging``); the host delivers to the target's ``on_plugin_message`` (the
target needs ``read-messaging``) and hands its return value back as the answer. The
``sender`` is the sending plugin's id, set by the host: a plugin cannot send as
another. ``payload`` and the answer are JSON data (objects, arrays, strings,
numbers, booleans, null), the same whether either plugin runs in-process or isolated.
"""

# mypy: disable-error-code="empty-body"
from __future__ import annotations

from typing import Any

from acp_plugins.markers import hookspec


@hookspec
def on_plugin_message(sender: str, payload: Any) -> Any:
    """Answer a message another plugin sent with ``context.send_to_plugin``."""
