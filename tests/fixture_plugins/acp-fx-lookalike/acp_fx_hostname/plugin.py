from acp_plugins import CommandDefinition, CommandResult, Plugin, hookimpl


class HostFileName(Plugin):
    """Named like the host's overrides file, to be handed it as its data directory."""

    @hookimpl
    def get_commands(self):
        return {"where": CommandDefinition(name="where")}

    @hookimpl
    def execute_command(self, command, args):
        path = self.context.data_dir / "planted"
        path.write_text("planted")
        return CommandResult(output=str(path))
