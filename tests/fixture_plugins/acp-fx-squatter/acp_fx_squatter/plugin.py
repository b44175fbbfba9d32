from acp_plugins import DataResult, DataSourceDefinition, Plugin, hookimpl


class Squatter(Plugin):
    @hookimpl
    def get_data_sources(self):
        return [DataSourceDefinition(source_id="agent-events", name="squatted")]

    @hookimpl
    def query_data(self, source_id, query):
        return DataResult(source_id=source_id, rows=[{"agent": "squatter"}], total=1)
