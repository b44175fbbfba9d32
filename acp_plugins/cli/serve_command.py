"""``acp-plugins serve``: the management server over a host that runs until stopped."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from types import FrameType

from acp_plugins.cli.exits import EXIT_FAILED, EXIT_OK, CliError
from acp_plugins.cli.hosting import build_host, host_settings
from acp_plugins.cli.output import print_json

__all__ = ["DEFAULT_PORT", "cmd_serve"]

DEFAULT_PORT = 8765


async def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the REST API, the event WebSocket and /metrics until SIGTERM or Ctrl-C."""
    try:
        import uvicorn

        from acp_plugins.server import ServerTokens, create_app
    except ImportError as missing:
        raise CliError(
            f"the server needs FastAPI and uvicorn ({missing.name} is not installed): "
            "pip install 'acp-plugins[server]'",
            EXIT_FAILED,
        ) from None
    url = f"http://{args.host}:{args.port}"
    settings, _ = host_settings(args)
    sockets = [_bind(args.host, args.port, url)]
    metrics_port, metrics_host = settings.server.metrics_port, settings.server.metrics_host
    metrics_url = f"http://{metrics_host}:{metrics_port}/metrics" if metrics_port else None
    if metrics_port is not None:
        if metrics_port == args.port:
            sockets[0].close()
            raise CliError(
                f"server.metrics_port {metrics_port} is the port the API serves on; choose "
                "another one, or leave it unset to serve /metrics with the read token",
                EXIT_FAILED,
            )
        try:
            hint = "choose another server.metrics_port or server.metrics_host"
            sockets.append(_bind(metrics_host, metrics_port, metrics_url or "", hint))
        except CliError:
            sockets[0].close()
            raise
    host = build_host(args)
    tokens = ServerTokens.load(host.data_root)
    app = create_app(host, tokens, settings.server)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", lifespan="on",
        timeout_graceful_shutdown=30,
    )  # fmt: skip
    server = uvicorn.Server(config)
    started: dict[str, object] = {
        "serving": url,
        "tokens": dict(tokens.origins),
        "docs": f"{url}/api/v1/docs",
        "metrics": metrics_url or f"{url}/metrics",
    }
    stopped: list[int] = []

    def remember(number: int, _: FrameType | None) -> None:
        stopped.append(number)  # uvicorn hands the signal back once it has shut down

    previous = {n: signal.signal(n, remember) for n in (signal.SIGINT, signal.SIGTERM)}
    try:
        origins = tokens.origins
        text = f"serving {url} (admin token: {origins['admin']}, read token: {origins['read']})"
        text += f"; {metrics_url} without a token" if metrics_url else ""
        _say(args, started, f"{text}; Ctrl-C or SIGTERM stops")
        await server.serve(sockets=sockets)
    except SystemExit as failed:  # uvicorn's own way of saying it could not start
        raise CliError(f"could not serve on {url} (status {failed.code})", EXIT_FAILED) from None
    finally:
        for listening in sockets:
            listening.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    _say(args, {"stopped": url}, "stopped: no new requests, plugins unloaded, workers gone")
    return EXIT_OK


def _bind(
    address: str, port: int, url: str, hint: str = "choose another --port or --host"
) -> socket.socket:
    """The listening socket, bound here so that a port in use is one clear line."""
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP
        listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((address, port))
    except (OSError, OverflowError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CliError(f"could not serve on {url}: {reason}; {hint}", EXIT_FAILED) from None
    listening.listen(2048)
    listening.set_inheritable(True)
    return listening


def _say(args: argparse.Namespace, data: dict[str, object], text: str) -> None:
    if args.json:
        print_json(data, compact=True)
    else:
        print(text)
    sys.stdout.flush()
