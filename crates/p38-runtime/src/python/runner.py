"""Project38 agent runner.

Written into every sandbox by the runtime. It reads one JSON message from
file descriptor 3 (the agent's code, state, config, declared secrets, run
facts and recent history), loads the agent, calls ``run(ctx)`` and writes
JSON lines to file descriptor 4: one per ``ctx.log`` line as it is logged,
then the reply: the returned value and the new state, or the error with
its traceback. Standard library only.
"""

import os
import sys

AGENT_FILE = "agent.py"
MAX_LOG_LINES = 1000
MAX_LOG_CHARS = 4000

# Only builtin modules are imported up front: every run starts a fresh
# Python, and importing `json` (which pulls in `re` and `enum`), `traceback`
# or `datetime` would cost several milliseconds of every run, trivial agents
# included. JSON goes through `_json`, the C accelerator behind `json`, used
# directly; the pure-Python `json` is the fallback wherever `_json` is
# missing or behaves differently (checked once, below). Output never holds
# NaN or Infinity, which are not JSON and which the runtime could not read.


class _ScanContext:
    """The settings `_json.make_scanner` reads, as `json.JSONDecoder` has them."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo = {}


def _not_serialisable(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _c_loads(text):
    """Parse one JSON document with the C scanner."""
    scan = _SCAN
    end = len(text)
    i = 0
    while i < end and text[i] in " \t\n\r":
        i += 1
    try:
        value, i = scan(text, i)
    except StopIteration as e:
        raise ValueError(f"invalid JSON at character {e.value}") from None
    while i < end and text[i] in " \t\n\r":
        i += 1
    if i != end:
        raise ValueError(f"extra data after JSON at character {i}")
    return value


def _c_dumps(value):
    """Serialise with the C encoder (a fresh one: it keeps circularity marks)."""
    encode = _json.make_encoder(
        {}, _not_serialisable, _json.encode_basestring_ascii, None, ": ", ", ", False, False, False
    )
    return "".join(encode(value, 0))


def _c_size(value):
    """Bytes of ``value`` as compact UTF-8 JSON: how the host measures it."""
    encode = _json.make_encoder(
        {}, _not_serialisable, _json.encode_basestring, None, ":", ",", False, False, False
    )
    return len("".join(encode(value, 0)).encode("utf-8", "surrogatepass"))


def _py_loads(text):
    import json

    return json.loads(text)


def _py_dumps(value):
    import json

    return json.dumps(value, allow_nan=False)


def _py_size(value):
    import json

    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


try:
    import _json

    _SCAN = _json.make_scanner(_ScanContext())
    _SAMPLE = {"a": [1, -2.5, "\u00e9\n", None, True, False], "b": {}}
    if (
        _c_loads(_c_dumps(_SAMPLE)) != _SAMPLE
        or _c_dumps([1.5]) != "[1.5]"
        or _c_size({"a": ["\u00e9", 1]}) != 14
    ):
        raise ImportError("_json behaves differently")
    try:
        _c_dumps([float("nan")])
    except ValueError:
        pass
    else:
        raise ImportError("_json does not refuse NaN with these arguments")
    loads, dumps, json_size = _c_loads, _c_dumps, _c_size
except Exception:  # noqa: BLE001 - any surprise means: use json itself
    loads, dumps, json_size = _py_loads, _py_dumps, _py_size


class SecretNotDeclared(KeyError):
    """Raised when an agent reads a secret it did not declare."""


class Secrets:
    """Read-only view of the secrets this agent declared."""

    def __init__(self, values):
        self._values = dict(values)

    def __getitem__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise SecretNotDeclared(
                f"secret {name!r} is not available to this agent: declare it in the agent's secrets"
            ) from None

    def get(self, name, default=None):
        """Return the secret, or ``default`` when it was not declared."""
        return self._values.get(name, default)

    def __contains__(self, name):
        return name in self._values

    def keys(self):
        """Names of the available secrets."""
        return self._values.keys()

    def __repr__(self):
        return f"<secrets {sorted(self._values)}>"


class Log:
    """``ctx.log``: structured log lines kept with the task.

    Each line goes to the host at once, as one JSON line on fd 4, so that
    the host times it on arrival and keeps it even when the run is then
    stopped (a timeout, a cancel, a crash).
    """

    def __init__(self):
        self.count = 0
        self.dropped = 0

    def _add(self, level, msg, args):
        if self.count >= MAX_LOG_LINES:
            self.dropped += 1
            return
        text = str(msg) % args if args else str(msg)
        if len(text) > MAX_LOG_CHARS:
            text = text[:MAX_LOG_CHARS] + "...[truncated]"
        self.count += 1
        write_reply_line({"log": {"level": level, "message": text}})

    def debug(self, msg, *args):
        """Log at debug level."""
        self._add("debug", msg, args)

    def info(self, msg, *args):
        """Log at info level."""
        self._add("info", msg, args)

    def warning(self, msg, *args):
        """Log at warning level."""
        self._add("warning", msg, args)

    warn = warning

    def error(self, msg, *args):
        """Log at error level."""
        self._add("error", msg, args)


class Tools:
    """``ctx.tools``: the tool gateway (browser, filesystem, notifications)."""

    def __init__(self, declared):
        self.declared = list(declared)

    def __getattr__(self, name):
        raise RuntimeError(
            f"tool {name!r} cannot be called: this Project38 version has no tool gateway yet"
        )


class RunFacts:
    """``ctx.run``: task id, attempt, trigger, scheduled time, agent id and name."""

    def __init__(self, facts):
        self.__dict__.update(facts)

    def __repr__(self):
        return f"RunFacts({self.__dict__!r})"


class AgentSource:
    """The agent module's ``__loader__``: lets ``linecache`` (and so any
    traceback, also one the agent formats itself) show the agent's lines
    without importing anything up front."""

    def __init__(self, code):
        self.code = code

    def get_source(self, name):
        """The agent's source code."""
        return self.code


