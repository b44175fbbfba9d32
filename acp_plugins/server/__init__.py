"""The management server: REST, WebSocket events and Prometheus over a running host.

An optional part: ``pip install 'acp-plugins[server]'`` brings FastAPI and uvicorn.
``acp-plugins serve`` runs it; :func:`create_app` builds the application.
"""

from acp_plugins.server.app import create_app
from acp_plugins.server.tokens import ServerTokens

__all__ = ["ServerTokens", "create_app"]
