"""The echo plugin: answers messages with their own text."""

from __future__ import annotations

from acp_plugins import Message, MessageResponse, Plugin, PluginContext, hookimpl


class EchoPlugin(Plugin):
    """Certain about 'echo' messages, a fallback for 'chat' ones."""

    prefix = "echo: "

    @hookimpl
    async def get_supported_message_types(self) -> list[str]:
        return ["echo", "chat"]

    @hookimpl
    async def can_handle(self, message: Message) -> float:
        return 1.0 if message.type == "echo" else 0.1

    @hookimpl
    async def handle_message(self, message: Message, context: PluginContext) -> MessageResponse:
        prefix = str(context.config.get("prefix", self.prefix))
        return MessageResponse(content=f"{prefix}{message.content}")
