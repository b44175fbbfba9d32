"""The ``acp-plugins`` command line: list, inspect, validate and call plugins.

Every command prints a readable table or text for people and, with ``--json``,
machine-readable output for scripts (errors too: ``{"error": {...}}`` on
standard output). Errors are one line on stderr and a non-zero exit status,
never a traceback (``--debug`` shows one).

Exit status: 0 success; 1 the operation failed (invalid plugin, failed command,
unhandled message); 2 bad usage or bad input (including bad command arguments);
3 not found (plugin, command, data source); 4 a plugin failed while being
called; 70 an internal error of acp-plugins; 130 interrupted. A failed plugin
command exits with its own ``exit_code`` when that is 1-125.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from acp_plugins.cli.exits import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    status_of,
)
from acp_plugins.cli.hosting import server_url, with_host
from acp_plugins.cli.output import PrintableStream, print_json
from acp_plugins.cli.parser import build_parser, parse_command_line
from acp_plugins.errors import AcpPluginsError

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(stdout), PrintableStream(stderr)
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    finally:
        if isinstance(sys.stdout, PrintableStream):  # not if a broken pipe replaced it
            sys.stdout = stdout
        sys.stderr = stderr


def _fail(message: str, status: int, *, as_json: bool, kind: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        print_json({"error": {"message": message, "kind": kind, "exit_status": status}})
    return status


def _main(argv: list[str]) -> int:
    wants_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    try:
        args = parse_command_line(argv)
    except SystemExit as exit_:  # --help, --version and usage errors end here
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except CliError as error:
        return _fail(str(error), error.status, as_json=wants_json, kind="usage")
    as_json = bool(getattr(args, "json", False))
    level = logging.DEBUG if args.debug else logging.WARNING if args.verbose else logging.CRITICAL
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_dispatch(args))
    except CliError as error:
        return _fail(str(error), error.status, as_json=as_json, kind="error")
    except AcpPluginsError as error:
        return _fail(str(error), status_of(error), as_json=as_json, kind=type(error).__name__)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing left to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's flush quiet
        return EXIT_OK
    except OSError as error:  # the file system said no (a name too long, a loop, access)
        if args.debug:
            raise
        what = f"cannot use {error.filename}" if error.filename is not None else "an I/O error"
        return _fail(f"{what}: {error.strerror or error}", EXIT_FAILED, as_json=as_json,
                     kind="OSError")  # fmt: skip
    except Exception as error:  # a bug of ours: say so in one line, keep the traceback for --debug
        if args.debug:
            raise
        message = (
            f"internal error ({type(error).__name__}: {error}); rerun with --debug and report it"
        )
        return _fail(message, EXIT_INTERNAL, as_json=as_json, kind="internal")


async def _dispatch(args: Any) -> int:
    if server_url(args):
        from acp_plugins.cli.remote import check_remote

        check_remote(args)  # a command that cannot go to the server says so, whatever it is
    if args.needs_host:
        return await with_host(args.handler, args)
    result: int = await args.handler(args)
    return result
