"""``acp-plugins test PATH`` (the conformance suite) and ``acp-plugins new NAME`` (the template)."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

from acp_plugins.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from acp_plugins.cli.output import one_line, print_json
from acp_plugins.testing.conformance import CheckResult, run_conformance
from acp_plugins.testing.harness import MODES

__all__ = ["INTERFACES", "cmd_new", "cmd_test", "template_path"]


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
    matrix = list(args.core) if args.matrix or args.core or args.pythons else None
    for python in args.pythons:
        if not re.fullmatch(r"3\.\d+", python):
            raise CliError(f"--python {python!r} is not a Python version like 3.12", EXIT_USAGE)
    report = await asyncio.to_thread(run_conformance, project, budget_ms=args.budget_ms,
                                     modes=modes, progress=said, also=also, matrix=matrix,
                                     pythons=args.pythons)  # fmt: skip
    if args.json:
        print_json(report.to_dict())
    else:
        failed = report.failed()
        summary = f"\n{len(report.checks) - len(failed)} of {len(report.checks)} checks passed"
        summary += f" in {report.seconds:.1f} s" + (f"; {len(failed)} failed" if failed else "")
        print(summary)
        sys.stdout.flush()
    return EXIT_OK if report.ok else EXIT_FAILED


#: What ``--interface`` names, and the interface each is.
INTERFACES = ("message", "command", "data", "analytics")


def template_path() -> Path:
    """The project template shipped in the package (a copier template)."""
    from importlib.resources import files

    return Path(str(files("acp_plugins").joinpath("template")))


async def cmd_new(args: argparse.Namespace) -> int:
    try:
        import copier
    except ImportError:
        raise CliError("the template needs copier: pip install 'acp-plugins[testing]'",
                       EXIT_FAILED) from None  # fmt: skip
    from acp_plugins import __version__

    if not re.fullmatch(r"[a-z][a-z0-9-]{1,62}[a-z0-9]", args.name):
        raise CliError(f"{args.name!r} is not a plugin id: 3-64 lowercase letters, digits and "
                       "'-', starting with a letter (e.g. weather-alerts)", EXIT_USAGE)  # fmt: skip
    target = Path(args.dir or f"acp-{args.name}")
    if target.exists() and any(target.iterdir()):
        raise CliError(f"{target} exists and is not empty; choose another --dir", EXIT_USAGE)
    answers = {
        "plugin_id": args.name,
        "interfaces": args.interface or ["message"],
        "description": args.description or f"The {args.name} plugin.",
        "author": args.author or "A plugin author",
        "acp_version": __version__,
    }
    source = args.template or str(template_path())
    await asyncio.to_thread(copier.run_copy, source, str(target), data=answers, defaults=True,
                            quiet=True, unsafe=False)  # fmt: skip
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    if args.json:
        print_json({"project": str(target), "plugin_id": args.name,
                    "interfaces": answers["interfaces"], "files": files})  # fmt: skip
    else:
        print(f"created {target} ({', '.join(answers['interfaces'])}): {len(files)} files")
        print(f"next: cd {target} && pip install -e '.[test]' && pytest && acp-plugins test .")
    return EXIT_OK
