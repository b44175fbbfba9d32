"""``acp-plugins test PATH``: the conformance suite against a plugin project."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from acp_plugins.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from acp_plugins.cli.output import one_line, print_json
from acp_plugins.testing.conformance import CheckResult, run_conformance
from acp_plugins.testing.harness import MODES

__all__ = ["cmd_test"]


def _project(text: str, what: str) -> Path:
    path = Path(text)
    if not (path / "pyproject.toml").is_file():
        raise CliError(f"{what} {text!r} is not a plugin project (no pyproject.toml there)",
                       EXIT_USAGE)  # fmt: skip
    return path


async def cmd_test(args: argparse.Namespace) -> int:
    project = _project(args.path, "PATH")
    also = [_project(p, "--with") for p in args.with_projects]
    modes = tuple(args.mode) if args.mode else MODES

    def said(check: CheckResult) -> None:
        if not args.json:
            mark = "ok  " if check.ok else "FAIL"
            reason = f": {one_line(check.reason)}" if check.reason else ""
            print(f"{mark}  {check.category:<13} {check.name}{reason}", flush=True)

    # the suite drives its hosts on event loops of its own: off this one
    report = await asyncio.to_thread(run_conformance, project, budget_ms=args.budget_ms,
                                     modes=modes, progress=said, also=also)  # fmt: skip
    if args.json:
        print_json(report.to_dict())
    else:
        failed = report.failed()
        summary = f"\n{len(report.checks) - len(failed)} of {len(report.checks)} checks passed"
        summary += f" in {report.seconds:.1f} s" + (f"; {len(failed)} failed" if failed else "")
        print(summary)
        sys.stdout.flush()
    return EXIT_OK if report.ok else EXIT_FAILED
