"""The activity-analytics plugin's settings."""

from __future__ import annotations

from pydantic import Field

from acp_plugins import PluginSettings

DEFAULT_TITLE = "Agent activity report"


class AnalyticsSettings(PluginSettings):
    """Settings of ``activity-analytics``: ``[plugins.activity-analytics]``."""

    title: str = Field(default=DEFAULT_TITLE, min_length=1, description="Reports' title.")
