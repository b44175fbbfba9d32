"""``IMessageHandler``: plugins that answer messages.

For each message the host asks every active handler whose supported types
include the message's type for its confidence, concurrently; the highest score
above zero wins (ties go to the plugin id that sorts first) and only the winner
handles the message.
"""

# mypy: disable-error-code="empty-body"
from __future__ import annotations

from typing import TYPE_CHECKING

from acp_plugins.markers import hookspec

if TYPE_CHECKING:
    from acp_plugins.models import Message, MessageResponse
    from acp_plugins.runtime.context import PluginContext


@hookspec
def get_supported_message_types() -> list[str]:
    """Return the message types this plugin handles (``"*"`` for any).

    Asked once when the plugin is activated; messages of other types are never offered.
    """


@hookspec
def can_handle(message: Message) -> float:
    """Return a confidence in ``0.0 .. 1.0`` that this plugin should answer ``message``.

    ``0.0`` means "not mine". A score outside the range is an error of the plugin.
    """


@hookspec
def handle_message(message: Message, context: PluginContext) -> MessageResponse:
    """Answer ``message``; called only on the plugin that scored highest."""
