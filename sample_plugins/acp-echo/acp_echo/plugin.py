"""The echo plugin: answers messages with their own text, after a configurable prefix.

A message ``@PLUGIN text`` of type ``echo`` is forwarded to that plugin
(``context.send_to_plugin``) and its answer echoed; each answer is published on the
bus as ``echo.answered`` (the activity-analytics sample counts them), and other
plugins may send echo a message of their own (``on_plugin_message``).
"""

from __future__ import annotations

from acp_echo.config import EchoSettings
from acp_plugins import Message, MessageResponse, Plugin, PluginContext, hookimpl


class EchoPlugin(Plugin):
    """Certain about 'echo' messages, a fallback for 'chat' ones."""

    settings_model = EchoSettings

    @hookimpl
    async def get_supported_message_types(self) -> list[str]:
        return ["echo", "chat"]

    @hookimpl
    async def can_handle(self, message: Message) -> float:
        return 1.0 if message.type == "echo" else 0.1

    @hookimpl
    async def handle_message(self, message: Message, context: PluginContext) -> MessageResponse:
        settings: EchoSettings = context.settings  # always current: the host keeps it so
        target, _, text = message.content.partition(" ")
        if message.type == "echo" and target.startswith("@") and len(target) > 1:
            # "@PLUGIN text": forwarded to that plugin's on_plugin_message, its answer echoed
            answer = await context.send_to_plugin(target[1:], {"text": text})
            content = f"{settings.prefix}{target[1:]} says: {answer}"
        else:
            content = f"{settings.prefix}{message.content}"
        await context.publish("echo.answered", {"sender": message.sender, "chars": len(content)})
        return MessageResponse(content=content)

    @hookimpl
    def on_plugin_message(self, sender: str, payload: dict[str, object]) -> str:
        """Another plugin's message (``context.send_to_plugin("echo", {"text": ...})``)."""
        return f"{self.context.settings.prefix}{payload.get('text', '')}"
