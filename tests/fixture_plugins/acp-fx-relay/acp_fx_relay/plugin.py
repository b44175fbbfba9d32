"""Uses every context operation, as metadata["action"] says."""

from acp_plugins import Message, Plugin as Base, hookimpl


class Plugin(Base):
    @hookimpl
    def get_supported_message_types(self):
        return ["relay"]

    @hookimpl
    def can_handle(self, message):
        return 1.0

    @hookimpl
    async def handle_message(self, message, context):
        action = message.metadata.get("action")
        if action == "send":
            reply = await context.send_message(Message(type="echo", content=message.content))
            return f"echo said: {reply.content}"
        if action == "run":
            result = await context.run_command("add", ["1", "2"])
            return f"add said: {result.output}"
        if action == "sources":
            return ",".join(source.source_id for source in context.data_sources())
        if action == "query":
            result = await context.query_data("agent-events")
            return f"{len(result.rows)} rows"
        if action == "may-run":
            return str(context.has_permission("execute-commands"))
        return "no action"
