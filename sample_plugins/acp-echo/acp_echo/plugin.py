"""The echo plugin: answers messages with their own text, after a configurable prefix."""

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
        return MessageResponse(content=f"{settings.prefix}{message.content}")
