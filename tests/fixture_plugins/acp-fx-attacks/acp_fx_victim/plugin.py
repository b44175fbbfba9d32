from acp_plugins import CommandDefinition, CommandResult, Plugin, hookimpl

SECRET = "the victim's secret"


class Victim(Plugin):
    def initialize(self, context):
        super().initialize(context)
        (context.data_dir / "secret.txt").write_text(SECRET)
        return True

    @hookimpl
    def get_commands(self):
        return {"ping": CommandDefinition(name="ping")}

    @hookimpl
    def execute_command(self, command, args):
        return CommandResult(output="pong")
