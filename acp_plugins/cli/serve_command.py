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
    listening = _bind(args.host, args.port, url)
    settings, _ = host_settings(args)
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
    }
    stopped: list[int] = []

    def remember(number: int, _: FrameType | None) -> None:
        stopped.append(number)  # uvicorn hands the signal back once it has shut down

    previous = {n: signal.signal(n, remember) for n in (signal.SIGINT, signal.SIGTERM)}
    try:
        origins = tokens.origins
        _say(args, started, f"serving {url} (admin token: {origins['admin']}, read token: "
                            f"{origins['read']}); Ctrl-C or SIGTERM stops")  # fmt: skip
        await server.serve(sockets=[listening])
    except SystemExit as failed:  # uvicorn's own way of saying it could not start
        raise CliError(f"could not serve on {url} (status {failed.code})", EXIT_FAILED) from None
    finally:
        listening.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    _say(args, {"stopped": url}, "stopped: no new requests, plugins unloaded, workers gone")
    return EXIT_OK


def _bind(address: str, port: int, url: str) -> socket.socket:
    """The listening socket, bound here so that a port in use is one clear line."""
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP
        listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((address, port))
    except (OSError, OverflowError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CliError(
            f"could not serve on {url}: {reason}; choose another --port or --host", EXIT_FAILED
        ) from None
    listening.listen(2048)
    listening.set_inheritable(True)
    return listening


def _say(args: argparse.Namespace, data: dict[str, object], text: str) -> None:
    if args.json:
        print_json(data, compact=True)
    else:
        print(text)
    sys.stdout.flush()