class Context:
    """What ``run(ctx)`` receives."""

    def __init__(self, msg):
        self.state = msg.get("state") or {}
        self.config = msg.get("config") or {}
        self.secrets = Secrets(msg.get("secrets") or {})
        self.log = Log()
        self.run = RunFacts(msg.get("run") or {})
        self.history = msg.get("history") or []
        self.tools = Tools(msg.get("tools") or [])
        self.workspace = os.getcwd()


def write_reply_line(value):
    """Write one JSON line to the reply pipe (fd 4), whole."""
    data = memoryview((dumps(value) + "\n").encode("utf-8"))
    while data:
        data = data[os.write(4, data) :]


def read_message():
    """Read the whole input message from fd 3."""
    chunks = []
    with os.fdopen(3, "rb") as f:
        while True:
            b = f.read(65536)
            if not b:
                break
            chunks.append(b)
    return loads(b"".join(chunks).decode("utf-8"))


def load_agent(code):
    """Compile the agent as module ``agent`` so tracebacks show its lines."""
    module = type(sys)("agent")
    module.__file__ = AGENT_FILE
    module.__loader__ = AgentSource(code)
    sys.modules["agent"] = module
    exec(compile(code, AGENT_FILE, "exec"), module.__dict__)  # noqa: S102 - this is the runner
    run = getattr(module, "run", None)
    if not callable(run):
        raise TypeError("the agent does not define a function run(ctx)")
    return run


def error_of(exc, code):
    """Describe an exception, with the traceback limited to the agent's frames."""
    import linecache
    import traceback

    if code is not None:
        # The agent's lines, whatever files the agent wrote to its workspace.
        linecache.cache[AGENT_FILE] = (len(code), None, code.splitlines(True), AGENT_FILE)
    tb = traceback.TracebackException.from_exception(exc)
    frames = [f for f in tb.stack if f.filename == AGENT_FILE]
    tb.stack = traceback.StackSummary.from_list(frames)
    kind = "memory" if isinstance(exc, MemoryError) else type(exc).__name__
    return {
        "type": type(exc).__name__,
        "kind": kind,
        "message": str(exc),
        "traceback": "".join(tb.format()),
    }


def main():
    """Run the agent once and report."""
    main_pid = os.getpid()
    # Each line reaches the host as it is printed (Python buffers a pipe
    # in blocks, and -I ignores PYTHONUNBUFFERED): the task shows it while
    # the run goes on, and a run that is stopped keeps it.
    try:
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    reply = {"ok": False}
    ctx = None
    code = None
    try:
        msg = read_message()
        max_state = int(msg.get("max_state_bytes") or 1048576)
        max_result = int(msg.get("max_result_bytes") or 1048576)
        ctx = Context(msg)
        code = msg["code"]
        run = load_agent(code)
        value = run(ctx)
        try:
            result_text = dumps(value)
        except (TypeError, ValueError, RecursionError) as e:
            raise TypeError(f"run() returned a value that is not JSON-serialisable: {e}") from None
        result = loads(result_text)
        result_size = json_size(result)
        if result_size > max_result:
            raise ValueError(
                f"run() returned {result_size} bytes of JSON; the limit is {max_result // 1024} KiB"
                " (settings.max_result_kb): keep large data in the workspace and return a summary"
            )
        if not isinstance(ctx.state, dict):
            raise TypeError("ctx.state must stay a dict")
        try:
            state_text = dumps(ctx.state)
        except (TypeError, ValueError, RecursionError) as e:
            raise TypeError(f"ctx.state holds a value that is not JSON-serialisable: {e}") from None
        state = loads(state_text)
        state_size = json_size(state)
        if state_size > max_state:
            raise ValueError(
                f"ctx.state is {state_size} bytes; the limit is {max_state} bytes: keep large data in the workspace"
            )
        reply = {"ok": True, "result": result, "state": state}
    except BaseException as e:  # noqa: BLE001 - report everything, SystemExit included
        try:
            reply = {"ok": False, "error": error_of(e, code)}
        except BaseException:  # noqa: BLE001 - e.g. no memory left to format it
            kind = "memory" if isinstance(e, MemoryError) else type(e).__name__
            reply = {
                "ok": False,
                "error": {"type": type(e).__name__, "kind": kind, "message": str(e), "traceback": ""},
            }
    if os.getpid() != main_pid:
        # A process the agent forked came back out of run(): only the
        # agent's own process reports; a copy leaves without a word.
        os._exit(0)
    if ctx is not None:
        reply["logs_dropped"] = ctx.log.dropped
    write_reply_line(reply)
    os.close(4)
    sys.stdout.flush()
    sys.stderr.flush()
    if not reply["ok"]:
        # The process's status tells the truth too: a failed run exits 1.
        sys.exit(1)


if __name__ == "__main__":
    main()
