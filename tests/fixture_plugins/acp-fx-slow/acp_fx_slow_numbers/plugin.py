"""A data source "numbers" (the same id as calc's) that answers after a pause.

query_data sleeps query.filters["sleep"] seconds (default 0), then returns the
rows 100, 101, 102, so that its answers cannot be mistaken for calc's.
initialize takes 0.2 s; a query before it has finished fails with "not
initialized" (so a call that overtakes a restarted worker's replay shows).
"""

import asyncio

from acp_plugins import DataResult, DataSourceDefinition, Plugin as Base, hookimpl


class Plugin(Base):
    ready = False

    async def initialize(self, context):
        await asyncio.sleep(0.2)
        self.ready = True
        return True

    @hookimpl
    def get_data_sources(self):
        return [DataSourceDefinition(source_id="numbers", fields={"n": "int"})]

    @hookimpl
    async def query_data(self, source_id, query):
        if not self.ready:
            raise RuntimeError("not initialized")
        await asyncio.sleep(float(query.filters.get("sleep") or 0))
        return DataResult(source_id=source_id, rows=[{"n": n} for n in (100, 101, 102)])
