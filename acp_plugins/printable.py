"""Making text that a plugin supplied safe to show: in a log line, the audit log, a terminal.

A plugin's log messages, exception texts, sandbox reports and its worker's last
words are the plugin's to choose. Written as they are, a newline forges a log
line of the host's own, and an escape sequence rewrites the operator's screen.
:func:`printable` keeps the text readable and makes every control character
visible instead (``\\n``, ``\\x1b``, ``\\u2028``...).
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_CONTROLS = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
_ONE_LINE = re.compile(f"[{_CONTROLS}\n\t]")
_MULTILINE = re.compile(f"[{_CONTROLS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, multiline: bool = False, limit: int | None = None) -> str:
    """``text`` with its control characters escaped (``multiline``: newlines and tabs kept).

    Lone surrogates (undecodable bytes) are escaped too; ``limit`` cuts the result
    to that many characters, ending it with ``...``.
    """
    value = (_MULTILINE if multiline else _ONE_LINE).sub(_escape, str(text))
    value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if limit is not None and len(value) > limit:
        value = value[: max(limit - 3, 0)] + "..."
    return value
