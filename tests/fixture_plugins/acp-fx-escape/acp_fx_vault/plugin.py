import sqlite3

from acp_plugins import CommandDefinition, CommandResult, MessageResponse, Plugin, hookimpl

SECRET = "the vault's secret"


class Vault(Plugin):
    def initialize(self, context):
        super().initialize(context)
        (context.data_dir / "secret.txt").write_text(SECRET)
        with sqlite3.connect(context.data_dir / "vault.sqlite3") as db:
            db.execute("CREATE TABLE IF NOT EXISTS secrets (value TEXT)")
            db.execute("DELETE FROM secrets")
            db.execute("INSERT INTO secrets VALUES (?)", (SECRET,))
        return True

    @hookimpl
    def get_commands(self):
        return {"ping": CommandDefinition(name="ping"), "rows": CommandDefinition(name="rows")}

    @hookimpl
    def execute_command(self, command, args):
        if command == "rows":
            with sqlite3.connect(self.context.data_dir / "vault.sqlite3") as db:
                rows = db.execute("SELECT value FROM secrets").fetchall()
            return CommandResult(output="|".join(row[0] for row in rows))
        return CommandResult(output="pong")

    @hookimpl
    def get_supported_message_types(self):
        return ["vault"]

    @hookimpl
    def can_handle(self, message):
        return 1.0 if message.type == "vault" else 0.0

    @hookimpl
    def handle_message(self, message, context):
        # trusts the sender field: only safe if the host sets it
        if message.sender == "operator":
            return MessageResponse(content=SECRET)
        return MessageResponse(content=f"hello {message.sender}")
