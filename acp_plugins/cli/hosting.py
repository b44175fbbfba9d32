"""Building the host a command runs against, from the settings and the command line's flags."""

from __future__ import annotations

import argparse
import os
import urllib.parse
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from acp_plugins.audit import AuditLog
from acp_plugins.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from acp_plugins.cli.output import stderr_line
from acp_plugins.config.layers import ConfigSources, Layer
from acp_plugins.config.overrides import OverrideStore
from acp_plugins.config.settings import HostSettings, load_host_settings
from acp_plugins.errors import ConfigError
from acp_plugins.host import PluginHost
from acp_plugins.views import HostViews, Views

__all__ = [
    "HostCommand",
    "build_host",
    "flags",
    "host_settings",
    "sources",
    "with_host",
    "with_host_result",
]

HostCommand = Callable[[PluginHost, argparse.Namespace], Coroutine[Any, Any, int]]


def _parse_grants(values: Sequence[str]) -> dict[str, list[str]]:
    grants: dict[str, list[str]] = {}
    for value in values:
        plugin_id, sep, names = value.partition("=")
        if not sep or not plugin_id or not names:
            raise CliError(
                f"--grant expects PLUGIN=PERMISSION[,PERMISSION], not {value!r}", EXIT_USAGE
            )
        grants.setdefault(plugin_id, []).extend(n.strip() for n in names.split(",") if n.strip())
    return grants


def sources(args: argparse.Namespace) -> ConfigSources:
    """The configuration files and environment this command line names."""
    return ConfigSources.from_environment(
        global_file=Path(args.config) if args.config else None,
        user_file=Path(args.user_config) if args.user_config else None,
    )


def flags(args: argparse.Namespace) -> dict[str, Any]:
    """The host settings this command line's flags give (the top layer)."""
    given: dict[str, Any] = {}
    if args.plugin_path:
        given["plugin_path"] = list(args.plugin_path)
    if args.data_dir:
        given["data_dir"] = args.data_dir
    if args.timeout is not None:
        given["timeout"] = args.timeout
    if args.grant:
        given["grants"] = _parse_grants(args.grant)
    if args.trust:
        given["isolation"] = {"trusted": [pid for item in args.trust for pid in item.split(",")]}
    return given


_FLAG_OF = {
    "grants": "--grant",
    "isolation": "--trust",
    "timeout": "--timeout",
    "data_dir": "--data-dir",
    "plugin_path": "--plugin-path",
}


def host_settings(args: argparse.Namespace) -> tuple[HostSettings, ConfigSources]:
    """The host's settings: its layers, with this command line's flags on top."""
    found = sources(args)
    try:
        settings, _ = load_host_settings(found, flags(args))
    except ConfigError as error:
        bad_flags = [p for p in error.problems if p.layer == Layer.RUNTIME.value]
        if bad_flags:  # name the flag, not the setting behind it
            lines = [f"{_FLAG_OF.get(p.path.split('.')[0], p.path)}: {p}" for p in bad_flags]
            raise CliError("\n".join(lines), EXIT_USAGE) from None
        raise CliError(str(error), EXIT_FAILED) from None
    return settings, found


def build_host(args: argparse.Namespace) -> PluginHost:
    """The host this command line describes, not started."""
    settings, found = host_settings(args)
    for path in settings.plugin_path:
        if not path.is_dir():
            raise CliError(f"plugin path {path} is not a directory", EXIT_USAGE)
    return PluginHost(
        policy=settings.policy(),
        search_path=settings.plugin_path or None,
        timeout=settings.timeout,
        data_root=settings.data_dir,
        sync_in_thread=settings.sync_in_thread,
        config=found,
        overrides=OverrideStore(settings.effective_overrides_file),
        disabled=settings.disabled,
        isolation=settings.isolation.policy(),
        audit=AuditLog(settings.effective_audit_log),
        on_demand=settings.on_demand,
        drain_timeout=settings.drain_timeout,
        telemetry=settings.telemetry,
    )


def views_of(host: PluginHost) -> Views:
    """The views of ``host``: its own, or the server's when it is a remote one."""
    remote: Views | None = getattr(host, "views", None)
    return remote if remote is not None else HostViews(host)


def server_url(args: argparse.Namespace) -> str | None:
    """The server the command line asks (``--server``, else ``ACP_SERVER_URL``), if any;
    one that is not an http(s) URL with a host is bad usage, said in one line."""
    url = getattr(args, "server", None) or os.environ.get("ACP_SERVER_URL") or None
    if url is None:
        return None
    example = "give one like http://127.0.0.1:8765 (--server or ACP_SERVER_URL)"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - a port that is no number raises here
    except ValueError as error:
        raise CliError(f"the server URL {url!r} cannot be read ({error}); {example}",
                       EXIT_USAGE) from None  # fmt: skip
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"the server URL {url!r} is not an http:// or https:// URL with a "
                       f"host; {example}", EXIT_USAGE)  # fmt: skip
    return url


async def with_host(
    handler: HostCommand, args: argparse.Namespace, needs: Sequence[str] = ()
) -> int:
    """Start a host, run ``handler`` on it, and always stop the host again.

    ``needs``: plugins the command is about, started even if they wait for their first use.

    What the host recovered from on the way (a corrupt overrides file moved aside,
    audit records it could not write) is said on standard error at the end.
    """
    server = server_url(args)
    if server:  # --server: the running server's host answers instead
        from acp_plugins.cli.remote import run_remote

        return await run_remote(handler, args, server)
    host = build_host(args)
    try:
        await host.start()
        for plugin_id in needs:
            await host.start_plugin(plugin_id)
        return await handler(host, args)
    finally:
        await host.stop()
        for notice in host.notices:
            stderr_line(f"warning: {notice}")


async def with_host_result(
    args: argparse.Namespace, read: Callable[[PluginHost], Any], needs: Sequence[str] = ()
) -> Any:
    """Start a host, return what ``read`` makes of it, stop the host."""
    result: list[Any] = []

    async def grab(host: PluginHost, _: argparse.Namespace) -> int:
        result.append(read(host))
        return EXIT_OK

    await with_host(grab, args, needs)
    return result[0]
