"""Settings of the vault fixture: nested, typed, secret."""

from pathlib import Path

from pydantic import Field, SecretStr

from acp_plugins import PluginSettings


class Endpoint(PluginSettings):
    url: str = "http://127.0.0.1:9"
    retries: int = Field(default=3, ge=0, le=10)
    verify: bool = True


class VaultSettings(PluginSettings):
    api_key: SecretStr = SecretStr("default-secret-value")
    endpoint: Endpoint = Endpoint()
    tags: list[str] = []
    cache_dir: Path = Path("cache")
    ratio: float = 0.5
