"""Offers an `add` command (clashing with the tools sample) and a data source."""

from acp_plugins import (
    ArgumentDefinition,
    CommandDefinition,
    CommandResult,
    DataResult,
    DataSourceDefinition,
    Plugin as Base,
    hookimpl,
)


class Plugin(Base):
    @hookimpl
    def get_commands(self):
        return {
            "add": CommandDefinition(
                name="add",
                arguments=[ArgumentDefinition(name="n", type="int", variadic=True)],
            ),
            "neg": CommandDefinition(
                name="neg", arguments=[ArgumentDefinition(name="n", type="int")]
            ),
        }

    @hookimpl
    def execute_command(self, command, args):
        if command == "add":
            return CommandResult(output=str(sum(int(a) for a in args)))
        return {"output": str(-int(args[0]))}

    @hookimpl
    def get_data_sources(self):
        return [DataSourceDefinition(source_id="numbers", fields={"n": "int"})]

    @hookimpl
    def query_data(self, source_id, query):
        rows = [{"n": n} for n in range(10)]
        return DataResult(source_id=source_id, rows=rows[: query.limit], total=len(rows))
