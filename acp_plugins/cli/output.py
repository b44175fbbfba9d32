"""How the command line prints: JSON for scripts, tables for people, nothing unsafe."""

from __future__ import annotations

import io
import json
import math
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import Any, TextIO

from acp_plugins.printable import printable

__all__ = ["PrintableStream", "json_safe", "one_line", "print_json", "table"]


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot hold made text: NaN and infinities become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def print_json(value: Any, *, compact: bool = False) -> None:
    """Print ``value`` as strict JSON (RFC 8259: no NaN), indented (``compact``: one line)."""
    indent = None if compact else 2
    print(json.dumps(json_safe(value), indent=indent, default=str, allow_nan=False), flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, wrap_last: bool = False) -> str:
    """Columns padded to their widest cell; ``wrap_last`` wraps the last column to the terminal.

    A wrapped cell continues on the lines below it, under its column, so nothing is cut.
    """
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if wrap_last and len(headers) > 1:
        used = sum(widths[:-1]) + 2 * (len(headers) - 1)
        room = max(shutil.get_terminal_size((120, 24)).columns - used, 30)
        widths[-1] = min(widths[-1], room)
    lines = []
    for index, row in enumerate(cells):
        last = textwrap.wrap(row[-1], widths[-1], break_on_hyphens=False) or [""]
        head = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1]))
        lines.append((head + "  " + last[0]).rstrip() if row[:-1] else last[0])
        pad = " " * (len(head) + 2)
        lines.extend((pad + more).rstrip() for more in last[1:])
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def one_line(text: str | None, limit: int = 90) -> str:
    """The first line of ``text``, cut to ``limit`` characters."""
    if not text:
        return ""
    first = text.splitlines()[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


class PrintableStream(io.TextIOBase):
    """A text stream that shows control characters instead of passing them to the terminal.

    Plugins supply much of what the CLI prints (outputs, answers, reasons, log
    lines); an escape sequence among them must not reach the operator's screen.
    Text the stream's encoding cannot hold (an undecodable byte of a command
    line, under a strict UTF-8 locale) is written as escapes too.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        shown = printable(text, multiline=True)
        encoding = getattr(self._stream, "encoding", None) or "utf-8"
        try:
            shown.encode(encoding)
        except (UnicodeEncodeError, LookupError):
            shown = shown.encode(encoding, "backslashreplace").decode(encoding, "replace")
        self._stream.write(shown)
        return len(text)

    def flush(self) -> None:
        # also called when this wrapper is collected, possibly after the stream it wraps
        # was closed (a test's captured output): there is nothing left to flush then
        if not getattr(self._stream, "closed", False):
            self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()


def stderr_line(message: str) -> None:
    """One line for the operator on standard error."""
    print(message, file=sys.stderr)
