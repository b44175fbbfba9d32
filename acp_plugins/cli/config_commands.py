"""``acp-plugins config``: show, get, set, unset, schema and validate settings."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from acp_plugins.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from acp_plugins.cli.hosting import (
    flags,
    host_settings,
    sources,
    views_of,
    with_host,
    with_host_result,
)
from acp_plugins.cli.output import print_json, table
from acp_plugins.config.layers import Layer, ValueOrigin
from acp_plugins.config.settings import HostSettings, load_host_settings
from acp_plugins.host import PluginHost

HOST = "host"  # `config show host`: the host's own settings


#: How deep a value given on the command line may nest (lists and tables in lists...).
MAX_VALUE_DEPTH = 32


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _parse_value(text: str) -> Any:
    """A value from the command line: JSON when it parses (5, true, [1], {"a": 1}), else text."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
    except ValueError:
        return text
    if (value is None and text.strip() != "null") or _depth(value) > MAX_VALUE_DEPTH:
        raise CliError(
            f"VALUE nests more than {MAX_VALUE_DEPTH} lists or tables deep; no setting needs that",
            EXIT_USAGE,
        )
    return value


def _origins_json(rows: Sequence[tuple[str, Any, ValueOrigin]]) -> dict[str, Any]:
    return {
        path: {"value": value, "layer": origin.layer.value, "source": origin.source}
        for path, value, origin in rows
    }


def _under(
    rows: Sequence[tuple[str, Any, ValueOrigin]], key: str
) -> list[tuple[str, Any, ValueOrigin]]:
    """The rows of ``key`` itself or of the keys inside it."""
    return [row for row in rows if row[0] == key or row[0].startswith(key + ".")]


def _origin_line(row: tuple[str, Any, ValueOrigin]) -> str:
    path, value, origin = row
    return f"{path} = {json.dumps(value, default=str)}  [{origin.layer.value}: {origin.source}]"


def _print_explained(rows: Sequence[tuple[str, Any, ValueOrigin]]) -> None:
    if not rows:
        print("no settings")
        return
    shown = [
        (path, json.dumps(value, default=str), origin.layer.value, origin.source)
        for path, value, origin in rows
    ]
    print(table(["KEY", "VALUE", "LAYER", "SOURCE"], shown))


def _host_rows(args: argparse.Namespace) -> list[tuple[str, Any, ValueOrigin]]:
    settings, _ = host_settings(args)
    _, origins = load_host_settings(sources(args), flags(args))
    values = json.loads(settings.model_dump_json())
    return [(path, _at(values, path), origin) for path, origin in sorted(origins.items())]


def _at(values: Any, path: str) -> Any:
    for part in path.split("."):
        values = values[part] if isinstance(values, dict) and part in values else None
    return values


async def cmd_config_show(args: argparse.Namespace) -> int:
    if args.plugin_id == HOST:
        rows = _host_rows(args)
        print_json({"plugin_id": HOST, "settings": _origins_json(rows)}) if args.json else (
            _print_explained(rows)
        )
        return EXIT_OK
    return await with_host(_config_show, args, [args.plugin_id])


async def _config_show(host: PluginHost, args: argparse.Namespace) -> int:
    resolved = host.config_of(args.plugin_id)
    rows = resolved.explain()
    if args.json:
        print_json({"plugin_id": args.plugin_id, "settings": _origins_json(rows)})
    else:
        _print_explained(rows)
    return EXIT_OK


async def cmd_config_get(args: argparse.Namespace) -> int:
    if args.plugin_id == HOST:
        rows = _host_rows(args)
    else:
        rows = await with_host_result(
            args, lambda host: host.config_of(args.plugin_id).explain(), [args.plugin_id]
        )
    found = _under(rows, args.key)
    if not found:
        known = ", ".join(row[0] for row in rows) or "none"
        raise CliError(f"'{args.plugin_id}' has no setting '{args.key}' (settings: {known})", 3)
    if args.json:
        print_json(_origins_json(found))
    else:
        for row in found:
            print(_origin_line(row))
    return EXIT_OK


async def _config_set(host: PluginHost, args: argparse.Namespace) -> int:
    if args.action == "set":
        resolved = await host.set_config(args.plugin_id, args.key, _parse_value(args.value))
    else:
        resolved = await host.unset_config(args.plugin_id, args.key)
    rows = _under(resolved.explain(), args.key)
    if args.json:
        print_json(
            {
                "plugin_id": args.plugin_id,
                "key": args.key,
                "action": args.action,
                "settings": _origins_json(rows),
                "overrides_file": str(host.overrides.path),
            }
        )
        return EXIT_OK
    for row in rows:
        print(_origin_line(row))
    print(f"{'saved in' if args.action == 'set' else 'removed from'} {host.overrides.path}")
    return EXIT_OK


async def cmd_config_set(args: argparse.Namespace) -> int:
    if args.plugin_id == HOST:
        raise CliError(
            "the host's settings are not changed at run time; set them in the config file, "
            "the environment (ACP_HOST_*) or with command line flags",
            EXIT_USAGE,
        )
    return await with_host(_config_set, args, [args.plugin_id])


async def _config_schema(host: PluginHost, args: argparse.Namespace) -> int:
    print_json(await views_of(host).config_schema(args.plugin_id))
    return EXIT_OK


async def cmd_config_schema(args: argparse.Namespace) -> int:
    if args.plugin_id == HOST:
        print_json(HostSettings.model_json_schema())
        return EXIT_OK
    return await with_host(_config_schema, args, [args.plugin_id])


async def cmd_config_validate(args: argparse.Namespace) -> int:
    """Check a config file: its [host] table and every [plugins.ID] table."""
    if args.file:
        args.config = args.file
    found = sources(args)
    if found.global_file is None:
        raise CliError("no config file to validate: name one, or set $ACP_CONFIG_FILE", EXIT_USAGE)
    host_settings(args)  # the [host] table: raises ConfigError naming the bad keys
    return await with_host(_config_validate, args)


async def _config_validate(host: PluginHost, args: argparse.Namespace) -> int:
    sources = host.config_sources
    assert sources.global_file is not None
    tables = sources.plugin_tables(Layer.GLOBAL)
    for plugin_id in sorted(tables):  # each table is checked by starting its plugin
        await host.start_plugin(plugin_id)
    problems = []
    for plugin_id in sorted(tables):
        record = host.records.get(plugin_id)
        if record is None:
            problems.append(f"[plugins.{plugin_id}]: no plugin '{plugin_id}' is installed")
        elif record.failures and record.failures[-1].stage == "configure":
            problems.append(record.failures[-1].message)
    if args.json:
        print_json({"file": str(sources.global_file), "valid": not problems, "problems": problems})
    elif problems:
        print("\n".join(problems))
    else:
        print(f"ok    {sources.global_file}: host settings and {len(tables)} plugin table(s)")
    return EXIT_FAILED if problems else EXIT_OK
